"""core/task_allowances.py: what a task may ask of the host, and the flag that allows the rest."""

from __future__ import annotations

from typing import Any

import pytest

from portside.core.task_allowances import (
    Allowances,
    check_allowed,
    host_path_allowed,
    normalise_path,
    parse_host_path_prefix,
)
from portside.errors import InvalidParameterException

NOTHING = Allowances()
EVERYTHING = Allowances(
    privileged=True, host_namespaces=True, devices=True, capabilities=True, host_paths=("/",)
)


def task(container: dict[str, Any] | None = None, **task_fields: Any) -> dict[str, Any]:
    return {
        "family": "t",
        "containerDefinitions": [
            {"name": "plain", "image": "busybox"},
            {"name": "c", "image": "busybox", **(container or {})},
        ],
        **task_fields,
    }


def refusal(content: dict[str, Any], allowances: Allowances = NOTHING) -> str:
    with pytest.raises(InvalidParameterException) as info:
        check_allowed(content, allowances)
    return info.value.message


DANGEROUS = [
    (
        task({"privileged": True}),
        "containerDefinitions[1].privileged",
        "--allow-privileged",
        Allowances(privileged=True),
    ),
    (task(networkMode="host"), "networkMode", "--allow-host-namespaces", Allowances(host_namespaces=True)),
    (task(pidMode="host"), "pidMode", "--allow-host-namespaces", Allowances(host_namespaces=True)),
    (task(ipcMode="host"), "ipcMode", "--allow-host-namespaces", Allowances(host_namespaces=True)),
    (
        task({"linuxParameters": {"devices": [{"hostPath": "/dev/fuse"}]}}),
        "containerDefinitions[1].linuxParameters.devices",
        "--allow-devices",
        Allowances(devices=True),
    ),
    (
        task({"linuxParameters": {"capabilities": {"add": ["SYS_ADMIN"]}}}),
        "containerDefinitions[1].linuxParameters.capabilities.add",
        "--allow-capabilities",
        Allowances(capabilities=True),
    ),
    (
        task({"dockerSecurityOptions": ["no-new-privileges", "apparmor:unconfined"]}),
        "containerDefinitions[1].dockerSecurityOptions[1]",
        "--allow-privileged",
        Allowances(privileged=True),
    ),
    (
        task(volumes=[{"name": "root", "host": {"sourcePath": "/"}}]),
        "volumes[0].host.sourcePath",
        "--allow-host-path",
        Allowances(host_paths=("/",)),
    ),
    (
        task(volumes=[{"name": "sock", "host": {"sourcePath": "/var/run/docker.sock"}}]),
        "volumes[0].host.sourcePath",
        "--allow-host-path",
        Allowances(host_paths=("/var/run/docker.sock",)),
    ),
]


@pytest.mark.parametrize(("content", "field", "flag", "allowing"), DANGEROUS)
def test_a_dangerous_field_is_refused_naming_the_field_and_the_flag(
    content: dict[str, Any], field: str, flag: str, allowing: Allowances
) -> None:
    message = refusal(content)
    assert message.startswith(field + ":")
    assert flag in message


@pytest.mark.parametrize(("content", "field", "flag", "allowing"), DANGEROUS)
def test_the_matching_flag_allows_it(
    content: dict[str, Any], field: str, flag: str, allowing: Allowances
) -> None:
    check_allowed(content, allowing)
    check_allowed(content, EVERYTHING)


@pytest.mark.parametrize(("content", "field", "flag", "allowing"), DANGEROUS)
def test_another_flag_does_not(content: dict[str, Any], field: str, flag: str, allowing: Allowances) -> None:
    others = [
        Allowances(privileged=True),
        Allowances(host_namespaces=True),
        Allowances(devices=True),
        Allowances(capabilities=True),
        Allowances(host_paths=("/srv",)),
    ]
    for other in others:
        if other != allowing:
            assert refusal(content, other).startswith(field + ":")


