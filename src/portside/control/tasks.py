"""RunTask, StopTask, DescribeTasks and ListTasks."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from portside.agent.ports import plan_ports
from portside.agent.specs import docker_name
from portside.control import task_definitions
from portside.control.clusters import describe_instance
from portside.control.pagination import paginate
from portside.control.plane import ControlPlane
from portside.control.tags import new_task_tags
from portside.core.capacity import refuse_capacity_provider_strategy
from portside.core import arns
from portside.core.lifecycle import REASON_USER_STOPPED, StopCode, TaskStatus
from portside.core.placement import place
from portside.core.placement_model import Instance, PlacementFailure, TaskAsk
from portside.core.task import Container, Task
from portside.core.taskdef import task_resources
from portside.core.taskdef_rules import parse_task_cpu, parse_task_memory
from portside.core.taskdef_support import check_overrides_supported
from portside.errors import ClientException, InvalidParameterException
from portside.faults import crash_point

MAX_RUN_COUNT = 10
MAX_DESCRIBE_TASKS = 100


def run_task(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    cluster = plane.require_cluster(region, params.get("cluster"))
    count = params.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_RUN_COUNT:
        raise InvalidParameterException(f"count must be an integer from 1 to {MAX_RUN_COUNT}.")
    started_by = params.get("startedBy")
    if started_by is not None and len(started_by) > 128:
        raise InvalidParameterException("startedBy can have at most 128 characters.")
    refuse_capacity_provider_strategy(params)
    token = params.get("clientToken")
    fingerprint = hashlib.sha256(json.dumps({k: v for k, v in params.items() if k != "clientToken"}, sort_keys=True).encode()).hexdigest()
    if token:
        earlier = plane.store.get_client_token(region, "RunTask", token)
        if earlier is not None:
            if earlier[0] != fingerprint:
                raise InvalidParameterException("The clientToken was already used with different parameters.")
            return _describe_by_arns(plane, region, earlier[1]["tasks"], earlier[1]["failures"])
    body = task_definitions.resolve(plane, region, params.get("taskDefinition"), "TaskDefinition not found.")
    if body["status"] != "ACTIVE":
        raise ClientException("TaskDefinition is inactive")
    overrides = params.get("overrides") or {}
    _check_overrides(task_definitions.public(body), overrides)
    params = {**params, "tags": new_task_tags(plane, region, cluster, body, params)}
    with plane.store.transaction():
        created, failures, _ = admit_tasks(plane, region, cluster, body, count, overrides, params)
        if token:
            plane.store.put_client_token(
                region, "RunTask", token, fingerprint, {"tasks": [t.arn for t in created], "failures": failures}, plane.clock()
            )
    crash_point("after-commit")
    return {"tasks": [t.to_api(plane.az(region)) for t in created], "failures": failures}


def start_task(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    """One copy on each container instance named (up to 10), as ECS's StartTask: no placement
    strategy; an instance that is not in the cluster, or has no room, is a failure of its own."""
    cluster = plane.require_cluster(region, params.get("cluster"))
    references = params.get("containerInstances") or []
    if not references or len(references) > MAX_RUN_COUNT:
        raise InvalidParameterException(f"containerInstances must have 1 to {MAX_RUN_COUNT} items.")
    started_by = params.get("startedBy")
    if started_by is not None and len(started_by) > 128:
        raise InvalidParameterException("startedBy can have at most 128 characters.")
    body = task_definitions.resolve(plane, region, params.get("taskDefinition"), "TaskDefinition not found.")
    if body["status"] != "ACTIVE":
        raise ClientException("TaskDefinition is inactive")
    overrides = params.get("overrides") or {}
    _check_overrides(task_definitions.public(body), overrides)
    params = {**params, "tags": new_task_tags(plane, region, cluster, body, params)}
    known = {i["containerInstanceArn"]: i for i in plane.store.list_container_instances(region, cluster["clusterName"])}
    created: list[Task] = []
    failures: list[dict[str, Any]] = []
    with plane.store.transaction():
        for reference in references:
            arn = reference if reference.startswith("arn:") else arns.container_instance_arn(
                region, plane.account, cluster["clusterName"], reference
            )
            instance = known.get(arn)
            if instance is None or instance["status"] == "INACTIVE":
                failures.append({"arn": arn, "reason": "MISSING"})
                continue
            only_there = {"type": "memberOf", "expression": f"ec2InstanceId == {instance['ec2InstanceId']}"}
            one = {**params, "placementStrategy": None,
                   "placementConstraints": [*(params.get("placementConstraints") or []), only_there]}
            placed, missed, _ = admit_tasks(plane, region, cluster, body, 1, overrides, one)
            created += placed
            failures += [{**f, "arn": arn} for f in missed]
    crash_point("after-commit")
    return {"tasks": [t.to_api(plane.az(region)) for t in created], "failures": failures}


def admit_tasks(
    plane: ControlPlane,
    region: str,
    cluster: dict[str, Any],
    body: dict[str, Any],
    count: int,
    overrides: dict[str, Any],
    params: dict[str, Any],
) -> tuple[list[Task], list[dict[str, Any]], list[PlacementFailure]]:
    """Place ``count`` copies of a task definition and store them for their agents (inside a transaction).

    Placement (core.placement) honours ``placementStrategy`` and ``placementConstraints`` from
    ``params`` plus the task definition's memberOf constraints. Returns the admitted tasks (not yet
    launched), ECS-shaped ``failures`` for copies that did not fit, and their explanations.
    """
    content = task_definitions.public(body)
    task_definitions.check_runnable(plane, content)
    instances = plane.store.list_container_instances(region, cluster["clusterName"])
    if not instances:
        raise InvalidParameterException("No Container Instances were found in your cluster.")
    if content.get("networkMode") == "awsvpc":
        # awsvpc stays on the server's own host: its network exists there only (docs/agent-protocol.md).
        instances = [i for i in instances if i["containerInstanceArn"] == plane.instance_arn]
        if not instances:
            raise InvalidParameterException(
                "networkMode awsvpc: tasks run only on the portside server's own host, and it is not a "
                f"container instance of cluster {cluster['clusterName']}."
            )
    constraints = list(params.get("placementConstraints") or []) + list(content.get("placementConstraints") or [])
    strategies = params.get("placementStrategy") or None
    prototype = _new_task(plane, region, cluster, body, content, overrides, params, "")
    by_instance: dict[str, list[Task]] = {}
    for live in plane.live_tasks(region, cluster["clusterName"]):
        by_instance.setdefault(live.container_instance_arn, []).append(live)
    result = place(
        [_instance_view(plane, i, by_instance.get(i["containerInstanceArn"], [])) for i in instances], _ask(prototype), count,
        strategies, constraints, plane.rng,
    )
    created: list[Task] = []
    for instance_arn in result.placements:
        task = _new_task(plane, region, cluster, body, content, overrides, params, instance_arn)
        plane.store.put_task(task)  # the instance's agent is told, and chooses the host ports
        created.append(task)
    failures = [{"arn": f.arn or cluster["clusterArn"], "reason": f.reason, "detail": f.detail} for f in result.failures]
    return created, failures, list(result.failures)


def _ask(task: Task) -> TaskAsk:
    tcp: set[int] = set()
    udp: set[int] = set()
    if task.network_mode != "awsvpc":
        for container in task.containers:
            for plan in container.ports:
                if not plan.dynamic and plan.host_port:
                    (udp if plan.protocol == "udp" else tcp).add(plan.host_port)
    return TaskAsk(cpu=task.cpu, memory=task.memory, group=task.group or "", ports_tcp=frozenset(tcp), ports_udp=frozenset(udp))


def _instance_view(plane: ControlPlane, body: dict[str, Any], tasks: list[Task]) -> Instance:
    described = describe_instance(plane, body, tasks)
    remaining = {r["name"]: r for r in described["remainingResources"]}
    groups: dict[str, int] = {}
    for task in tasks:
        if task.group and task.desired_status == "RUNNING":
            groups[task.group] = groups.get(task.group, 0) + 1
    return Instance(
        arn=body["containerInstanceArn"],
        ec2_instance_id=body.get("ec2InstanceId", ""),
        cpu=remaining["CPU"]["integerValue"],
        memory=remaining["MEMORY"]["integerValue"],
        ports_tcp=frozenset(int(p) for p in remaining["PORTS"]["stringSetValue"]),
        ports_udp=frozenset(int(p) for p in remaining["PORTS_UDP"]["stringSetValue"]),
        attributes={a["name"]: a.get("value", "") for a in body.get("attributes", [])},
        agent_connected=described["agentConnected"] and body.get("status") == "ACTIVE",
        agent_version=body.get("versionInfo", {}).get("agentVersion", ""),
        registered_at=body.get("registeredAt", 0.0),
        running_tasks_count=described["runningTasksCount"],
        task_groups=groups,
    )


def stop_task(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    cluster = plane.require_cluster(region, params.get("cluster"))
    reference = params.get("task")
    if not reference:
        raise InvalidParameterException("task can not be blank.")
    arn = _task_arn(plane, region, cluster["clusterName"], reference)
    reason = params.get("reason") or REASON_USER_STOPPED
    from portside.control.task_drain import drain_and_stop  # it stops through request_stop, here

    task = drain_and_stop(plane, arn, StopCode.USER_INITIATED.value, reason[:255])
    if task is None:
        task = plane.store.get_task(arn)
        if task is None or task.region != region:
            raise InvalidParameterException("The referenced task was not found.")
    return {"task": task.to_api(plane.az(region))}


def describe_tasks(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    cluster = plane.require_cluster(region, params.get("cluster"))
    references = params.get("tasks") or []
    if not references:
        raise InvalidParameterException("Tasks cannot be empty.")
    if len(references) > MAX_DESCRIBE_TASKS:
        raise InvalidParameterException(f"tasks can have at most {MAX_DESCRIBE_TASKS} items.")
    out = _describe_by_arns(plane, region, [_task_arn(plane, region, cluster["clusterName"], r) for r in references], [])
    if "TAGS" not in (params.get("include") or []):  # as ECS: tags only when asked for
        for task in out["tasks"]:
            task.pop("tags", None)
    return out


def list_tasks(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    cluster = plane.require_cluster(region, params.get("cluster"))
    desired = params.get("desiredStatus") or "RUNNING"
    instance = params.get("containerInstance")
    if instance and not instance.startswith("arn:"):
        instance = arns.container_instance_arn(region, plane.account, cluster["clusterName"], instance)
    if desired == "PENDING":  # desiredStatus is only ever RUNNING or STOPPED (spec §3.4)
        tasks: list[Task] = []
    else:
        tasks = plane.store.find_tasks(
            region,
            cluster["clusterName"],
            family=params.get("family"),
            started_by=params.get("startedBy"),
            container_instance=instance,
            desired_status=desired,
        )
    if params.get("serviceName"):
        tasks = [t for t in tasks if t.group == f"service:{params['serviceName']}"]
    if params.get("launchType"):
        tasks = [t for t in tasks if t.launch_type == params["launchType"]]
    page, token = paginate([t.arn for t in tasks], params)
    out: dict[str, Any] = {"taskArns": page}
    if token:
        out["nextToken"] = token
    return out


def request_stop(plane: ControlPlane, arn: str, stop_code: str, reason: str) -> Task | None:
    """Want a live task STOPPED, with ECS's reason; its agent is told and stops it. None: not live."""
    task = plane.store.get_task(arn)
    if task is None or task.is_stopped:
        return None
    if task.request_stop(stop_code, reason, plane.clock()):
        plane.store.put_task(task)
    return task


