"""Tests for core.taskdef: RegisterTaskDefinition validation, echoed defaults, resources."""

from __future__ import annotations

import copy
import json
from typing import Any

import botocore.loaders
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portside.core import taskdef_schema as schema
from portside.core.taskdef import (
    network_mode,
    parse_task_cpu,
    parse_task_memory,
    task_resources,
    validate_registration,
)
from portside.errors import ClientException

INVALID_CPU = (
    "Invalid 'cpu' setting for task. For more information, see the Troubleshooting section of the "
    "Amazon ECS Developer Guide."
)
INVALID_MEMORY = (
    "Invalid 'memory' setting for task. For more information, see the Troubleshooting section of the "
    "Amazon ECS Developer Guide."
)


def c(name: str = "web", **fields: Any) -> dict[str, Any]:
    """A valid container definition with ``fields`` replaced (``None`` removes a field)."""
    container: dict[str, Any] = {"name": name, "image": "nginx:1.27", "memory": 128}
    for key, value in fields.items():
        if value is None:
            container.pop(key, None)
        else:
            container[key] = value
    return container


def req(*containers: dict[str, Any], **task: Any) -> dict[str, Any]:
    request: dict[str, Any] = {"family": "web", "containerDefinitions": list(containers) or [c()]}
    for key, value in task.items():
        if value is None:
            request.pop(key, None)
        else:
            request[key] = value
    return request


def pm(container_port: int | None = 80, **fields: Any) -> dict[str, Any]:
    mapping: dict[str, Any] = {} if container_port is None else {"containerPort": container_port}
    mapping.update(fields)
    return mapping


def hc(**fields: Any) -> dict[str, Any]:
    return {"command": ["CMD-SHELL", "curl -f http://localhost/ || exit 1"], **fields}


def reject(request: Any) -> str:
    with pytest.raises(ClientException) as info:
        validate_registration(request)
    return info.value.message


# ---- the messages ECS is known to send (spec ecs.md §2.6) ------------------------------

EXACT = [
    pytest.param(
        req(c("app", memory=None)),
        "Invalid setting for container 'app'. "
        "At least one of 'memory' or 'memoryReservation' must be specified.",
        id="no-memory",
    ),
    pytest.param(
        req(c(portMappings=[pm(80, hostPort=8080)]), networkMode="awsvpc"),
        "When networkMode=awsvpc, the host ports and container ports in port mappings must match",
        id="awsvpc-host-port-mismatch",
    ),
    pytest.param(
        req(c(portMappings=[pm(80, hostPort=0)]), networkMode="awsvpc"),
        "When networkMode=awsvpc, the host ports and container ports in port mappings must match",
        id="awsvpc-host-port-zero",
    ),
    pytest.param(
        req(c(portMappings=[pm(80, hostPort=81)]), networkMode="host"),
        "When networkMode=host, the host ports and container ports in port mappings must match",
        id="host-host-port-mismatch",
    ),
    pytest.param(
        req(c("api", portMappings=[pm(0)])),
        "Invalid 'containerPort' setting for container 'api'.",
        id="container-port-zero",
    ),
    pytest.param(
        req(c("api", portMappings=[pm(65536)])),
        "Invalid 'containerPort' setting for container 'api'.",
        id="container-port-too-big",
    ),
    pytest.param(
        # aws/aws-cli#7288: shorthand split one mapping into three; the hostPort-only one fails.
        req(c("container_1", portMappings=[pm(3000), pm(None, hostPort=7000), pm(None, protocol="tcp")])),
        "Invalid 'containerPort' setting for container 'container_1'.",
        id="container-port-missing",
    ),
    pytest.param(req(cpu="64"), INVALID_CPU, id="task-cpu-below-128"),
    pytest.param(req(cpu="196609"), INVALID_CPU, id="task-cpu-above-max"),
    pytest.param(req(cpu="0.3 vCPU"), INVALID_CPU, id="task-cpu-fraction-of-unit"),
    pytest.param(req(cpu="lots"), INVALID_CPU, id="task-cpu-garbage"),
    pytest.param(req(memory="1 TB"), INVALID_MEMORY, id="task-memory-garbage"),
    pytest.param(req(memory="0"), INVALID_MEMORY, id="task-memory-zero"),
    pytest.param(
        req(c("a", portMappings=[pm(80, hostPort=3000)]), c("b", portMappings=[pm(81, hostPort=3000)])),
        "TCP host port '3000' is mapped multiple times in task.",
        id="static-host-port-twice",
    ),
    pytest.param(
        req(
            c("a", portMappings=[pm(53, protocol="udp")]),
            c("b", portMappings=[pm(53, protocol="udp")]),
            networkMode="awsvpc",
        ),
        "UDP host port '53' is mapped multiple times in task.",
        id="awsvpc-shared-namespace-port-twice",
    ),
]


@pytest.mark.parametrize(("request_", "message"), EXACT)
def test_exact_ecs_messages(request_: dict[str, Any], message: str) -> None:
    assert reject(request_) == message


# ---- everything else: the message names the field ---------------------------------------