def test_harmless_fields_need_no_flag() -> None:
    check_allowed(
        task(
            {
                "privileged": False,
                "dockerSecurityOptions": ["no-new-privileges"],
                "linuxParameters": {
                    "capabilities": {"add": [], "drop": ["ALL"]},
                    "devices": [],
                    "initProcessEnabled": True,
                },
            },
            pidMode="task",
            ipcMode="none",
            volumes=[{"name": "scratch"}, {"name": "docker", "dockerVolumeConfiguration": {"scope": "task"}}],
        ),
        NOTHING,
    )


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/data", True),
        ("/data/", True),
        ("/data/x", True),
        ("/data/x/../y", True),
        ("//data//x", True),
        ("/database", False),
        ("/dat", False),
        ("/data/../etc", False),
        ("/data/x/../../etc/shadow", False),
        ("/", False),
        ("/srv/www", True),
        ("/srv/wwwx", False),
    ],
)
def test_host_paths_match_by_path_component_after_normalisation(path: str, allowed: bool) -> None:
    prefixes = (parse_host_path_prefix("/data"), parse_host_path_prefix("/srv/www/"))
    assert host_path_allowed(path, prefixes) is allowed
    content = task(volumes=[{"name": "v", "host": {"sourcePath": path}}])
    if allowed:
        check_allowed(content, Allowances(host_paths=prefixes))
    else:
        assert "volumes[0].host.sourcePath" in refusal(content, Allowances(host_paths=prefixes))


def test_the_refusal_names_the_normalised_path_and_the_allowed_prefixes() -> None:
    message = refusal(
        task(volumes=[{"name": "v", "host": {"sourcePath": "/data/../etc"}}]),
        Allowances(host_paths=("/data",)),
    )
    assert "host path /etc is outside" in message and "allowed: /data" in message


def test_a_relative_source_path_is_refused() -> None:
    assert "must be an absolute path" in refusal(
        task(volumes=[{"name": "v", "host": {"sourcePath": "data"}}]), EVERYTHING
    )


def test_a_prefix_must_be_absolute() -> None:
    with pytest.raises(ValueError, match="--allow-host-path must be an absolute path"):
        parse_host_path_prefix("data")
    assert parse_host_path_prefix("/data/./x/../") == "/data"
    assert normalise_path("//") == "/"


def test_the_first_field_in_document_order_is_named() -> None:
    content = task({"privileged": True}, pidMode="host")
    assert refusal(content).startswith("pidMode:")
    assert refusal(content, Allowances(host_namespaces=True)).startswith(
        "containerDefinitions[1].privileged:"
    )


def test_where_a_path_really_leads_must_be_allowed_too() -> None:
    content = task(volumes=[{"name": "v", "host": {"sourcePath": "/data/link/x"}}])
    allowances = Allowances(host_paths=("/data",))
    check_allowed(content, allowances, {"/data/link/x": "/data/elsewhere/x"})
    message = refusal_with(content, allowances, {"/data/link/x": "/etc/x"})
    assert message.startswith("volumes[0].host.sourcePath: host path /etc/x is outside")


def refusal_with(content: dict[str, Any], allowances: Allowances, real_paths: dict[str, str]) -> str:
    with pytest.raises(InvalidParameterException) as info:
        check_allowed(content, allowances, real_paths)
    return info.value.message


def test_an_allowed_prefix_that_is_a_link_allows_where_it_leads(tmp_path: Any) -> None:
    from portside.cli.main import _host_path_prefixes

    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    prefixes = _host_path_prefixes((f"{tmp_path}/alias/", f"{tmp_path}/real"))
    assert prefixes == (f"{tmp_path}/alias", f"{tmp_path}/real")
    content = task(volumes=[{"name": "v", "host": {"sourcePath": f"{tmp_path}/alias/x"}}])
    check_allowed(content, Allowances(host_paths=prefixes), {f"{tmp_path}/alias/x": f"{tmp_path}/real/x"})
