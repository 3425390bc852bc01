"""Task definitions: validate a RegisterTaskDefinition request and decide what is stored.

Pure: no I/O, no clock, no Docker. The API edge calls ``validate_registration`` with the
JSON body exactly as boto3 or ``aws ecs register-task-definition --cli-input-json`` sends
it; the store keeps the returned content and adds the output-only fields itself
(``taskDefinitionArn``, ``revision``, ``status``, ``registeredAt``, ...).

What the content is (the request, never mutated, then):

- every submitted member kept as submitted, including members portside does not act on
  and members this module does not know (a newer ECS feature);
- ``null`` members dropped: AWS's JSON protocol treats null as "not given" and ECS never
  echoes one (botocore clients cannot even send one);
- ``tags`` removed: ECS returns them beside the task definition, not inside it;
- task-level ``cpu``/``memory`` normalised to unit/MiB strings ("1 vCPU" -> "1024",
  "1GB" -> "1024"), as ECS does on registration ([model] RegisterTaskDefinitionRequest);
- the defaults ECS echoes back, listed in ``_with_defaults``.

``networkMode`` is *not* echoed when absent: ECS leaves it out of the stored definition and
readers treat absence as ``bridge`` (sil-org/ecs-deploy PR #61: "task definitions with
network mode 'bridge' will not print the networkMode attribute"; aws/amazon-cloudwatch-agent
issue #330 / PR #335 handle a nil NetworkMode as bridge). Use ``network_mode(content)``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from portside.core import taskdef_ports as ports
from portside.core import taskdef_refs as refs
from portside.core import taskdef_rules as rules
from portside.core.taskdef_rules import parse_task_cpu, parse_task_memory
from portside.core.taskdef_schema import check_types
from portside.errors import ClientException

__all__ = [
    "DEFAULT_NETWORK_MODE",
    "network_mode",
    "parse_task_cpu",
    "parse_task_memory",
    "task_resources",
    "validate_registration",
]

DEFAULT_NETWORK_MODE = "bridge"
DEFAULT_PROTOCOL = "tcp"
# ECS fills these into a healthCheck that omits them (DescribeTaskDefinition returns them):
# terraform-aws-modules/terraform-aws-ecs issue #148, eagletmt/hako PR #56, and
# terraform-provider-aws internal/service/ecs/container_definitions.go (reduce()).
DEFAULT_HEALTH_CHECK = {"interval": 30, "timeout": 5, "retries": 3}
# Echoed as [] when absent: the container lists and "volumes" in [model] examples-1.json
# (RegisterTaskDefinition output); "placementConstraints": [] in DescribeTaskDefinition
# outputs saved in the wild (e.g. AWS-FCAJ-Intern/courshare-payment-service
# .aws/task-definition.json, aws-samples/aws-containers-task-definitions nginx/nginx_ec2.json).
ECHOED_CONTAINER_LISTS = ("environment", "mountPoints", "portMappings", "volumesFrom")
ECHOED_TASK_LISTS = ("volumes", "placementConstraints")


def validate_registration(request: dict[str, Any]) -> dict[str, Any]:
    """Validate a RegisterTaskDefinition request body and return the content to store.

    *Returns* a new dict (see the module docstring for what it holds).
    *Raises* ``ClientException`` naming the first field that breaks a rule.
    """
    if not isinstance(request, dict):
        raise ClientException("request must be an object")
    rules.check_not_output(request)
    body = _without_nulls(request)
    check_types(body)
    rules.check_family(body["family"])
    mode = network_mode(body)
    rules.check_compatibilities(body, mode)
    task_cpu = parse_task_cpu(body["cpu"]) if "cpu" in body else None
    task_memory = parse_task_memory(body["memory"]) if "memory" in body else None
    rules.check_volumes(body.get("volumes", []))
    volume_names = {v["name"] for v in body.get("volumes", [])}

    containers: list[dict[str, Any]] = body["containerDefinitions"]
    rules.check_container_count(containers)
    rules.check_container_names(containers)
    for i, container in enumerate(containers):
        _check_container(container, f"containerDefinitions[{i}]", mode, task_memory, volume_names)
    ports.check_task_ports(containers, mode)
    refs.check_references(containers, mode)
    _check_task_totals(containers, task_cpu, task_memory)

    if "proxyConfiguration" in body:
        refs.check_proxy_configuration(body["proxyConfiguration"], containers)
    rules.check_placement_constraints(body.get("placementConstraints", []))
    rules.check_tags(body.get("tags", []))
    return _with_defaults(body, mode, task_cpu, task_memory)


def network_mode(content: Mapping[str, Any]) -> str:
    """The task's network mode; ``bridge`` when the definition does not say."""
    return content.get("networkMode") or DEFAULT_NETWORK_MODE