LONG = "x" * 256
NAMED = [
    # request and family
    ("request-not-object", ["family"], "request must be an object"),
    ("family-missing", req(family=None), "family is required"),
    ("family-empty", req(family=""), "family must not be empty"),
    ("family-too-long", req(family=LONG), "family must be at most 255"),
    ("family-bad-chars", req(family="my app"), "family 'my app'"),
    ("family-wrong-type", req(family=7), "family must be a string"),
    (
        "describe-output-pasted",
        req(taskDefinitionArn="arn:aws:ecs:us-east-1:1:task-definition/web:1"),
        "taskDefinitionArn is set by ECS",
    ),
    # containerDefinitions
    ("containers-missing", req(containerDefinitions=None), "containerDefinitions is required"),
    ("containers-empty", req(containerDefinitions=[]), "containerDefinitions must contain at least one"),
    ("containers-eleven", req(*[c(f"c{i}") for i in range(11)]), "at most 10 containers (got 11)"),
    ("containers-not-list", req(containerDefinitions={"name": "x"}), "containerDefinitions must be a list"),
    (
        "container-not-object",
        req(containerDefinitions=["nginx"]),
        "containerDefinitions[0] must be an object",
    ),
    ("container-null", req(containerDefinitions=[None]), "containerDefinitions[0] must not be null"),
    # names and images
    ("name-missing", req(c(name=None)), "containerDefinitions[0].name is required"),
    ("name-empty", req(c("")), "containerDefinitions[0].name must not be empty"),
    ("name-bad-chars", req(c("web.1")), "containerDefinitions[0].name 'web.1'"),
    ("name-too-long", req(c(LONG)), "containerDefinitions[0].name must be at most 255"),
    (
        "name-duplicate",
        req(c("a"), c("b"), c("a")),
        "containerDefinitions[2].name 'a' is already used by containerDefinitions[0]",
    ),
    ("image-missing", req(c(image=None)), "containerDefinitions[0].image is required"),
    ("image-empty", req(c(image="")), "containerDefinitions[0].image must not be empty"),
    ("image-too-long", req(c(image="r/" + LONG)), "containerDefinitions[0].image must be at most 255"),
    ("image-whitespace", req(c(image="nginx latest")), "containerDefinitions[0].image 'nginx latest'"),
    ("image-bad-digest", req(c(image="nginx@sha256:abc")), "containerDefinitions[0].image digest"),
    # memory and cpu
    ("memory-string", req(c(memory="512")), "containerDefinitions[0].memory must be an integer"),
    ("memory-float", req(c(memory=512.0)), "containerDefinitions[0].memory must be an integer"),
    ("memory-bool", req(c(memory=True)), "containerDefinitions[0].memory must be an integer"),
    ("memory-huge", req(c(memory=2**40)), "containerDefinitions[0].memory must be a 32-bit integer"),
    ("memory-below-6", req(c(memory=4)), "containerDefinitions[0].memory must be at least 6 MiB"),
    ("memory-negative", req(c(memory=-1)), "containerDefinitions[0].memory must be at least 6 MiB"),
    (
        "reservation-zero",
        req(c(memory=None, memoryReservation=0)),
        "containerDefinitions[0].memoryReservation must be a positive",
    ),
    (
        "memory-below-reservation",
        req(c(memory=128, memoryReservation=256)),
        "containerDefinitions[0].memory (128) must be greater than or equal to "
        "containerDefinitions[0].memoryReservation (256)",
    ),
    ("cpu-negative", req(c(cpu=-2)), "containerDefinitions[0].cpu must not be negative"),
    ("task-cpu-not-string", req(cpu=1024), "cpu must be a string"),
    (
        "memory-sum-over-task",
        req(c("a", memory=512), c("b", memoryReservation=600, memory=None), memory="1GB"),
        "need 1112 MiB of memory in all",
    ),
    ("cpu-sum-over-task", req(c("a", cpu=512), c("b", cpu=768), cpu="1 vCPU"), "need 1280 CPU units in all"),
    # port mappings
    (
        "host-port-too-big",
        req(c(portMappings=[pm(80, hostPort=70000)])),
        "containerDefinitions[0].portMappings[0].hostPort must be between 0 and 65535 (got 70000)",
    ),
    (
        "host-port-negative",
        req(c("a"), c("b", portMappings=[pm(80, hostPort=-1)])),
        "containerDefinitions[1].portMappings[0].hostPort must be between 0 and 65535",
    ),
    (
        "protocol-sctp",
        req(c(portMappings=[pm(80, protocol="sctp")])),
        "containerDefinitions[0].portMappings[0].protocol must be one of tcp, udp",
    ),
    (
        "protocol-upper",
        req(c(portMappings=[pm(80, protocol="TCP")])),
        "portMappings[0].protocol must be one of",
    ),
    (
        "same-port-same-protocol",
        req(c(portMappings=[pm(80), pm(80, hostPort=8080)])),
        "containerDefinitions[0].portMappings[1].containerPort 80/tcp is already mapped by "
        "containerDefinitions[0].portMappings[0]",
    ),
    (
        "port-mappings-not-list",
        req(c(portMappings={"containerPort": 80})),
        "containerDefinitions[0].portMappings must be a list",
    ),
    (
        "container-port-string",
        req(c(portMappings=[pm("80")])),
        "containerDefinitions[0].portMappings[0].containerPort must be an integer",
    ),
    (
        "port-name-upper",
        req(c(portMappings=[pm(80, name="Web")])),
        "containerDefinitions[0].portMappings[0].name 'Web'",
    ),
    ("port-name-hyphen-first", req(c(portMappings=[pm(80, name="-web")])), "portMappings[0].name '-web'"),
    ("port-name-too-long", req(c(portMappings=[pm(80, name="a" * 65)])), "portMappings[0].name"),
    (
        "port-name-duplicate",
        req(c("a", portMappings=[pm(80, name="http")]), c("b", portMappings=[pm(81, name="http")])),
        "containerDefinitions[1].portMappings[0].name 'http' is already used by "
        "containerDefinitions[0].portMappings[0]",
    ),
    (
        "app-protocol-bad",
        req(c(portMappings=[pm(80, appProtocol="https")])),
        "portMappings[0].appProtocol must be one of",
    ),
    (
        "none-with-ports",
        req(c(portMappings=[pm(80)]), networkMode="none"),
        "containerDefinitions[0].portMappings: when networkMode=none, you cannot specify port mappings",
    ),
    (
        "network-mode-bad",
        req(networkMode="nat"),
        "networkMode must be one of bridge, host, awsvpc, none (got 'nat')",
    ),
    # port ranges
    (
        "range-format",
        req(c(portMappings=[{"containerPortRange": "8000:8010"}])),
        "containerDefinitions[0].portMappings[0].containerPortRange '8000:8010' must have the form",
    ),
    (
        "range-reversed",
        req(c(portMappings=[{"containerPortRange": "9000-8000"}])),
        "containerPortRange '9000-8000': the first port",
    ),
    (
        "range-single",
        req(c(portMappings=[{"containerPortRange": "8000-8000"}])),
        "containerPortRange '8000-8000': the first port",
    ),
    (
        "range-out-of-bounds",
        req(c(portMappings=[{"containerPortRange": "0-10"}])),
        "containerPortRange '0-10' must lie between 1 and 65535",
    ),
    (
        "range-with-host-port",
        req(c(portMappings=[{"containerPortRange": "8000-8010", "hostPort": 8000}])),
        "containerDefinitions[0].portMappings[0].hostPort must not be set with containerPortRange",
    ),
    (
        "range-with-container-port",
        req(c(portMappings=[{"containerPortRange": "8000-8010", "containerPort": 8000}])),
        "containerDefinitions[0].portMappings[0]: give either containerPort or containerPortRange",
    ),
    (
        "range-in-host-mode",
        req(c(portMappings=[{"containerPortRange": "8000-8010"}]), networkMode="host"),
        "containerPortRange is supported only when networkMode is bridge or awsvpc (got host)",
    ),
    (
        "range-overlap",
        req(c(portMappings=[{"containerPortRange": "8000-8010"}, {"containerPortRange": "8010-8020"}])),
        "containerDefinitions[0].portMappings[1] overlaps the tcp ports of "
        "containerDefinitions[0].portMappings[0]",
    ),
    (
        "range-covers-port",
        req(c(portMappings=[pm(8005), {"containerPortRange": "8000-8010"}])),
        "containerDefinitions[0].portMappings[1] overlaps",
    ),
    (
        "range-101",
        req(c(portMappings=[{"containerPortRange": f"{p}-{p + 1}"} for p in range(1000, 1203, 2)])),
        "containerDefinitions[0].portMappings may hold at most 100 port ranges",
    ),
    # links, volumesFrom, dependsOn
    (
        "link-awsvpc",
        req(c("a"), c("b", links=["a"]), networkMode="awsvpc"),
        "containerDefinitions[1].links are supported only when networkMode=bridge (got awsvpc)",
    ),
    (
        "link-unknown",
        req(c("a", links=["db"])),
        "containerDefinitions[0].links[0] link 'db' names no container",
    ),
    (
        "link-self",
        req(c("a", links=["a:alias"])),
        "containerDefinitions[0].links[0] link 'a': a container cannot name itself",
    ),
    (
        "link-bad-alias",
        req(c("a"), c("b", links=["a:my alias"])),
        "containerDefinitions[1].links[0] 'a:my alias'",
    ),
    ("link-empty-alias", req(c("a"), c("b", links=["a:"])), "containerDefinitions[1].links[0] 'a:'"),
    (
        "volumes-from-unknown",
        req(c("a", volumesFrom=[{"sourceContainer": "data"}])),
        "containerDefinitions[0].volumesFrom[0] sourceContainer 'data' names no container",
    ),
    (
        "volumes-from-self",
        req(c("a", volumesFrom=[{"sourceContainer": "a"}])),
        "volumesFrom[0] sourceContainer 'a': a container cannot name itself",
    ),
    (
        "volumes-from-missing-source",
        req(c("a", volumesFrom=[{"readOnly": True}])),
        "containerDefinitions[0].volumesFrom[0].sourceContainer is required",
    ),
    (
        "depends-on-unknown",
        req(c("a", dependsOn=[{"containerName": "db", "condition": "START"}])),
        "containerDefinitions[0].dependsOn[0] containerName 'db' names no container",
    ),
    (
        "depends-on-self",
        req(c("a", dependsOn=[{"containerName": "a", "condition": "START"}])),
        "containerDefinitions[0].dependsOn[0] containerName 'a': a container cannot name itself",
    ),
    (
        "depends-on-bad-condition",
        req(c("a"), c("b", dependsOn=[{"containerName": "a", "condition": "RUNNING"}])),
        "containerDefinitions[1].dependsOn[0].condition must be one of "
        "START, COMPLETE, SUCCESS, HEALTHY (got 'RUNNING')",
    ),
    (
        "depends-on-no-condition",
        req(c("a"), c("b", dependsOn=[{"containerName": "a"}])),
        "containerDefinitions[1].dependsOn[0].condition is required",
    ),
    (
        "depends-on-complete-essential",
        req(c("a"), c("b", dependsOn=[{"containerName": "a", "condition": "COMPLETE"}])),
        "containerDefinitions[1].dependsOn[0]: condition COMPLETE waits for container 'a' to exit",
    ),
    (
        "depends-on-healthy-no-check",
        req(c("a"), c("b", dependsOn=[{"containerName": "a", "condition": "HEALTHY"}])),
        "containerDefinitions[1].dependsOn[0]: condition HEALTHY needs a healthCheck on container 'a'",
    ),
    (
        "cycle-depends-on",
        req(
            c("a", dependsOn=[{"containerName": "b", "condition": "START"}]),
            c("b", dependsOn=[{"containerName": "a", "condition": "START"}]),
        ),
        "dependency cycle (links, volumesFrom, dependsOn): a -> b -> a",
    ),
    (
        "cycle-mixed",
        req(
            c("a", links=["c"]),
            c("b", dependsOn=[{"containerName": "a", "condition": "START"}]),
            c("c", volumesFrom=[{"sourceContainer": "b"}]),
        ),
        "dependency cycle (links, volumesFrom, dependsOn): a -> c -> b -> a",
    ),
    (
        "no-essential",
        req(c("a", essential=False), c("b", essential=False)),
        "containerDefinitions must include at least one essential container",
    ),
    ("essential-string", req(c(essential="true")), "containerDefinitions[0].essential must be a boolean"),
    # health checks
    (
        "health-no-command",
        req(c(healthCheck={"interval": 30})),
        "containerDefinitions[0].healthCheck.command is required",
    ),
    (
        "health-empty-command",
        req(c(healthCheck={"command": []})),
        "containerDefinitions[0].healthCheck.command must not be empty",
    ),
    (
        "health-bad-kind",
        req(c(healthCheck={"command": ["curl", "-f", "http://localhost/"]})),
        "containerDefinitions[0].healthCheck.command must start with CMD, CMD-SHELL or NONE (got 'curl')",
    ),
    (
        "health-cmd-alone",
        req(c(healthCheck={"command": ["CMD-SHELL"]})),
        "healthCheck.command must give the command to run after 'CMD-SHELL'",
    ),
    (
        "health-command-string",
        req(c(healthCheck={"command": "curl -f localhost"})),
        "healthCheck.command must be a list",
    ),
    (
        "health-interval-low",
        req(c(healthCheck=hc(interval=1))),
        "containerDefinitions[0].healthCheck.interval must be between 5 and 300 (got 1)",
    ),
    (
        "health-interval-high",
        req(c(healthCheck=hc(interval=301))),
        "healthCheck.interval must be between 5 and 300",
    ),
    (
        "health-timeout-low",
        req(c(healthCheck=hc(timeout=1))),
        "healthCheck.timeout must be between 2 and 60 (got 1)",
    ),
    (
        "health-timeout-high",
        req(c(healthCheck=hc(timeout=61))),
        "healthCheck.timeout must be between 2 and 60",
    ),
    (
        "health-retries-zero",
        req(c(healthCheck=hc(retries=0))),
        "healthCheck.retries must be between 1 and 10 (got 0)",
    ),
    (
        "health-retries-high",
        req(c(healthCheck=hc(retries=11))),
        "healthCheck.retries must be between 1 and 10",
    ),
    (
        "health-start-period",
        req(c(healthCheck=hc(startPeriod=301))),
        "healthCheck.startPeriod must be between 0 and 300",
    ),
    # volumes and mount points
    (
        "mount-unknown-volume",
        req(c(mountPoints=[{"sourceVolume": "data", "containerPath": "/data"}])),
        "containerDefinitions[0].mountPoints[0].sourceVolume 'data' "
        "names no volume of this task (volumes: none)",
    ),
    (
        "mount-no-path",
        req(c(mountPoints=[{"sourceVolume": "data"}]), volumes=[{"name": "data"}]),
        "containerDefinitions[0].mountPoints[0].containerPath is required",
    ),
    (
        "mount-no-source",
        req(c(mountPoints=[{"containerPath": "/data"}])),
        "containerDefinitions[0].mountPoints[0].sourceVolume is required",
    ),
    (
        "volume-duplicate",
        req(volumes=[{"name": "data"}, {"name": "data", "host": {"sourcePath": "/srv"}}]),
        "volumes[1].name 'data' is already used by volumes[0]",
    ),
    ("volume-no-name", req(volumes=[{"host": {"sourcePath": "/srv"}}]), "volumes[0].name is required"),
    ("volume-bad-name", req(volumes=[{"name": "my data"}]), "volumes[0].name 'my data'"),
    (
        "volume-bad-scope",
        req(volumes=[{"name": "d", "dockerVolumeConfiguration": {"scope": "global"}}]),
        "volumes[0].dockerVolumeConfiguration.scope must be one of task, shared",
    ),
    # timeouts, ulimits, extra hosts
    (
        "stop-timeout-negative",
        req(c(stopTimeout=-1)),
        "containerDefinitions[0].stopTimeout must be between 0 and 120 seconds (got -1)",
    ),
    (
        "stop-timeout-high",
        req(c(stopTimeout=121)),
        "containerDefinitions[0].stopTimeout must be between 0 and 120",
    ),
    (
        "start-timeout-high",
        req(c(startTimeout=600)),
        "containerDefinitions[0].startTimeout must be between 0 and 120",
    ),
    (
        "ulimit-bad-name",
        req(c(ulimits=[{"name": "openfiles", "softLimit": 1, "hardLimit": 2}])),
        "containerDefinitions[0].ulimits[0].name must be one of core, cpu",
    ),
    (
        "ulimit-missing-hard",
        req(c(ulimits=[{"name": "nofile", "softLimit": 1}])),
        "containerDefinitions[0].ulimits[0].hardLimit is required",
    ),
    (
        "ulimit-soft-above-hard",
        req(c(ulimits=[{"name": "nofile", "softLimit": 4096, "hardLimit": 1024}])),
        "containerDefinitions[0].ulimits[0].softLimit (4096) must not exceed hardLimit (1024)",
    ),
    (
        "ulimit-twice",
        req(c(ulimits=[{"name": "nofile", "softLimit": 1, "hardLimit": 2}] * 2)),
        "containerDefinitions[0].ulimits[1].name 'nofile' is given twice",
    ),
    (
        "extra-hosts-not-objects",
        req(c(extraHosts=["db:10.0.0.1"])),
        "containerDefinitions[0].extraHosts[0] must be an object",
    ),
    (
        "extra-hosts-no-ip",
        req(c(extraHosts=[{"hostname": "db"}])),
        "containerDefinitions[0].extraHosts[0].ipAddress is required",
    ),
    (
        "extra-hosts-bad-ip",
        req(c(extraHosts=[{"hostname": "db", "ipAddress": "10.0.0.300"}])),
        "containerDefinitions[0].extraHosts[0].ipAddress '10.0.0.300' is not an IP address",
    ),
    (
        "extra-hosts-awsvpc",
        req(c(extraHosts=[{"hostname": "db", "ipAddress": "10.0.0.3"}]), networkMode="awsvpc"),
        "containerDefinitions[0].extraHosts is not supported when networkMode=awsvpc",
    ),
    # placement, compatibilities, tags, secrets, logs, proxy
    (
        "placement-distinct-instance",
        req(placementConstraints=[{"type": "distinctInstance"}]),
        "placementConstraints[0].type must be one of memberOf (got 'distinctInstance')",
    ),
    (
        "placement-eleven",
        req(placementConstraints=[{"type": "memberOf", "expression": "attribute:x == y"}] * 11),
        "placementConstraints may hold at most 10 constraints (got 11)",
    ),
    (
        "placement-no-expression",
        req(placementConstraints=[{"type": "memberOf"}]),
        "placementConstraints[0].expression is required",
    ),
    (
        "fargate-bridge",
        req(requiresCompatibilities=["FARGATE"], cpu="256", memory="512"),
        "requiresCompatibilities includes FARGATE, which needs networkMode=awsvpc (got bridge)",
    ),
    (
        "fargate-no-cpu",
        req(requiresCompatibilities=["FARGATE"], networkMode="awsvpc", memory="512"),
        "requiresCompatibilities includes FARGATE, which needs a task-level cpu",
    ),
    (
        "compatibility-bad",
        req(requiresCompatibilities=["LAMBDA"]),
        "requiresCompatibilities[0] must be one of EC2, FARGATE",
    ),
    (
        "tags-51",
        req(tags=[{"key": f"k{i}", "value": "v"} for i in range(51)]),
        "tags may hold at most 50 tags (got 51)",
    ),
    (
        "secret-no-value-from",
        req(c(secrets=[{"name": "DB_PASSWORD"}])),
        "containerDefinitions[0].secrets[0].valueFrom is required",
    ),
    (
        "log-driver-bad",
        req(c(logConfiguration={"logDriver": "loki"})),
        "containerDefinitions[0].logConfiguration.logDriver must be one of",
    ),
    (
        "log-options-not-strings",
        req(c(logConfiguration={"logDriver": "awslogs", "options": {"awslogs-create-group": True}})),
        "containerDefinitions[0].logConfiguration.options.awslogs-create-group must be a string",
    ),
    (
        "environment-value-int",
        req(c(environment=[{"name": "PORT", "value": 80}])),
        "containerDefinitions[0].environment[0].value must be a string",
    ),
    (
        "docker-labels-list",
        req(c(dockerLabels=["a=b"])),
        "containerDefinitions[0].dockerLabels must be an object",
    ),
    (
        "proxy-unknown-container",
        req(proxyConfiguration={"type": "APPMESH", "containerName": "envoy"}),
        "proxyConfiguration.containerName 'envoy' names no container of this task",
    ),
    (
        "ephemeral-storage-string",
        req(ephemeralStorage={"sizeInGiB": "21"}),
        "ephemeralStorage.sizeInGiB must be an integer",
    ),
]