# -- helpers


def _describe_by_arns(plane: ControlPlane, region: str, task_arns: list[str], failures: list[dict[str, Any]]) -> dict[str, Any]:
    found, missing = [], list(failures)
    for arn in task_arns:
        task = plane.store.get_task(arn)
        if task is None or task.region != region:
            missing.append({"arn": arn, "reason": "MISSING"})
        else:
            found.append(task.to_api(plane.az(region)))
    return {"tasks": found, "failures": missing}


def _task_arn(plane: ControlPlane, region: str, cluster: str, reference: str) -> str:
    if reference.startswith("arn:"):
        return reference
    return arns.task_arn(region, plane.account, cluster, reference)


def _check_overrides(content: dict[str, Any], overrides: dict[str, Any]) -> None:
    check_overrides_supported(overrides)
    names = {c["name"] for c in content["containerDefinitions"]}
    for i, override in enumerate(overrides.get("containerOverrides") or []):
        if override.get("name") not in names:
            raise InvalidParameterException(
                f"overrides.containerOverrides[{i}].name: container {override.get('name')!r} is not in the task definition."
            )
    for field, parse in (("cpu", parse_task_cpu), ("memory", parse_task_memory)):
        if overrides.get(field) is not None:
            try:
                parse(overrides[field])
            except (ClientException, ValueError) as exc:
                raise InvalidParameterException(f"overrides.{field}: {exc}") from exc


