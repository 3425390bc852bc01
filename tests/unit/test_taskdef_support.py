"""core/taskdef_support.py: every task definition field is applied, refused or ignored, and said so."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import botocore.loaders
import pytest

from portside.core.taskdef_support import (
    FIELDS,
    OVERRIDE_FIELDS,
    OVERRIDE_SHAPES,
    SHAPES,
    Support,
    check_overrides_supported,
    check_supported,
)
from portside.errors import InvalidParameterException

DOCS = Path(__file__).resolve().parents[2] / "docs" / "task-definitions.md"
ROW = re.compile(r"^\| `(?!overrides\.)([^`]+)` \| (applied|refused|ignored) \|")
OVERRIDE_ROW = re.compile(r"^\| `overrides\.([^`]+)` \| (applied|refused|ignored) \|")


def model_shapes() -> dict[str, Any]:
    return botocore.loaders.Loader().load_service_model("ecs", "service-2")["shapes"]


def test_every_member_of_botocores_shapes_is_in_the_table() -> None:
    shapes = model_shapes()
    expected = {prefix + member for prefix, shape in SHAPES.items() for member in shapes[shape]["members"]}
    assert expected - set(FIELDS) == set(), "fields ECS has and portside does not list"
    assert set(FIELDS) - expected == set(), "fields portside lists that ECS does not have"


def test_the_docs_table_says_what_the_code_does() -> None:
    rows = {m.group(1): m.group(2) for line in DOCS.read_text().splitlines() if (m := ROW.match(line))}
    assert rows == {path: row.support.value for path, row in FIELDS.items()}


def task(container: dict[str, Any] | None = None, **task_fields: Any) -> dict[str, Any]:
    return {
        "family": "t",
        "containerDefinitions": [{"name": "c", "image": "busybox", "memory": 64, **(container or {})}],
        **task_fields,
    }


def refusal(content: dict[str, Any]) -> str:
    with pytest.raises(InvalidParameterException) as info:
        check_supported(content)
    return info.value.message


SECRET = [{"name": "DB", "valueFrom": "arn:aws:ssm:us-east-1:000000000000:parameter/db"}]


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (
            task({"environmentFiles": [{"value": "arn:aws:s3:::b/x.env", "type": "s3"}]}),
            "containerDefinitions[0].environmentFiles",
        ),
        (
            task({"repositoryCredentials": {"credentialsParameter": "arn:x"}}),
            "containerDefinitions[0].repositoryCredentials",
        ),
        (
            task({"firelensConfiguration": {"type": "fluentbit"}}),
            "containerDefinitions[0].firelensConfiguration",
        ),
        (
            task({"resourceRequirements": [{"type": "GPU", "value": "1"}]}),
            "containerDefinitions[0].resourceRequirements",
        ),
        (
            task({"credentialSpecs": ["credentialspecdomainless:arn:x"]}),
            "containerDefinitions[0].credentialSpecs",
        ),
        (task({"restartPolicy": {"enabled": True}}), "containerDefinitions[0].restartPolicy"),
        (
            task({"logConfiguration": {"logDriver": "awslogs", "options": {}}}),
            "containerDefinitions[0].logConfiguration.options.awslogs-group",
        ),
        (
            task({"logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": "g", "awslogs-datetime-format": "%Y"}}}),
            "containerDefinitions[0].logConfiguration.options.awslogs-datetime-format",
        ),
        (
            task({"logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "g", "awslogs-bogus": "1"}}}),
            "containerDefinitions[0].logConfiguration.options.awslogs-bogus",
        ),
        (
            task({"logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": "g", "awslogs-create-group": "yes"}}}),
            "containerDefinitions[0].logConfiguration.options.awslogs-create-group",
        ),
        (
            task({"logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "g:x"}}}),
            "containerDefinitions[0].logConfiguration.options.awslogs-group",
        ),
        (
            task({"logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": "g", "awslogs-stream-prefix": "a*b"}}}),
            "containerDefinitions[0].logConfiguration.options.awslogs-stream-prefix",
        ),
        (
            task({"logConfiguration": {"logDriver": "awsfirelens"}}),
            "containerDefinitions[0].logConfiguration.logDriver",
        ),
        (
            task({"logConfiguration": {"logDriver": "json-file", "secretOptions": SECRET}}),
            "containerDefinitions[0].logConfiguration.secretOptions",
        ),
        (
            task({"memory": None, "memoryReservation": 64, "linuxParameters": {"maxSwap": 128}}),
            "containerDefinitions[0].linuxParameters.maxSwap",
        ),
        (task({"linuxParameters": {"maxSwap": -1}}), "containerDefinitions[0].linuxParameters.maxSwap"),
        (
            task({"linuxParameters": {"maxSwap": 0, "swappiness": 101}}),
            "containerDefinitions[0].linuxParameters.swappiness",
        ),
        (
            task({"linuxParameters": {"sharedMemorySize": 0}}),
            "containerDefinitions[0].linuxParameters.sharedMemorySize",
        ),
        (
            task({"linuxParameters": {"tmpfs": [{"containerPath": "/t", "size": 0}]}}),
            "containerDefinitions[0].linuxParameters.tmpfs[0].size",
        ),
        (
            task({"disableNetworking": True, "portMappings": [{"containerPort": 80}]}),
            "containerDefinitions[0].disableNetworking",
        ),
        (
            task({"disableNetworking": True}, networkMode="awsvpc"),
            "containerDefinitions[0].disableNetworking",
        ),
        (
            task(
                {"systemControls": [{"namespace": "net.core.somaxconn", "value": "511"}]}, networkMode="host"
            ),
            "containerDefinitions[0].systemControls[0]",
        ),
        (
            task({"systemControls": [{"namespace": "fs.mqueue.msg_max", "value": "20"}]}, ipcMode="host"),
            "containerDefinitions[0].systemControls[0]",
        ),
        (
            task({"systemControls": [{"namespace": "kernel.shmmax", "value": "1"}]}, ipcMode="host"),
            "containerDefinitions[0].systemControls[0]",
        ),
        (task(proxyConfiguration={"type": "APPMESH", "containerName": "c"}), "proxyConfiguration"),
        (
            task(inferenceAccelerators=[{"deviceName": "d", "deviceType": "eia2.medium"}]),
            "inferenceAccelerators",
        ),
        (
            task(volumes=[{"name": "v", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}]),
            "volumes[0].efsVolumeConfiguration",
        ),
        (
            task(
                volumes=[{"name": "v", "fsxWindowsFileServerVolumeConfiguration": {"fileSystemId": "fs-1"}}]
            ),
            "volumes[0].fsxWindowsFileServerVolumeConfiguration",
        ),
        (task(volumes=[{"name": "v", "configuredAtLaunch": True}]), "volumes[0].configuredAtLaunch"),
        (
            task(volumes=[{"name": "v", "dockerVolumeConfiguration": {"driver": "rexray/ebs"}}]),
            "volumes[0].dockerVolumeConfiguration.driver",
        ),
        (
            task(
                volumes=[
                    {
                        "name": "v",
                        "dockerVolumeConfiguration": {
                            "driverOpts": {"type": "none", "o": "bind", "device": "/"}
                        },
                    }
                ]
            ),
            "volumes[0].dockerVolumeConfiguration.driverOpts",
        ),
    ],
)
def test_a_field_that_would_not_be_applied_is_refused_by_name(content: dict[str, Any], field: str) -> None:
    assert refusal(content).startswith(field + ":")


def test_namespaced_sysctls_pass_when_the_namespace_is_the_tasks_own() -> None:
    check_supported(
        task({"systemControls": [{"namespace": "net.core.somaxconn", "value": "1"}]}, ipcMode="host")
    )
    check_supported(
        task({"systemControls": [{"namespace": "kernel.shmmax", "value": "1"}]}, networkMode="host")
    )
    check_supported(task({"systemControls": [{"namespace": "kernel.shmmax", "value": "1"}]}, ipcMode="task"))


def test_applied_and_harmless_fields_pass() -> None:
    check_supported(
        task(
            {
                "restartPolicy": {"enabled": False},
                "secrets": [],
                "logConfiguration": {"logDriver": "json-file", "options": {"max-size": "1m"}},
                "linuxParameters": {
                    "maxSwap": 0,
                    "swappiness": 0,
                    "sharedMemorySize": 16,
                    "tmpfs": [{"containerPath": "/t", "size": 1}],
                    "capabilities": {"drop": ["MKNOD"]},
                },
                "disableNetworking": True,
                "dockerSecurityOptions": ["no-new-privileges"],
                "systemControls": [{"namespace": "net.core.somaxconn", "value": "1024"}],
                "interactive": True,
                "pseudoTerminal": True,
                "versionConsistency": "disabled",
            },
            taskRoleArn="arn:aws:iam::000000000000:role/app",
            executionRoleArn="arn:aws:iam::000000000000:role/exec",
            requiresCompatibilities=["EC2"],
            ephemeralStorage={"sizeInGiB": 30},
            runtimePlatform={"cpuArchitecture": "X86_64"},
            volumes=[
                {
                    "name": "v",
                    "configuredAtLaunch": False,
                    "dockerVolumeConfiguration": {"scope": "shared", "driver": "local"},
                }
            ],
        )
    )


def test_every_refused_row_is_refused_when_used() -> None:
    """Each ``refused`` row, given a value, is refused by check_supported (no row is only documentation)."""
    samples: dict[str, Any] = {
        "proxyConfiguration": {"containerName": "c"},
        "inferenceAccelerators": [{"deviceName": "d", "deviceType": "t"}],
        "containerDefinitions[].repositoryCredentials": {"credentialsParameter": "x"},
        "containerDefinitions[].restartPolicy": {"enabled": True},
        "containerDefinitions[].environmentFiles": [{"value": "x", "type": "s3"}],
        "containerDefinitions[].resourceRequirements": [{"type": "GPU", "value": "1"}],
        "containerDefinitions[].firelensConfiguration": {"type": "fluentd"},
        "containerDefinitions[].credentialSpecs": ["x"],
        "containerDefinitions[].logConfiguration.secretOptions": SECRET,
        "volumes[].efsVolumeConfiguration": {"fileSystemId": "fs-1"},
        "volumes[].s3filesVolumeConfiguration": {"fileSystemArn": "arn:x"},
        "volumes[].fsxWindowsFileServerVolumeConfiguration": {"fileSystemId": "fs-1"},
        "volumes[].configuredAtLaunch": True,
    }
    refused = {path for path, row in FIELDS.items() if row.support is Support.REFUSED}
    assert refused == set(samples)
    for path, value in samples.items():
        content = task()
        if path.startswith("containerDefinitions[].logConfiguration."):
            content["containerDefinitions"][0]["logConfiguration"] = {
                "logDriver": "json-file",
                path.rsplit(".", 1)[1]: value,
            }
        elif path.startswith("containerDefinitions[]."):
            content["containerDefinitions"][0][path.split(".", 1)[1]] = value
        elif path.startswith("volumes[]."):
            content["volumes"] = [{"name": "v", path.split(".", 1)[1]: value}]
        else:
            content[path] = value
        assert path.replace("[]", "[0]") in refusal(content)


# ---- RunTask overrides ------------------------------------------------------------------


def test_every_member_of_the_override_shapes_is_in_the_table() -> None:
    shapes = model_shapes()
    expected = {
        prefix + member for prefix, shape in OVERRIDE_SHAPES.items() for member in shapes[shape]["members"]
    }
    assert expected == set(OVERRIDE_FIELDS)


def test_the_docs_list_the_overrides_as_the_code_does() -> None:
    rows = {
        m.group(1): m.group(2) for line in DOCS.read_text().splitlines() if (m := OVERRIDE_ROW.match(line))
    }
    assert rows == {path: row.support.value for path, row in OVERRIDE_FIELDS.items()}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (
            {"inferenceAcceleratorOverrides": [{"deviceName": "d", "deviceType": "t"}]},
            "overrides.inferenceAcceleratorOverrides",
        ),
        (
            {
                "containerOverrides": [
                    {"name": "a"},
                    {"name": "c", "environmentFiles": [{"value": "arn:x", "type": "s3"}]},
                ]
            },
            "overrides.containerOverrides[1].environmentFiles",
        ),
        (
            {"containerOverrides": [{"name": "c", "resourceRequirements": [{"type": "GPU", "value": "1"}]}]},
            "overrides.containerOverrides[0].resourceRequirements",
        ),
    ],
)
def test_an_override_that_would_not_be_applied_is_refused(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidParameterException, match=re.escape(field + ":")):
        check_overrides_supported(overrides)


def test_applied_overrides_pass() -> None:
    check_overrides_supported(
        {
            "cpu": "256",
            "memory": "512",
            "taskRoleArn": "arn:aws:iam::000000000000:role/x",
            "inferenceAcceleratorOverrides": [],
            "containerOverrides": [
                {
                    "name": "c",
                    "command": ["x"],
                    "environment": [{"name": "A", "value": "1"}],
                    "environmentFiles": [],
                }
            ],
        }
    )