@pytest.mark.parametrize(("request_", "fragment"), [pytest.param(r, f, id=i) for i, r, f in NAMED])
def test_malformed_definitions_name_the_field(request_: Any, fragment: str) -> None:
    assert fragment in reject(request_)


def test_there_are_many_malformed_cases() -> None:
    assert len(NAMED) + len(EXACT) >= 30


def test_first_violation_wins_in_document_order() -> None:
    bad = req(c("a", memory=4), c("b", image=""))
    assert reject(bad).startswith("containerDefinitions[0].memory")


# ---- what registration accepts ----------------------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(req(c(memory=None), memory="512"), id="task-memory-instead-of-container-memory"),
        pytest.param(req(c(memory=None, memoryReservation=64)), id="reservation-only"),
        pytest.param(req(c(memory=256, memoryReservation=256)), id="memory-equal-to-reservation"),
        pytest.param(req(c(portMappings=[pm(53), pm(53, protocol="udp")])), id="same-port-tcp-and-udp"),
        pytest.param(
            req(c(portMappings=[pm(80, hostPort=80)]), networkMode="awsvpc"), id="awsvpc-matching-host-port"
        ),
        pytest.param(req(c(portMappings=[pm(80)]), networkMode="host"), id="host-no-host-port"),
        pytest.param(
            req(c(portMappings=[{"containerPortRange": "8000-8010"}, pm(9000)])), id="range-and-port"
        ),
        pytest.param(
            req(
                c(
                    portMappings=[
                        {"containerPortRange": "8000-8010", "protocol": "udp"},
                        {"containerPortRange": "8000-8010"},
                    ]
                )
            ),
            id="range-per-protocol",
        ),
        pytest.param(req(c(healthCheck={"command": ["NONE"]})), id="health-check-none"),
        pytest.param(
            req(c(healthCheck=hc(interval=5, timeout=60, retries=10, startPeriod=0))), id="health-bounds"
        ),
        pytest.param(
            req(c("a", essential=False), c("b", dependsOn=[{"containerName": "a", "condition": "SUCCESS"}])),
            id="success-on-non-essential",
        ),
        pytest.param(
            req(c("a"), c("b", links=["a:db"], volumesFrom=[{"sourceContainer": "a"}])), id="link-with-alias"
        ),
        pytest.param(req(c(image="nginx@sha256:" + "a" * 64)), id="image-digest"),
        pytest.param(req(c(image="r/" + "x" * 253 + "@sha256:" + "0" * 64)), id="long-repo-with-digest"),
        pytest.param(req(c(stopTimeout=120, startTimeout=0)), id="timeout-bounds"),
        pytest.param(req(c(cpu=1024), cpu="1024"), id="container-cpu-equal-to-task"),
        pytest.param(req(c(extraHosts=[{"hostname": "db", "ipAddress": "fd00::1"}])), id="extra-host-ipv6"),
        pytest.param(
            req(placementConstraints=[{"type": "memberOf", "expression": "attribute:ecs.os-type == linux"}]),
            id="member-of",
        ),
    ],
)
def test_valid_definitions_register(request_: dict[str, Any]) -> None:
    validate_registration(request_)


