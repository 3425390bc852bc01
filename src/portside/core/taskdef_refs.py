"""Rules between the containers of one task definition: who may name whom.

Three fields name other containers and so order their start (the ECS agent turns each into
a dependency, ``agent/engine/dependencygraph/graph.go``): ``links`` (bridge mode only,
``name`` or ``name:alias``), ``volumesFrom[].sourceContainer`` and ``dependsOn[]``. Each must
name another container of the task, and together they must not form a cycle, or no
container could ever start. ``dependsOn`` conditions COMPLETE and SUCCESS wait for the
named container to exit, so it must not be essential; HEALTHY needs its health check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from portside.core.taskdef_rules import NAME_RE
from portside.errors import ClientException

Doc = Mapping[str, Any]


def is_essential(container: Doc) -> bool:
    return container.get("essential") is not False


def check_references(containers: Sequence[Doc], network_mode: str) -> None:
    by_name = {c["name"]: c for c in containers}
    for i, container in enumerate(containers):
        p = f"containerDefinitions[{i}]"
        _check_links(container, p, network_mode, by_name)
        _check_volumes_from(container, p, by_name)
        _check_depends_on(container, p, by_name)
    _check_acyclic(containers)
    if not any(is_essential(c) for c in containers):
        raise ClientException(
            "containerDefinitions must include at least one essential container (essential defaults to true)"
        )


def check_proxy_configuration(proxy: Doc, containers: Sequence[Doc]) -> None:
    name = proxy["containerName"]
    if name not in {c["name"] for c in containers}:
        raise ClientException(f"proxyConfiguration.containerName '{name}' names no container of this task")


def _named(name: str, path: str, field: str, container: Doc, by_name: Mapping[str, Doc]) -> None:
    if name == container["name"]:
        raise ClientException(f"{path} {field} '{name}': a container cannot name itself")
    if name not in by_name:
        raise ClientException(f"{path} {field} '{name}' names no container of this task")


def _check_links(container: Doc, p: str, network_mode: str, by_name: Mapping[str, Doc]) -> None:
    links: Sequence[str] = container.get("links") or []
    if links and network_mode != "bridge":
        raise ClientException(f"{p}.links are supported only when networkMode=bridge (got {network_mode})")
    for j, link in enumerate(links):
        name, _, alias = link.partition(":")
        if not NAME_RE.fullmatch(name) or (alias and not NAME_RE.fullmatch(alias)) or link.endswith(":"):
            raise ClientException(
                f"{p}.links[{j}] '{link}' must be 'name' or 'name:alias' "
                "(letters, numbers, underscores, hyphens)"
            )
        _named(name, f"{p}.links[{j}]", "link", container, by_name)


def _check_volumes_from(container: Doc, p: str, by_name: Mapping[str, Doc]) -> None:
    for j, source in enumerate(container.get("volumesFrom") or []):
        name = source.get("sourceContainer")
        if name is None:
            raise ClientException(f"{p}.volumesFrom[{j}].sourceContainer is required")
        _named(name, f"{p}.volumesFrom[{j}]", "sourceContainer", container, by_name)


def _check_depends_on(container: Doc, p: str, by_name: Mapping[str, Doc]) -> None:
    for j, dependency in enumerate(container.get("dependsOn") or []):
        q = f"{p}.dependsOn[{j}]"
        name, condition = dependency["containerName"], dependency["condition"]
        _named(name, q, "containerName", container, by_name)
        target = by_name[name]
        if condition in ("COMPLETE", "SUCCESS") and is_essential(target):
            raise ClientException(
                f"{q}: condition {condition} waits for container '{name}' to exit, so '{name}' "
                "must not be essential"
            )
        if condition == "HEALTHY" and target.get("healthCheck") is None:
            raise ClientException(f"{q}: condition HEALTHY needs a healthCheck on container '{name}'")


def start_dependencies(container: Doc) -> list[str]:
    """Names of the containers that must start before ``container`` (links, volumesFrom, dependsOn)."""
    names = [link.partition(":")[0] for link in container.get("links") or []]
    names += [v["sourceContainer"] for v in container.get("volumesFrom") or []]
    names += [d["containerName"] for d in container.get("dependsOn") or []]
    return names


def _check_acyclic(containers: Sequence[Doc]) -> None:
    edges = {c["name"]: start_dependencies(c) for c in containers}
    done: set[str] = set()
    for root in edges:
        # Iterative depth-first search; `trail` is the current path, for the message.
        trail: list[str] = []
        on_trail: set[str] = set()
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            name, k = stack.pop()
            if k == 0:
                if name in done:
                    continue
                trail.append(name)
                on_trail.add(name)
            if k < len(edges[name]):
                stack.append((name, k + 1))
                nxt = edges[name][k]
                if nxt in on_trail:
                    cycle = trail[trail.index(nxt) :] + [nxt]
                    raise ClientException(
                        "containerDefinitions have a dependency cycle (links, volumesFrom, dependsOn): "
                        + " -> ".join(cycle)
                    )
                if nxt not in done:
                    stack.append((nxt, 0))
            else:
                trail.pop()
                on_trail.discard(name)
                done.add(name)
