"""Port mapping rules of RegisterTaskDefinition, per network mode.

| networkMode | hostPort                                   | containerPortRange |
|-------------|--------------------------------------------|--------------------|
| bridge      | absent or 0 = dynamic; else static         | allowed            |
| host        | absent or equal to containerPort           | refused            |
| awsvpc      | absent or equal to containerPort           | allowed            |
| none        | no port mappings at all                    | refused            |

Within one container a (port, protocol) pair may appear in one mapping only, and ranges
may not overlap ("A port can only be included in one port mapping per container",
[model] PortMapping.containerPortRange). The same port for tcp *and* udp is allowed: the
model still says "You can't expose the same container port for multiple protocols", but
the developer guide dropped that note in 2020 because registration accepts it
(awsdocs/amazon-ecs-developer-guide PR #128, and its own gelf example maps 5000/udp and
5000/tcp); the refusal users meet later is CreateService's ("Container port 53 is used in
more than one port mapping", aws/amazon-ecs-agent issue #3428).

Across the task, two mappings may not need the same host port and protocol: in bridge
mode that is a static hostPort, in host and awsvpc mode the container port itself (one
network namespace). ECS's words: "TCP host port '3000' is mapped multiple times in task."
(aws/amazon-ecs-agent issue #1220). Port mapping names (Service Connect) are unique in the
task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from portside.core.taskdef_rules import MAX_PORT, MAX_PORT_RANGES, PORT_NAME_RE, PORT_RANGE_RE
from portside.errors import ClientException

Doc = Mapping[str, Any]
Span = tuple[int, int]


def parse_port_range(value: str, path: str) -> Span:
    """``"8000-8010"`` -> ``(8000, 8010)``; first < last, both in 1..65535."""
    m = PORT_RANGE_RE.fullmatch(value)
    if m is None:
        raise ClientException(f"{path} '{value}' must have the form 'first-last', e.g. '8000-8010'")
    first, last = int(m.group(1)), int(m.group(2))
    if not (1 <= first <= MAX_PORT and 1 <= last <= MAX_PORT):
        raise ClientException(f"{path} '{value}' must lie between 1 and {MAX_PORT}")
    if first >= last:
        raise ClientException(f"{path} '{value}': the first port must be less than the last port")
    return first, last


def check_port_mappings(container: Doc, p: str, network_mode: str) -> None:
    """Rules for the mappings of one container (``p`` is its path)."""
    mappings: Sequence[Doc] = container.get("portMappings") or []
    if mappings and network_mode == "none":
        raise ClientException(f"{p}.portMappings: when networkMode=none, you cannot specify port mappings")
    spans: list[tuple[Span, str, int]] = []
    ranges = 0
    for j, mapping in enumerate(mappings):
        q = f"{p}.portMappings[{j}]"
        protocol = mapping.get("protocol") or "tcp"
        if mapping.get("containerPortRange") is not None:
            span = _check_range_mapping(mapping, q, network_mode)
            ranges += 1
            if ranges > MAX_PORT_RANGES:
                raise ClientException(f"{p}.portMappings may hold at most {MAX_PORT_RANGES} port ranges")
        else:
            span = _check_single_mapping(mapping, q, network_mode, container["name"])
        for other, other_protocol, k in spans:
            if other_protocol == protocol and span[0] <= other[1] and other[0] <= span[1]:
                if span[0] == span[1] and other[0] == other[1]:
                    raise ClientException(
                        f"{q}.containerPort {span[0]}/{protocol} is already mapped by {p}.portMappings[{k}]"
                    )
                raise ClientException(f"{q} overlaps the {protocol} ports of {p}.portMappings[{k}]")
        spans.append((span, protocol, j))
        name = mapping.get("name")
        if name is not None and not PORT_NAME_RE.fullmatch(name):
            raise ClientException(
                f"{q}.name '{name}' must be 1-64 lowercase letters, numbers, underscores and hyphens, "
                "not starting with a hyphen"
            )


def _check_single_mapping(mapping: Doc, q: str, network_mode: str, container_name: str) -> Span:
    container_port, host_port = mapping.get("containerPort"), mapping.get("hostPort")
    if container_port is None or not 1 <= container_port <= MAX_PORT:
        raise ClientException(f"Invalid 'containerPort' setting for container '{container_name}'.")
    if host_port is not None and not 0 <= host_port <= MAX_PORT:
        raise ClientException(f"{q}.hostPort must be between 0 and {MAX_PORT} (got {host_port})")
    if network_mode in ("awsvpc", "host") and host_port is not None and host_port != container_port:
        raise ClientException(
            f"When networkMode={network_mode}, the host ports and container ports in port mappings must match"
        )
    return container_port, container_port


def _check_range_mapping(mapping: Doc, q: str, network_mode: str) -> Span:
    if network_mode not in ("bridge", "awsvpc"):
        raise ClientException(
            f"{q}.containerPortRange is supported only when networkMode is bridge or awsvpc "
            f"(got {network_mode})"
        )
    if mapping.get("containerPort") is not None:
        raise ClientException(f"{q}: give either containerPort or containerPortRange, not both")
    if mapping.get("hostPort") is not None:
        raise ClientException(
            f"{q}.hostPort must not be set with containerPortRange (ECS assigns the host ports)"
        )
    return parse_port_range(mapping["containerPortRange"], f"{q}.containerPortRange")


def host_port_of(mapping: Doc, network_mode: str) -> int | None:
    """The host port a single-port mapping reserves on its own: None for dynamic or ranges."""
    if mapping.get("containerPortRange") is not None:
        return None
    if network_mode in ("awsvpc", "host"):
        return int(mapping["containerPort"])
    host_port = mapping.get("hostPort")
    return int(host_port) if host_port else None


def check_task_ports(containers: Sequence[Doc], network_mode: str) -> None:
    """Task-wide rules: one mapping per (host port, protocol), unique mapping names."""
    ports: dict[tuple[int, str], str] = {}
    names: dict[str, str] = {}
    for i, container in enumerate(containers):
        for j, mapping in enumerate(container.get("portMappings") or []):
            q = f"containerDefinitions[{i}].portMappings[{j}]"
            port = host_port_of(mapping, network_mode)
            if port is not None:
                key = (port, mapping.get("protocol") or "tcp")
                if key in ports:
                    raise ClientException(
                        f"{key[1].upper()} host port '{port}' is mapped multiple times in task."
                    )
                ports[key] = q
            name = mapping.get("name")
            if name is not None:
                if name in names:
                    raise ClientException(f"{q}.name '{name}' is already used by {names[name]}")
                names[name] = q