# ---- echoed defaults --------------------------------------------------------------------


def test_matches_the_botocore_register_example() -> None:
    examples = botocore.loaders.Loader().load_data("ecs/2014-11-13/examples-1")["examples"]
    example = examples["RegisterTaskDefinition"][0]
    content = validate_registration(example["input"])
    expected = example["output"]["taskDefinition"]
    assert content["containerDefinitions"] == expected["containerDefinitions"]
    assert content["family"] == expected["family"]
    assert content["volumes"] == expected["volumes"]


def test_container_defaults_are_echoed() -> None:
    content = validate_registration(req(c("web", memory=500, portMappings=[pm(80)])))
    # The shape terraform-provider-aws's equivalency tests give for the API's answer.
    assert content["containerDefinitions"] == [
        {
            "name": "web",
            "image": "nginx:1.27",
            "memory": 500,
            "cpu": 0,
            "portMappings": [{"containerPort": 80, "hostPort": 0, "protocol": "tcp"}],
            "essential": True,
            "environment": [],
            "mountPoints": [],
            "volumesFrom": [],
        }
    ]
    assert content["volumes"] == []
    assert content["placementConstraints"] == []


def test_network_mode_is_not_echoed_but_reads_as_bridge() -> None:
    content = validate_registration(req())
    assert "networkMode" not in content
    assert network_mode(content) == "bridge"
    assert network_mode(validate_registration(req(networkMode="host"))) == "host"


