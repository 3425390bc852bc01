"""What a task may ask of the host, and the Docker fields portside applies, on real servers and Docker.

Two servers: ``strict`` runs with no ``--allow-*`` flag and must refuse, at RunTask, CreateService
and UpdateService, every task that asks for the host (privileged, host namespaces, devices, added
capabilities, host paths) or for a field portside cannot apply (a log driver's secretOptions, awslogs
options, EFS...), while
still registering it. ``permissive`` runs with every flag and must run the very same task. One task
with many fields on ``permissive`` shows each field arriving in ``docker inspect``.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import remove_server_containers
from tests.integration.test_task_features import box, error_of, inspect, sh, stop, wait_running
from tests.support.server import PortsideProcess, free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.docker

MIB = 1024 * 1024


def _serve(path: Path, *args: str) -> PortsideProcess:
    server = PortsideProcess(path, *args)
    server.start()
    return server


@pytest.fixture(scope="module")
def allowed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("allowed-host-path")
    (path / "hello.txt").write_text("from the host\n")
    return path


@pytest.fixture(scope="module")
def strict(
    tmp_path_factory: pytest.TempPathFactory, docker_client: Any, busybox_image: str
) -> Iterator[PortsideProcess]:
    server = _serve(tmp_path_factory.mktemp("strict"))
    yield server
    server.stop()
    remove_server_containers(docker_client, server)


@pytest.fixture(scope="module")
def permissive(
    tmp_path_factory: pytest.TempPathFactory, docker_client: Any, busybox_image: str, allowed_dir: Path
) -> Iterator[PortsideProcess]:
    server = _serve(
        tmp_path_factory.mktemp("permissive"),
        "--allow-privileged",
        "--allow-host-namespaces",
        "--allow-devices",
        "--allow-capabilities",
        "--allow-host-path",
        str(allowed_dir),
        "--task-cleanup-wait",
        "3600",
    )
    yield server
    with contextlib.suppress(Exception):  # best effort: the containers are removed below regardless
        ecs = server.client()
        for arn in ecs.list_tasks(maxResults=100)["taskArns"]:
            ecs.stop_task(task=arn)
    server.stop()
    remove_server_containers(docker_client, server)


def dangerous(image: str, host_dir: Path) -> dict[str, Any]:
    """A task asking for what the flags must allow (the same definition on both servers).

    Not ``privileged``: this machine's dockerd lacks a capability, so runc cannot start a
    privileged container here; ``test_a_privileged_task_reaches_docker_when_allowed`` covers it.
    """
    return {
        "family": "sec-dangerous",
        "pidMode": "host",
        "ipcMode": "host",
        "volumes": [{"name": "host", "host": {"sourcePath": str(host_dir)}}],
        "containerDefinitions": [
            box(
                image,
                "root",
                dockerSecurityOptions=["apparmor:unconfined"],
                mountPoints=[{"sourceVolume": "host", "containerPath": "/www/host", "readOnly": True}],
                linuxParameters={
                    "capabilities": {"add": ["NET_ADMIN"]},
                    "devices": [{"hostPath": "/dev/null", "containerPath": "/dev/portside-null"}],
                },
            ),
        ],
    }


TASK_LEVEL = ("networkMode", "pidMode", "ipcMode", "volumes")


def one_field(image: str, name: str, **fields: Any) -> dict[str, Any]:
    containers = [
        box(image, "c", **{k: v for k, v in fields.items() if k not in TASK_LEVEL})
    ]
    task = {k: v for k, v in fields.items() if k in TASK_LEVEL}
    return {"family": f"sec-{name}", "containerDefinitions": containers, **task}


def refusals(image: str, allowed_dir: Path) -> list[tuple[str, dict[str, Any], str, str]]:
    """(id, task definition, field named, flag or rule named)."""
    outside = allowed_dir.parent / (allowed_dir.name + "-sibling")
    return [
        (
            "privileged",
            one_field(image, "privileged", privileged=True),
            "containerDefinitions[0].privileged",
            "--allow-privileged",
        ),
        ("network-host", one_field(image, "net", networkMode="host"), "networkMode", "--allow-host-namespaces"),
        ("pid-host", one_field(image, "pid", pidMode="host"), "pidMode", "--allow-host-namespaces"),
        ("ipc-host", one_field(image, "ipc", ipcMode="host"), "ipcMode", "--allow-host-namespaces"),
        (
            "devices",
            one_field(image, "devices", linuxParameters={"devices": [{"hostPath": "/dev/kmsg"}]}),
            "containerDefinitions[0].linuxParameters.devices",
            "--allow-devices",
        ),
        (
            "cap-add",
            one_field(image, "caps", linuxParameters={"capabilities": {"add": ["SYS_ADMIN"]}}),
            "containerDefinitions[0].linuxParameters.capabilities.add",
            "--allow-capabilities",
        ),
        (
            "seccomp",
            one_field(image, "seccomp", dockerSecurityOptions=["seccomp=unconfined"]),
            "containerDefinitions[0].dockerSecurityOptions[0]",
            "--allow-privileged",
        ),
        (
            "host-root",
            one_field(image, "root", volumes=[{"name": "r", "host": {"sourcePath": "/"}}]),
            "volumes[0].host.sourcePath",
            "--allow-host-path",
        ),
        (
            "docker-sock",
            one_field(image, "sock", volumes=[{"name": "s", "host": {"sourcePath": "/var/run/docker.sock"}}]),
            "volumes[0].host.sourcePath",
            "--allow-host-path",
        ),
        (
            "sibling-of-allowed",
            one_field(image, "sibling", volumes=[{"name": "s", "host": {"sourcePath": str(outside)}}]),
            "volumes[0].host.sourcePath",
            "--allow-host-path",
        ),
        (
            "dotdot-escape",
            one_field(
                image, "dotdot", volumes=[{"name": "s", "host": {"sourcePath": f"{allowed_dir}/../../etc"}}]
            ),
            "volumes[0].host.sourcePath",
            "--allow-host-path",
        ),
        (
            "log-secret-options",  # task secrets are applied (docs/secrets.md); a log driver's are not
            one_field(
                image, "logsecrets", logConfiguration={"logDriver": "json-file", "secretOptions": [
                    {"name": "token", "valueFrom": "arn:aws:ssm:us-east-1:000000000000:parameter/db"}]}
            ),
            "containerDefinitions[0].logConfiguration.secretOptions",
            "log driver",
        ),
        (
            "awslogs-multiline",  # awslogs itself is applied (docs/logs.md); this option of it is not
            one_field(
                image, "awslogs", logConfiguration={"logDriver": "awslogs", "options": {
                    "awslogs-group": "g", "awslogs-multiline-pattern": "^INFO"}}
            ),
            "containerDefinitions[0].logConfiguration.options.awslogs-multiline-pattern",
            "multi-line",
        ),
        (
            "awsfirelens",
            one_field(image, "firelens", logConfiguration={"logDriver": "awsfirelens"}),
            "containerDefinitions[0].logConfiguration.logDriver",
            "awsfirelens",
        ),
        (
            "efs",
            one_field(
                image, "efs", volumes=[{"name": "e", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}]
            ),
            "volumes[0].efsVolumeConfiguration",
            "EFS",
        ),
    ]


CASES = [c[0] for c in refusals("image", Path("/allowed"))]


def refused(call: Any) -> str:
    with pytest.raises(ClientError) as excinfo:
        call()
    code, message = error_of(excinfo)
    assert code == "InvalidParameterException", message
    return message


@pytest.mark.parametrize("case", CASES)
def test_run_task_refuses_naming_the_field_and_the_flag_but_registration_works(
    strict: PortsideProcess, busybox_image: str, allowed_dir: Path, case: str
) -> None:
    [(_, definition, field, rule)] = [c for c in refusals(busybox_image, allowed_dir) if c[0] == case]
    ecs = strict.client()
    arn = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
    message = refused(lambda: ecs.run_task(taskDefinition=arn))
    assert message.startswith(field + ":"), message
    assert rule in message
    assert ecs.list_tasks(family=definition["family"], desiredStatus="RUNNING")["taskArns"] == []
    assert ecs.list_tasks(family=definition["family"], desiredStatus="STOPPED")["taskArns"] == []


def test_run_task_refuses_an_override_it_would_not_apply(strict: PortsideProcess, busybox_image: str) -> None:
    ecs = strict.client()
    arn = ecs.register_task_definition(**one_field(busybox_image, "override"))["taskDefinition"][
        "taskDefinitionArn"
    ]
    files = [{"value": "arn:aws:s3:::bucket/app.env", "type": "s3"}]
    message = refused(
        lambda: ecs.run_task(
            taskDefinition=arn, overrides={"containerOverrides": [{"name": "c", "environmentFiles": files}]}
        )
    )
    assert message.startswith("overrides.containerOverrides[0].environmentFiles:"), message
    assert ecs.list_tasks(family="sec-override")["taskArns"] == []


def test_a_link_out_of_an_allowed_host_path_is_refused(
    permissive: PortsideProcess, busybox_image: str, allowed_dir: Path
) -> None:
    link = allowed_dir / "escape"
    link.symlink_to("/etc")
    try:
        ecs = permissive.client()
        definition = one_field(
            busybox_image, "escape", volumes=[{"name": "e", "host": {"sourcePath": f"{link}/ssl"}}]
        )
        arn = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
        message = refused(lambda: ecs.run_task(taskDefinition=arn))
        assert message.startswith("volumes[0].host.sourcePath: host path /etc/ssl is outside"), message
        assert ecs.list_tasks(family="sec-escape")["taskArns"] == []
    finally:
        link.unlink()


def test_services_are_refused_at_create_and_update(
    strict: PortsideProcess, busybox_image: str, allowed_dir: Path
) -> None:
    ecs = strict.client()
    definition = dangerous(busybox_image, allowed_dir)
    bad = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
    message = refused(lambda: ecs.create_service(serviceName="sec-bad", taskDefinition=bad, desiredCount=1))
    assert message.startswith("pidMode:") and "--allow-host-namespaces" in message
    assert ecs.describe_services(services=["sec-bad"])["failures"][0]["reason"] == "MISSING"

    good = ecs.register_task_definition(family="sec-good", containerDefinitions=[box(busybox_image, "web")])
    good_arn = good["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(serviceName="sec-svc", taskDefinition=good_arn, desiredCount=0)
    try:
        message = refused(lambda: ecs.update_service(service="sec-svc", taskDefinition=bad))
        assert message.startswith("pidMode:")
        [service] = ecs.describe_services(services=["sec-svc"])["services"]
        assert service["taskDefinition"] == good_arn and len(service["deployments"]) == 1
    finally:
        ecs.delete_service(service="sec-svc", force=True)


def test_the_same_task_runs_when_the_server_allows_it(
    strict: PortsideProcess,
    permissive: PortsideProcess,
    busybox_image: str,
    docker_client: Any,
    allowed_dir: Path,
) -> None:
    definition = dangerous(busybox_image, allowed_dir)
    strict_ecs = strict.client()
    strict_arn = strict_ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
    assert refused(lambda: strict_ecs.run_task(taskDefinition=strict_arn)).startswith("pidMode:")

    ecs = permissive.client()
    arn = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
    result = ecs.run_task(taskDefinition=arn)
    assert result["failures"] == []
    task_arn = result["tasks"][0]["taskArn"]
    [task] = wait_running(ecs, [task_arn])
    host_config = inspect(docker_client, task, "root")["HostConfig"]
    assert host_config["PidMode"] == "host" and host_config["IpcMode"] == "host"
    assert host_config["CapAdd"] == ["NET_ADMIN"]
    assert (
        "apparmor:unconfined" in host_config["SecurityOpt"]
    )  # Docker adds label=disable for host namespaces
    assert host_config["Devices"] == [
        {"PathOnHost": "/dev/null", "PathInContainer": "/dev/portside-null", "CgroupPermissions": "rwm"}
    ]
    assert sh(docker_client, task, "root", "cat /www/host/hello.txt") == (0, "from the host\n")
    stop(ecs, [task_arn])


def test_a_privileged_task_reaches_docker_when_allowed(
    permissive: PortsideProcess, busybox_image: str, docker_client: Any
) -> None:
    """RunTask accepts it and Docker is asked for a privileged container.

    Whether it then starts depends on the host: where dockerd itself lacks a capability (as on
    this test machine) runc refuses it and the task stops with CannotStartContainerError.
    """
    ecs = permissive.client()
    arn = ecs.register_task_definition(**one_field(busybox_image, "privileged-ok", privileged=True))
    result = ecs.run_task(taskDefinition=arn["taskDefinition"]["taskDefinitionArn"])
    assert result["failures"] == []
    task_arn = result["tasks"][0]["taskArn"]

    def created() -> dict[str, Any] | None:
        [task] = ecs.describe_tasks(tasks=[task_arn])["tasks"]
        return task if task["containers"][0].get("runtimeId") else None

    task = eventually(created, timeout=30, what="the privileged container created")
    assert inspect(docker_client, task, "c")["HostConfig"]["Privileged"] is True
    with contextlib.suppress(ClientError):
        ecs.stop_task(task=task_arn)


def test_fields_that_map_onto_docker_reach_the_container(
    permissive: PortsideProcess, busybox_image: str, docker_client: Any
) -> None:
    ecs = permissive.client()
    first = box(
        busybox_image,
        "first",
        memory=64,
        linuxParameters={
            "capabilities": {"drop": ["MKNOD", "NET_RAW"]},
            "initProcessEnabled": True,
            "sharedMemorySize": 32,
            "tmpfs": [{"containerPath": "/scratch", "size": 8, "mountOptions": ["noexec"]}],
            "maxSwap": 16,
            "swappiness": 10,
        },
        dockerSecurityOptions=["no-new-privileges"],
        systemControls=[{"namespace": "net.core.somaxconn", "value": "511"}],
        dnsSearchDomains=["portside.internal"],
        logConfiguration={"logDriver": "json-file", "options": {"max-size": "1m", "max-file": "2"}},
        interactive=True,
        pseudoTerminal=True,
    )
    second = box(
        busybox_image,
        "second",
        disableNetworking=True,
        dependsOn=[{"containerName": "first", "condition": "START"}],
    )
    arn = ecs.register_task_definition(
        family="sec-fields", containerDefinitions=[first, second], pidMode="task", ipcMode="task"
    )["taskDefinition"]["taskDefinitionArn"]
    result = ecs.run_task(taskDefinition=arn)
    assert result["failures"] == []
    task_arn = result["tasks"][0]["taskArn"]
    [task] = wait_running(ecs, [task_arn])
    state = inspect(docker_client, task, "first")
    host_config, config = state["HostConfig"], state["Config"]
    assert sorted(host_config["CapDrop"]) == ["MKNOD", "NET_RAW"]
    assert host_config["CapAdd"] is None
    assert host_config["Init"] is True
    assert host_config["ShmSize"] == 32 * MIB
    assert host_config["Tmpfs"] == {"/scratch": "size=8m,noexec"}
    assert host_config["Memory"] == 64 * MIB and host_config["MemorySwap"] == (64 + 16) * MIB
    assert host_config["MemorySwappiness"] == 10
    assert host_config["SecurityOpt"] == ["no-new-privileges"]
    assert host_config["Sysctls"] == {"net.core.somaxconn": "511"}
    assert host_config["DnsSearch"] == ["portside.internal"]
    assert host_config["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}}
    assert host_config["IpcMode"] == "shareable"
    assert config["OpenStdin"] is True and config["Tty"] is True
    assert sh(docker_client, task, "first", "cat /proc/sys/net/core/somaxconn") == (0, "511\n")
    assert (
        sh(docker_client, task, "first", "grep ' /scratch ' /proc/mounts | grep -c noexec")[1].strip() == "1"
    )

    other = inspect(docker_client, task, "second")
    owner = f"container:{state['Name'].lstrip('/')}"
    assert other["Config"]["NetworkDisabled"] is True
    assert other["HostConfig"]["PidMode"] in (owner, f"container:{state['Id']}")
    assert other["HostConfig"]["IpcMode"] in (owner, f"container:{state['Id']}")
    # One PID namespace for the task: the second container sees the first one's processes.
    code, out = sh(docker_client, task, "second", "cat /proc/*/cmdline | tr '\\0' ' '")
    assert code == 0 and "docker-init" in out, out
    assert sh(docker_client, task, "second", "ls /sys/class/net") == (0, "lo\n")
    stop(ecs, [task_arn])


def test_a_service_refused_after_a_restart_says_so_in_its_events(
    tmp_path_factory: pytest.TempPathFactory, docker_client: Any, busybox_image: str, allowed_dir: Path
) -> None:
    """Created while the server allowed its host path; launched after a restart without the flag."""
    server = PortsideProcess(tmp_path_factory.mktemp("restarted"), "--allow-host-path", str(allowed_dir))
    server.start()
    try:
        ecs = server.client()
        definition = one_field(
            busybox_image, "later", volumes=[{"name": "h", "host": {"sourcePath": str(allowed_dir)}}]
        )
        arn = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(serviceName="sec-later", taskDefinition=arn, desiredCount=0)
        server.stop()
        server.extra_args = server.extra_args[2:]  # without --allow-host-path (its store stays)
        server.start()
        ecs = server.client()
        ecs.update_service(service="sec-later", desiredCount=1)

        def refusal_event() -> str | None:
            [service] = ecs.describe_services(services=["sec-later"])["services"]
            return next(
                (e["message"] for e in service["events"] if "unable to start tasks" in e["message"]), None
            )

        event = eventually(refusal_event, timeout=30, what="the service's refusal event")
        assert "volumes[0].host.sourcePath" in event and "--allow-host-path" in event, event
        assert ecs.list_tasks(serviceName="sec-later")["taskArns"] == []
        ecs.delete_service(service="sec-later", force=True)
    finally:
        server.stop()
        remove_server_containers(docker_client, server)


def test_a_relative_allowed_host_path_stops_the_server_at_once(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "portside.cli.main",
            "server",
            "--api",
            f"127.0.0.1:{free_port()}",
            "--state-dir",
            str(tmp_path),
            "--allow-host-path",
            "data",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "--allow-host-path must be an absolute path, got 'data'" in result.stderr