def task_resources(content: Mapping[str, Any]) -> tuple[int, int]:
    """(CPU units, MiB) a task of this definition reserves on a host.

    Task-level ``cpu``/``memory`` when set, else the sum over containers: ``cpu`` (0 when
    absent) and ``memoryReservation``, else ``memory`` (the ECS agent's ``ToHostResources``).
    """
    containers = content["containerDefinitions"]
    if content.get("cpu") is not None:
        cpu = parse_task_cpu(content["cpu"])
    else:
        cpu = sum(c.get("cpu") or 0 for c in containers)
    if content.get("memory") is not None:
        memory = parse_task_memory(content["memory"])
    else:
        memory = sum(c.get("memoryReservation") or c.get("memory") or 0 for c in containers)
    return cpu, memory


def _check_container(
    container: Mapping[str, Any], p: str, mode: str, task_memory: int | None, volume_names: set[str]
) -> None:
    rules.check_image(container, p)
    rules.check_container_memory(container, p, task_memory)
    rules.check_container_scalars(container, p)
    ports.check_port_mappings(container, p, mode)
    if "healthCheck" in container:
        rules.check_health_check(container["healthCheck"], f"{p}.healthCheck")
    rules.check_ulimits(container.get("ulimits", []), f"{p}.ulimits")
    rules.check_extra_hosts(container.get("extraHosts", []), f"{p}.extraHosts", mode)
    rules.check_mount_points(container, p, volume_names)


def _check_task_totals(
    containers: list[dict[str, Any]], task_cpu: int | None, task_memory: int | None
) -> None:
    if task_memory is not None:
        # The hard limit is what a container may really use, so it counts first here.
        total = sum(c.get("memory") or c.get("memoryReservation") or 0 for c in containers)
        if total > task_memory:
            raise ClientException(
                f"containerDefinitions need {total} MiB of memory in all (memory, else memoryReservation), "
                f"more than the task-level memory of {task_memory} MiB"
            )
    if task_cpu is not None:
        total = sum(c.get("cpu") or 0 for c in containers)
        if total > task_cpu:
            raise ClientException(
                f"containerDefinitions need {total} CPU units in all, "
                f"more than the task-level cpu of {task_cpu}"
            )


def _without_nulls(value: Any) -> Any:
    """A deep copy of ``value`` without the object members whose value is null."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return copy.deepcopy(value)


def _with_defaults(
    body: dict[str, Any], mode: str, task_cpu: int | None, task_memory: int | None
) -> dict[str, Any]:
    """The stored content: ``body`` (already a private copy) plus what ECS echoes back.

    - task: ``volumes: []``, ``placementConstraints: []``; ``cpu``/``memory`` normalised; no ``tags``.
    - container: ``essential: true``; ``cpu: 0`` (ECS returns 0 for a container without cpu:
      eagletmt/hako PR #50, go-to-k/cdk-real-drift PR #321; the model's ``cpu`` is a plain
      ``Integer``, never absent); empty ``environment``, ``mountPoints``, ``portMappings``,
      ``volumesFrom``; healthCheck ``interval``/``timeout``/``retries``.
    - port mapping (single port, not ``containerPortRange``): ``protocol: "tcp"``; an absent
      ``hostPort`` is stored as ``0`` in bridge mode (dynamic) and as the ``containerPort`` in
      awsvpc mode. Evidence: terraform-provider-aws ``aws/ecs_task_definition_equivalency_test.go``
      models the API's answer to ``{"containerPort": 80}`` as ``{"containerPort": 80, "hostPort": 0,
      "protocol": "tcp"}`` (and ``cpu: 0`` for containers without cpu); terraform-provider-aws
      issue #3401 and turnerlabs/terraform-ecs-fargate PR #11 for awsvpc. Host mode is stored like
      awsvpc, after the design of host networking: "If the host port is not specified, the host
      port will be same as container port" (aws/amazon-ecs-agent issue #185; the echo itself is
      unverified). A ``containerPortRange`` mapping gets no hostPort (ECS reports hostPortRange
      at run time).
    - volume: an ``efsVolumeConfiguration`` without ``rootDirectory`` gets ``/``, as ECS echoes it.
    """
    body.pop("tags", None)
    if task_cpu is not None:
        body["cpu"] = str(task_cpu)
    if task_memory is not None:
        body["memory"] = str(task_memory)
    for key in ECHOED_TASK_LISTS:
        body.setdefault(key, [])
    for container in body["containerDefinitions"]:
        container.setdefault("essential", True)
        container.setdefault("cpu", 0)
        for key in ECHOED_CONTAINER_LISTS:
            container.setdefault(key, [])
        for mapping in container["portMappings"]:
            mapping.setdefault("protocol", DEFAULT_PROTOCOL)
            if "containerPort" in mapping:
                mapping.setdefault("hostPort", 0 if mode == "bridge" else mapping["containerPort"])
        if "healthCheck" in container:
            for key, value in DEFAULT_HEALTH_CHECK.items():
                container["healthCheck"].setdefault(key, value)
    for volume in body.get("volumes", []):
        if "efsVolumeConfiguration" in volume:  # ECS echoes the file system's root when none is given
            volume["efsVolumeConfiguration"].setdefault("rootDirectory", "/")
    return body