@pytest.mark.parametrize("mode", ["awsvpc", "host"])
def test_blank_host_port_is_stored_as_container_port(mode: str) -> None:
    content = validate_registration(req(c(portMappings=[pm(8080), pm(53, protocol="udp")]), networkMode=mode))
    assert content["containerDefinitions"][0]["portMappings"] == [
        {"containerPort": 8080, "hostPort": 8080, "protocol": "tcp"},
        {"containerPort": 53, "hostPort": 53, "protocol": "udp"},
    ]


def test_port_ranges_get_a_protocol_but_no_host_port() -> None:
    content = validate_registration(
        req(c(portMappings=[{"containerPortRange": "8000-8010"}]), networkMode="awsvpc")
    )
    assert content["containerDefinitions"][0]["portMappings"] == [
        {"containerPortRange": "8000-8010", "protocol": "tcp"}
    ]


def test_given_values_are_not_replaced_by_defaults() -> None:
    container = c(
        essential=False,
        cpu=5,
        environment=[{"name": "A", "value": "1"}],
        portMappings=[pm(80, hostPort=8080, protocol="udp")],
        healthCheck=hc(interval=10, retries=1),
    )
    content = validate_registration(req(c("main"), container | {"name": "side"}, volumes=[{"name": "v"}]))
    side = content["containerDefinitions"][1]
    assert side["essential"] is False and side["cpu"] == 5
    assert side["environment"] == [{"name": "A", "value": "1"}]
    assert side["portMappings"] == [{"containerPort": 80, "hostPort": 8080, "protocol": "udp"}]
    assert side["healthCheck"] == {"command": hc()["command"], "interval": 10, "retries": 1, "timeout": 5}
    assert content["volumes"] == [{"name": "v"}]


