"""The control plane's side of the agent protocol (docs/agent-protocol.md).

Four calls, the same for the server's own agent (in process, ``control/local_link.py``) and
every other host's (HTTP, SigV4, ``Portside.*`` actions of the API):

- ``register_container_instance``: RegisterContainerInstance; the host describes itself in
  ``instanceIdentityDocument`` as ECS's agent does, and its ``privateIp`` is where the load
  balancer reaches its copies;
- ``poll_assignments``: the tasks placed on the instance that changed after a revision, waiting
  up to ``waitSeconds`` for one; no revision (or one this store never issued) answers the whole
  list of its live tasks (``complete``), and the agent stops whatever it runs that is not in it;
  the values of the ``secrets`` of tasks about to start ride along in ``secrets`` (by task ARN),
  in that answer only (control/task_secrets.py);
- ``submit_task_state_change``: what a task and its containers are now, folded into the stored
  task by ``core.state_change.apply_state_change`` (the agent writes only the facts it owns);
- ``heartbeat``: the agent is alive. Every call counts; an agent silent for ``--agent-ttl``
  is ``agentConnected: false`` and gets nothing new.

The agents' fifth call, ``PublishMetrics`` (their tasks' CPU and memory), is
``control/usage_reports.py``'s.

Only the control plane's own writes of a task (placement, a stop, load balancer targets) move
the task's revision; an agent's report does not, so it never comes back as an assignment.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from typing import Any

from portside.control import clusters, task_definitions, task_secrets
from portside.control.plane import ControlPlane
from portside.core import arns
from portside.core.attributes import keep_custom
from portside.core.instance_id import RULE as instance_id_rule
from portside.core.instance_id import is_instance_id
from portside.core.state_change import apply_state_change
from portside.core.tags import check_tags, merged
from portside.errors import ClientException, InvalidParameterException, NotFoundError

#: The longest a poll waits for a change (agents ask for 20 s).
MAX_WAIT_S = 25.0
REASON_NOT_REGISTERED = "ContainerInstanceNotFoundException"
DEREGISTERED = "deregistered"
#: A load-balancer node that has not asked for routes this long is no longer admitted by agents.
LB_NODE_KEEP_S = 300.0


def register_container_instance(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    cluster = arns.cluster_name(params.get("cluster") or "default")
    document = _identity(params.get("instanceIdentityDocument"))
    resources = _resources(params.get("totalResources"))
    attributes = _attributes(params.get("attributes"))
    tags = check_tags(params.get("tags"))
    wanted = params.get("containerInstanceArn")
    with plane.store.transaction():
        clusters.ensure_cluster(plane, region, cluster)
        prefix = arns.container_instance_arn(region, plane.account, cluster, "")
        arn = arns.container_instance_arn(
            region, plane.account, cluster, arns.stable_hex_id("container-instance", document["instanceId"], region, cluster)
        )
        if isinstance(wanted, str) and wanted:
            previous = plane.store.get_container_instance(wanted)
            if not wanted.startswith(prefix):
                raise InvalidParameterException("containerInstanceArn: not a container instance of this cluster.")
            if previous is not None and previous.get("ec2InstanceId") != document["instanceId"]:
                raise InvalidParameterException(
                    "containerInstanceArn: registered by another instance (ec2InstanceId differs)."
                )
            arn = wanted
        previous = plane.store.get_container_instance(arn)  # one row, not the cluster's (O(1) per registration)
        body = {
            "containerInstanceArn": arn,
            "ec2InstanceId": document["instanceId"],
            "version": (previous or {}).get("version", 0) + 1,
            "versionInfo": dict(params.get("versionInfo") or {}),
            "registeredResources": resources,
            # DRAINING survives a re-registration; a deregistered (INACTIVE) instance registers anew.
            "status": "ACTIVE" if previous is None or previous["status"] == "INACTIVE" else previous["status"],
            "agentConnected": True,
            "attributes": keep_custom(attributes, (previous or {}).get("attributes", [])),
            "registeredAt": (previous or {}).get("registeredAt", plane.clock()),
            # Tags given now go over those kept from earlier registrations (and TagResource).
            "tags": merged((previous or {}).get("tags", []), tags),
            "_address": document["privateIp"],
            "_zone": document["availabilityZone"],
        }
        plane.store.put_container_instance(region, cluster, body)
    plane.saw_agent(arn)
    plane.changed("instances")
    return {"containerInstance": clusters.describe_instance(plane, body)}


async def poll_assignments(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    instance = registered_instance(plane, region, params)
    arn = instance["containerInstanceArn"]
    since = params.get("sinceRevision")
    wait_s = params.get("waitSeconds", 0)
    if since is not None and (not isinstance(since, int) or isinstance(since, bool) or since < 0):
        raise InvalidParameterException("sinceRevision must be an integer of 0 or more, or absent for the whole list.")
    if not isinstance(wait_s, (int, float)) or isinstance(wait_s, bool) or not 0 <= wait_s <= MAX_WAIT_S:
        raise InvalidParameterException(f"waitSeconds must be a number from 0 to {MAX_WAIT_S:g}.")
    loop = asyncio.get_running_loop()
    # A poll answers within a third of the TTL, so an agent waiting on one is never taken for gone.
    deadline = loop.time() + min(float(wait_s), plane.config.agent_ttl_s / 3)
    while True:
        plane.saw_agent(arn)
        revision = plane.store.task_revision()
        complete = since is None or since > revision
        tasks = plane.store.live_tasks_on(arn) if since is None or since > revision else plane.store.tasks_changed_on(arn, since)
        remaining = deadline - loop.time()
        if tasks or complete or remaining <= 0:
            break
        await plane.assignment_waits.wait(arn, remaining)
    plane.saw_agent(arn)
    definitions: dict[str, Any] = {}
    for task in tasks:
        if task.task_definition_arn not in definitions and not task.is_stopped:
            body = plane.store.get_task_definition(task.region, task.family, task.revision)
            if body is not None:
                definitions[task.task_definition_arn] = task_definitions.public(body)
    answer: dict[str, Any] = {
        "revision": revision,
        "complete": complete,
        "tasks": [t.to_json() for t in tasks],
        "taskDefinitions": definitions,
    }
    # Values of the tasks' secrets, for this answer only: never stored (control/task_secrets.py).
    secrets = {
        t.arn: task_secrets.for_agent(plane, t, definitions[t.task_definition_arn])
        for t in tasks
        if t.task_definition_arn in definitions and task_secrets.needs_secrets(t, definitions[t.task_definition_arn])
    }
    if secrets:
        answer["secrets"] = secrets
    return answer


def submit_task_state_change(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    arn = params.get("task")
    stored = plane.store.get_task(arn) if isinstance(arn, str) else None
    if stored is None or stored.region != region:
        raise InvalidParameterException(f"task: {arn!r} was not found.")
    instance = params.get("containerInstance")
    if instance != stored.container_instance_arn:
        raise InvalidParameterException(f"containerInstance: task {stored.id} is not placed on {instance!r}.")
    plane.saw_agent(stored.container_instance_arn)
    if stored.is_stopped:
        return {"acknowledgment": "IGNORED"}  # already stopped here (e.g. replaced while its host was away)
    try:
        changed = apply_state_change(stored, params, plane.clock())
    except ValueError as exc:
        raise InvalidParameterException(str(exc)) from None
    if changed:
        plane.store.put_task(stored, assigned=False)
        plane.task_changed(stored)
    return {"acknowledgment": "ACCEPTED"}


def heartbeat(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    instance = registered_instance(plane, region, params)
    plane.saw_agent(instance["containerInstanceArn"])
    return {"heartbeatSeconds": heartbeat_interval(plane), "ttlSeconds": plane.config.agent_ttl_s,
            "lbSources": lb_sources(plane)}


def lb_sources(plane: ControlPlane) -> list[str]:
    """Who may reach copies on any host (agents' firewalls admit these and drop everyone else).

    The server's own ``--lb-source`` CIDRs, the server's API address when it is routable (its
    proxy's probes and requests leave from there on the usual single-homed host), and the
    ``--address`` of every load-balancer node that asked for routes within ``LB_NODE_KEEP_S``.
    """
    config = plane.config
    sources = set(config.lb_sources)
    host = config.api_host
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None and not address.is_loopback and not address.is_unspecified:
        sources.add(f"{address}/{address.max_prefixlen}")
    now = plane.clock()
    for node, seen in plane.lb_nodes.items():
        if now - seen <= LB_NODE_KEEP_S:
            node_address = ipaddress.ip_address(node)
            sources.add(f"{node_address}/{node_address.max_prefixlen}")
    return sorted(sources)


def heartbeat_interval(plane: ControlPlane) -> float:
    """How often agents send heartbeats: the configured interval, at most a third of the TTL."""
    return min(plane.config.agent_heartbeat_s, plane.config.agent_ttl_s / 3)


# -- checking what agents send


def registered_instance(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    cluster = arns.cluster_name(params.get("cluster") or "default")
    reference = params.get("containerInstance")
    if isinstance(reference, str) and reference.startswith("arn:"):
        body = plane.store.get_container_instance(reference)
        if body is not None and reference.startswith(arns.container_instance_arn(region, plane.account, cluster, "")):
            if body["status"] == "INACTIVE":
                raise ClientException(f"containerInstance: {reference} was {DEREGISTERED}; restart its agent to register again.")
            return body
        raise NotFoundError(f"containerInstance: {reference!r} is not registered in cluster {cluster}.", REASON_NOT_REGISTERED)
    for body in plane.store.list_container_instances(region, cluster):
        if reference in (body["containerInstanceArn"], body["containerInstanceArn"].rsplit("/", 1)[-1]):
            return body
    raise NotFoundError(f"containerInstance: {reference!r} is not registered in cluster {cluster}.", REASON_NOT_REGISTERED)


def _identity(text: Any) -> dict[str, str]:
    try:
        document = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise InvalidParameterException("instanceIdentityDocument must be a JSON object.")
    instance_id = document.get("instanceId")
    if not is_instance_id(instance_id):
        raise InvalidParameterException(f"instanceIdentityDocument.instanceId must be {instance_id_rule}.")
    address = document.get("privateIp")
    try:
        ipaddress.ip_address(address if isinstance(address, str) else "")
    except ValueError:
        raise InvalidParameterException("instanceIdentityDocument.privateIp must be an IP address.") from None
    zone = document.get("availabilityZone")
    if not isinstance(zone, str) or not 1 <= len(zone) <= 64:
        raise InvalidParameterException("instanceIdentityDocument.availabilityZone must be 1 to 64 characters.")
    return {"instanceId": instance_id, "privateIp": address, "availabilityZone": zone}


def _resources(listed: Any) -> list[dict[str, Any]]:
    by_name = {r.get("name"): r for r in listed or [] if isinstance(r, dict)}
    out = []
    for name in ("CPU", "MEMORY"):
        value = (by_name.get(name) or {}).get("integerValue")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidParameterException(f"totalResources: {name} must be an integerValue of 0 or more.")
        out.append(clusters.int_resource(name, value))
    for name in ("PORTS", "PORTS_UDP"):
        values = (by_name.get(name) or {}).get("stringSetValue") or []
        if not all(isinstance(v, str) and v.isdigit() and 0 < int(v) < 65536 for v in values):
            raise InvalidParameterException(f"totalResources: {name} must list port numbers from 1 to 65535.")
        out.append(clusters.set_resource(name, sorted(set(values), key=int)))
    return out


def _attributes(listed: Any) -> list[dict[str, str]]:
    out = []
    for item in listed or []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise InvalidParameterException("attributes: every attribute needs a name.")
        value = item.get("value")
        out.append({"name": item["name"], **({"value": str(value)} if value is not None else {})})
    return out
