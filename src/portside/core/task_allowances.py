"""What a task may ask of the host, and the server flags that allow the rest.

Theory of operation: a task definition is data anyone with API access can write, but
some of its fields hand the container the host itself — ``privileged``, the host's
network, PID or IPC namespace, host devices, added Linux capabilities, security options that
lift confinement, and bind mounts of host paths such as ``/`` or
``/var/run/docker.sock``. As Nomad's Docker driver refuses privileged containers
unless its operator allows them, portside refuses such a task when it is about to
run (RunTask, CreateService, UpdateService, and every launch of a service's copies)
unless the server was started with the matching flag. Registering it still works, as
on ECS: a task definition is only a document until something runs it.

``check_allowed(content, allowances)`` is the whole decision: pure, over the stored
task definition content and an ``Allowances`` value built once from the server's
flags. It raises ``InvalidParameterException`` naming the first field that needs an
allowance and the flag that would give it.

Host paths are compared as paths, not strings: both sides are normalised (``..`` and
``.`` resolved lexically, repeated slashes folded) and a prefix allows itself and
what lies below it, component by component, so ``/data`` allows ``/data/x`` but not
``/database``, and ``/data/../etc`` is ``/etc``. The comparison is lexical; the caller
may also pass where each path really leads (symbolic links resolved on the host), and
then that must be allowed too, so ``/data/link -> /`` does not escape. A link made
after the check is outside what any check at RunTask can see.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from portside.errors import InvalidParameterException

FLAG_PRIVILEGED = "--allow-privileged"
FLAG_HOST_NAMESPACES = "--allow-host-namespaces"
FLAG_DEVICES = "--allow-devices"
FLAG_CAPABILITIES = "--allow-capabilities"
FLAG_HOST_PATH = "--allow-host-path"

# The dockerSecurityOptions a task may use without --allow-privileged: they only tighten.
# Every other option (apparmor, label, seccomp, credentialspec, ...) can also loosen
# confinement ("apparmor:unconfined", "label:disable", "seccomp=unconfined").
SAFE_SECURITY_OPTIONS = frozenset({"no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"})


@dataclass(frozen=True)
class Allowances:
    """What this server lets tasks ask of the host; everything defaults to refused."""

    privileged: bool = False
    host_namespaces: bool = False
    devices: bool = False
    capabilities: bool = False
    # Normalised absolute prefixes (see ``parse_host_path_prefix``).
    host_paths: tuple[str, ...] = ()


def parse_host_path_prefix(text: str) -> str:
    """One ``--allow-host-path`` value, normalised; ValueError names the flag and the rule."""
    if not text.startswith("/"):
        raise ValueError(f"{FLAG_HOST_PATH} must be an absolute path, got {text!r}")
    return normalise_path(text)


def normalise_path(path: str) -> str:
    """``path`` with ``.``, ``..`` and repeated slashes resolved lexically (``/a/../b`` -> ``/b``)."""
    normal = posixpath.normpath(path)
    # POSIX keeps a leading "//" as implementation-defined; treat it as "/".
    return "/" + normal.lstrip("/")


def host_path_allowed(path: str, prefixes: tuple[str, ...]) -> bool:
    """True when the absolute ``path`` is one of ``prefixes`` or lies below one."""
    normal = normalise_path(path)
    for prefix in prefixes:
        if prefix == "/" or normal == prefix or normal.startswith(prefix + "/"):
            return True
    return False


def check_allowed(
    content: Mapping[str, Any], allowances: Allowances, real_paths: Mapping[str, str] | None = None
) -> None:
    """Raise ``InvalidParameterException`` at the first field ``allowances`` do not cover.

    ``real_paths`` maps a ``sourcePath`` to the path it resolves to on the host (symbolic links
    followed, as Docker will follow them), gathered by the caller; both must be allowed.
    """
    for field, flag, rule in _needs(content, allowances, real_paths or {}):
        raise InvalidParameterException(
            f"{field}: {rule}; this server refuses it unless started with {flag}."
        )


def _needs(
    content: Mapping[str, Any], allowances: Allowances, real_paths: Mapping[str, str]
) -> Iterator[tuple[str, str, str]]:
    """(field, flag, rule) for every field that needs an allowance it does not have, in document order."""
    if not allowances.host_namespaces:
        if content.get("networkMode") == "host":
            yield (
                "networkMode",
                FLAG_HOST_NAMESPACES,
                "the host's network namespace gives the task the host's loopback services, this server's API among them",
            )
        for key in ("pidMode", "ipcMode"):
            if content.get(key) == "host":
                yield (
                    key,
                    FLAG_HOST_NAMESPACES,
                    "the host's namespace gives the task every process of the host",
                )
    for i, volume in enumerate(content.get("volumes") or []):
        source = (volume.get("host") or {}).get("sourcePath")
        if not source:
            continue
        field = f"volumes[{i}].host.sourcePath"
        if not source.startswith("/"):
            raise InvalidParameterException(f"{field}: must be an absolute path, got {source!r}.")
        for path in (source, real_paths.get(source, source)):
            if not host_path_allowed(path, allowances.host_paths):
                allowed = ", ".join(allowances.host_paths) or "none"
                yield (
                    field,
                    f"{FLAG_HOST_PATH} PREFIX",
                    f"host path {normalise_path(path)} is outside the allowed host paths (allowed: {allowed})",
                )
                break
    for i, definition in enumerate(content.get("containerDefinitions") or []):
        yield from _container_needs(f"containerDefinitions[{i}]", definition, allowances)


def _container_needs(
    at: str, definition: Mapping[str, Any], allowances: Allowances
) -> Iterator[tuple[str, str, str]]:
    if definition.get("privileged") and not allowances.privileged:
        yield f"{at}.privileged", FLAG_PRIVILEGED, "a privileged container is root on the host"
    if not allowances.privileged:
        for j, option in enumerate(definition.get("dockerSecurityOptions") or []):
            if option.strip() not in SAFE_SECURITY_OPTIONS:
                yield (
                    f"{at}.dockerSecurityOptions[{j}]",
                    FLAG_PRIVILEGED,
                    (
                        f"security option {option!r} can lift the container's confinement "
                        "(only no-new-privileges is allowed by default)"
                    ),
                )
    linux = definition.get("linuxParameters") or {}
    if linux.get("devices") and not allowances.devices:
        rule = "a host device gives the container direct access to host hardware"
        yield f"{at}.linuxParameters.devices", FLAG_DEVICES, rule
    added = (linux.get("capabilities") or {}).get("add") or []
    if added and not allowances.capabilities:
        yield (
            f"{at}.linuxParameters.capabilities.add",
            FLAG_CAPABILITIES,
            f"adding Linux capabilities ({', '.join(added)}) widens what the container may do to the host",
        )