def test_health_check_defaults_are_echoed_but_not_start_period() -> None:
    content = validate_registration(req(c(healthCheck=hc())))
    assert content["containerDefinitions"][0]["healthCheck"] == {
        "command": ["CMD-SHELL", "curl -f http://localhost/ || exit 1"],
        "interval": 30,
        "timeout": 5,
        "retries": 3,
    }


def test_tags_are_not_part_of_the_content() -> None:
    content = validate_registration(req(tags=[{"key": "team", "value": "web"}]))
    assert "tags" not in content
    assert content["family"] == "web"


def test_nulls_mean_not_given() -> None:
    request = req(
        c(memoryReservation=None, healthCheck=None) | {"links": None, "cpu": None},
        networkMode=None,
        taskRoleArn=None,
    )
    request["networkMode"] = None
    request["containerDefinitions"][0]["links"] = None
    content = validate_registration(request)
    assert "networkMode" not in content
    assert "links" not in content["containerDefinitions"][0]
    assert content["containerDefinitions"][0]["cpu"] == 0


def test_null_family_is_missing() -> None:
    assert reject({"family": None, "containerDefinitions": [c()]}) == "family is required"


# ---- task-level cpu and memory ----------------------------------------------------------


@pytest.mark.parametrize(
    ("cpu", "memory", "cpu_out", "memory_out"),
    [
        ("1 vCPU", "1GB", "1024", "1024"),
        ("0.5 vCPU", "512", "512", "512"),
        (".25 vcpu", "0.5GB", "256", "512"),
        ("2 vcpu", "2 GB", "2048", "2048"),
        ("4vCPU", "8gb", "4096", "8192"),
        ("1024", "3072", "1024", "3072"),
        (" 256 ", "0512", "256", "512"),
        ("192 vCPU", "1.5 GB", "196608", "1536"),
    ],
)
def test_task_cpu_and_memory_are_normalised(cpu: str, memory: str, cpu_out: str, memory_out: str) -> None:
    content = validate_registration(req(c(memory=None), cpu=cpu, memory=memory))
    assert (content["cpu"], content["memory"]) == (cpu_out, memory_out)


@pytest.mark.parametrize(
    "value", ["", "vCPU", "1.5", "-256", "1 cpu", "0.0001 vCPU", "127", "200 vCPU", "1e3"]
)
def test_parse_task_cpu_refuses(value: str) -> None:
    with pytest.raises(ClientException) as info:
        parse_task_cpu(value)
    assert info.value.message == INVALID_CPU


@pytest.mark.parametrize("value", ["", "GB", "1.5", "512 MiB", "-1", "0 GB", "0.0001GB", "1 TB"])
def test_parse_task_memory_refuses(value: str) -> None:
    with pytest.raises(ClientException) as info:
        parse_task_memory(value)
    assert info.value.message == INVALID_MEMORY