def _new_task(
    plane: ControlPlane,
    region: str,
    cluster: dict[str, Any],
    body: dict[str, Any],
    content: dict[str, Any],
    overrides: dict[str, Any],
    params: dict[str, Any],
    instance_arn: str,
) -> Task:
    task_id = uuid.uuid4().hex
    name = cluster["clusterName"]
    by_override = {o["name"]: o for o in overrides.get("containerOverrides") or []}
    containers = []
    for definition in content["containerDefinitions"]:
        override = by_override.get(definition["name"], {})
        containers.append(
            Container(
                name=definition["name"],
                container_arn=arns.ecs_arn(region, plane.account, f"container/{name}/{task_id}/{uuid.uuid4()}"),
                image=definition["image"],
                docker_name=docker_name(body["family"], body["revision"], definition["name"], task_id),
                essential=definition.get("essential", True),
                cpu=int(override.get("cpu", definition.get("cpu", 0)) or 0),
                memory=override.get("memory", definition.get("memory")),
                memory_reservation=override.get("memoryReservation", definition.get("memoryReservation")),
                has_health_check=bool((definition.get("healthCheck") or {}).get("command")),
            )
        )
    sized = dict(content)
    for field in ("cpu", "memory"):
        if overrides.get(field) is not None:
            sized[field] = overrides[field]
    cpu, memory = task_resources(sized)
    network_mode = content.get("networkMode", "bridge")
    task = Task(
        arn=arns.task_arn(region, plane.account, name, task_id),
        id=task_id,
        region=region,
        cluster=name,
        cluster_arn=cluster["clusterArn"],
        task_definition_arn=body["taskDefinitionArn"],
        family=body["family"],
        revision=body["revision"],
        network_mode=network_mode,
        container_instance_arn=instance_arn,
        containers=containers,
        cpu=cpu,
        memory=memory,
        created_at=plane.clock(),
        started_by=params.get("startedBy"),
        group=params.get("group") or f"family:{body['family']}",
        launch_type=params.get("launchType") or "EC2",
        overrides={"containerOverrides": list(overrides.get("containerOverrides") or []), **{k: v for k, v in overrides.items() if k != "containerOverrides"}},
        tags=list(params.get("tags") or []),
        client_token=params.get("clientToken"),
        enable_execute_command=bool(params.get("enableExecuteCommand", False)),
    )
    if network_mode == "awsvpc":
        task.attachment_id = str(uuid.uuid4())
        task.last_status = TaskStatus.PROVISIONING
    plan_ports(task, content)
    return task