def test_parse_task_size() -> None:
    assert parse_task_cpu("128") == 128
    assert parse_task_cpu("0.125 vCPU") == 128
    assert parse_task_memory("1GB") == 1024
    assert parse_task_memory("30 GB") == 30720


# ---- task_resources ---------------------------------------------------------------------


def test_task_resources_prefers_task_level_values() -> None:
    content = validate_registration(req(c("a", cpu=100, memory=300), cpu="0.5 vCPU", memory="1GB"))
    assert task_resources(content) == (512, 1024)


def test_task_resources_sums_containers_preferring_reservation() -> None:
    content = validate_registration(
        req(
            c("a", cpu=100, memory=300, memoryReservation=200),
            c("b", memory=128),
            c("c", cpu=None, memory=64),
        )
    )
    assert task_resources(content) == (100, 200 + 128 + 64)


def test_task_resources_mixes_task_cpu_with_container_memory() -> None:
    content = validate_registration(
        req(c("a", cpu=10, memory=100), c("b", cpu=20, memory=None, memoryReservation=50), cpu="256")
    )
    assert task_resources(content) == (256, 150)


def test_task_resources_on_unvalidated_content() -> None:
    assert task_resources({"containerDefinitions": [{"name": "a", "memory": 10}]}) == (0, 10)


# ---- unknown fields, immutability -------------------------------------------------------

UNUSUAL = {
    "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
    "ephemeralStorage": {"sizeInGiB": 30},
    "inferenceAccelerators": [{"deviceName": "device1", "deviceType": "eia2.medium"}],
    "ipcMode": "task",
    "pidMode": "task",
    "enableFaultInjection": False,
    "taskRoleArn": "arn:aws:iam::123456789012:role/app",
    "executionRoleArn": "arn:aws:iam::123456789012:role/exec",
    "someFutureTaskField": {"anything": [1, 2, 3]},
}
UNUSUAL_CONTAINER = {
    "secrets": [{"name": "DB_PASSWORD", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/db"}],
    "logConfiguration": {
        "logDriver": "awslogs",
        "options": {"awslogs-group": "/ecs/web"},
        "secretOptions": [{"name": "x", "valueFrom": "y"}],
    },
    "linuxParameters": {
        "initProcessEnabled": True,
        "capabilities": {"add": ["SYS_PTRACE"]},
        "tmpfs": [{"containerPath": "/tmp", "size": 64}],
    },
    "dockerLabels": {"com.example.team": "web"},
    "systemControls": [{"namespace": "net.core.somaxconn", "value": "1024"}],
    "restartPolicy": {"enabled": True, "ignoredExitCodes": [0], "restartAttemptPeriod": 60},
    "firelensConfiguration": {"type": "fluentbit"},
    "repositoryCredentials": {
        "credentialsParameter": "arn:aws:secretsmanager:us-east-1:123456789012:secret:x"
    },
    "versionConsistency": "disabled",
    "credentialSpecs": ["credentialspecdomainless:arn:aws:s3:::bucket/spec.json"],
    "someFutureContainerField": "kept",
}


def test_unknown_and_unused_fields_are_kept() -> None:
    proxy = {
        "type": "APPMESH",
        "containerName": "envoy",
        "properties": [{"name": "AppPorts", "value": "8080"}],
    }
    request = req(c("web", **UNUSUAL_CONTAINER), c("envoy", user="1337"), proxyConfiguration=proxy, **UNUSUAL)
    content = validate_registration(request)
    for key, value in {**UNUSUAL, "proxyConfiguration": proxy}.items():
        assert content[key] == value
    for key, value in UNUSUAL_CONTAINER.items():
        assert content["containerDefinitions"][0][key] == value
    assert content["containerDefinitions"][1]["user"] == "1337"


def test_input_is_never_mutated() -> None:
    request = req(
        c("web", portMappings=[pm(80)], healthCheck=hc(), **UNUSUAL_CONTAINER),
        c("side", memory=None, memoryReservation=10, cpu=None, links=None),
        cpu="1 vCPU",
        memory="1GB",
        tags=[{"key": "a", "value": "b"}],
        taskRoleArn=None,
    )
    request["taskRoleArn"] = None
    before = copy.deepcopy(request)
    content = validate_registration(request)
    assert request == before
    content["containerDefinitions"][0]["logConfiguration"]["options"]["new"] = "x"
    assert request == before


def test_the_content_is_json() -> None:
    content = validate_registration(
        req(c(portMappings=[pm(80)], healthCheck=hc()), cpu="1 vCPU", memory="1GB")
    )
    assert json.loads(json.dumps(content)) == content


# ---- the type table agrees with botocore's model ---------------------------------------


def _agree(spec: schema.Spec, shape: dict[str, Any], shapes: dict[str, Any], path: str) -> None:
    kind = shape["type"]
    if isinstance(spec, schema.Str):
        assert kind == "string", path
        if spec.enum is not None:
            assert set(spec.enum) == set(shape["enum"]), path
    elif isinstance(spec, schema.Int):
        assert kind in ("integer", "long"), path
    elif isinstance(spec, schema.Bool):
        assert kind == "boolean", path
    elif isinstance(spec, schema.ListOf):
        assert kind == "list", path
        _agree(spec.item, shapes[shape["member"]["shape"]], shapes, path + "[]")
    elif isinstance(spec, schema.MapOf):
        assert kind == "map", path
        _agree(spec.value, shapes[shape["value"]["shape"]], shapes, path + "{}")
    else:
        assert kind == "structure", path
        assert set(spec.required) == set(shape.get("required", [])), path
        for name, member in spec.members.items():
            assert name in shape["members"], f"{path}.{name} is not in the model"
            _agree(member, shapes[shape["members"][name]["shape"]], shapes, f"{path}.{name}")


def test_type_table_agrees_with_the_botocore_model() -> None:
    model = botocore.loaders.Loader().load_service_model("ecs", "service-2")
    shapes = model["shapes"]
    _agree(schema.REGISTER_TASK_DEFINITION, shapes["RegisterTaskDefinitionRequest"], shapes, "request")


def test_type_table_covers_the_container_definition() -> None:
    model = botocore.loaders.Loader().load_service_model("ecs", "service-2")
    members = set(model["shapes"]["ContainerDefinition"]["members"])
    assert members <= set(schema.CONTAINER_DEFINITION.members)


# ---- properties -------------------------------------------------------------------------

NAMES = st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)
IMAGES = st.sampled_from(
    ["nginx", "busybox:1.36", "public.ecr.aws/docker/library/redis:7", "127.0.0.1:5000/app:v1"]
)


@st.composite
def definitions(draw: st.DrawFn) -> dict[str, Any]:
    """Valid RegisterTaskDefinition requests (task cpu/memory, if any, in canonical form)."""
    mode = draw(st.sampled_from([None, "bridge", "host", "awsvpc"]))
    names = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    ports = iter(draw(st.lists(st.integers(1, 65535), min_size=12, max_size=12, unique=True)))
    static = iter(range(20000, 20100))
    containers = []
    for i, name in enumerate(names):
        container: dict[str, Any] = {"name": name, "image": draw(IMAGES)}
        memory = draw(st.one_of(st.none(), st.integers(6, 2048)))
        if memory is None or draw(st.booleans()):
            container["memoryReservation"] = draw(st.integers(1, memory or 2048))
        if memory is not None:
            container["memory"] = memory
        if draw(st.booleans()):
            container["cpu"] = draw(st.integers(0, 1024))
        if i > 0 and draw(st.booleans()):
            container["essential"] = draw(st.booleans())
        mappings = []
        for _ in range(draw(st.integers(0, 3))):
            mapping: dict[str, Any] = {"containerPort": next(ports)}
            if draw(st.booleans()):
                mapping["protocol"] = draw(st.sampled_from(["tcp", "udp"]))
            if mode in ("host", "awsvpc"):
                if draw(st.booleans()):
                    mapping["hostPort"] = mapping["containerPort"]
            elif draw(st.booleans()):
                mapping["hostPort"] = draw(st.sampled_from([0, next(static)]))
            mappings.append(mapping)
        if mappings or draw(st.booleans()):
            container["portMappings"] = mappings
        if draw(st.booleans()):
            container["environment"] = draw(
                st.lists(st.fixed_dictionaries({"name": NAMES, "value": st.text(max_size=8)}), max_size=3)
            )
        if draw(st.booleans()):
            container["healthCheck"] = {
                "command": draw(st.sampled_from([["CMD-SHELL", "exit 0"], ["CMD", "true"], ["NONE"]])),
                **draw(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "interval": st.integers(5, 300),
                            "timeout": st.integers(2, 60),
                            "retries": st.integers(1, 10),
                            "startPeriod": st.integers(0, 300),
                        },
                    )
                ),
            }
        if i > 0 and draw(st.booleans()):
            container["dependsOn"] = [{"containerName": names[0], "condition": "START"}]
        if i > 0 and mode in (None, "bridge") and draw(st.booleans()):
            container["links"] = [f"{names[0]}:{draw(NAMES)}"]
        containers.append(container)
    request: dict[str, Any] = {"family": draw(NAMES), "containerDefinitions": containers}
    if mode is not None:
        request["networkMode"] = mode
    if draw(st.booleans()):
        total = sum(c.get("memory") or c.get("memoryReservation") or 0 for c in containers)
        request["memory"] = str(total + draw(st.integers(0, 1024)))
    if draw(st.booleans()):
        request["cpu"] = str(max(128, sum(c.get("cpu", 0) for c in containers)) + draw(st.integers(0, 1024)))
    if draw(st.booleans()):
        request["ipcMode"] = "task"
    if draw(st.booleans()):
        request["volumes"] = []
    return request


def assert_submitted_unchanged(submitted: Any, stored: Any, path: str = "") -> None:
    """Every member of ``submitted`` is in ``stored`` with the same value (stored may add members)."""
    if isinstance(submitted, dict):
        assert isinstance(stored, dict), path
        for key, value in submitted.items():
            assert key in stored, f"{path}.{key} was dropped"
            assert_submitted_unchanged(value, stored[key], f"{path}.{key}")
    elif isinstance(submitted, list):
        assert isinstance(stored, list) and len(stored) == len(submitted), path
        for i, (a, b) in enumerate(zip(submitted, stored, strict=True)):
            assert_submitted_unchanged(a, b, f"{path}[{i}]")
    else:
        assert type(submitted) is type(stored) and submitted == stored, path


@settings(max_examples=300, deadline=None)
@given(definitions())
def test_valid_definitions_round_trip(request: dict[str, Any]) -> None:
    before = copy.deepcopy(request)
    content = validate_registration(request)
    assert request == before
    assert_submitted_unchanged(request, content)
    for container in content["containerDefinitions"]:
        assert {"essential", "cpu", "environment", "mountPoints", "portMappings", "volumesFrom"} <= set(
            container
        )
        for mapping in container["portMappings"]:
            assert mapping["protocol"] in ("tcp", "udp") and "hostPort" in mapping
    cpu, memory = task_resources(content)
    assert cpu >= 0 and memory > 0


@settings(max_examples=200, deadline=None)
@given(definitions())
def test_stored_content_registers_to_itself(request: dict[str, Any]) -> None:
    content = validate_registration(request)
    assert validate_registration(content) == content


@settings(max_examples=200, deadline=None)
@given(definitions(), st.sampled_from(["family", "containerDefinitions"]))
def test_required_members_are_required(request: dict[str, Any], member: str) -> None:
    del request[member]
    assert reject(request) == f"{member} is required"
