"""control/agent_protocol.py over a real SQLite store, in process: what each call answers, what it
refuses (naming the field), and that a refusal changes nothing. A clock the test moves stands for
time where the protocol reads ``plane.clock``; waits are measured on the real loop's clock."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portside.agent.registration import registration
from portside.config import ServerConfig
from portside.control import agent_protocol, instance_state
from portside.control.clusters import describe_instance
from portside.control.plane import ControlPlane
from portside.control.store import Store
from portside.core.task import Task
from portside.errors import ClientException, InvalidParameterException, NotFoundError, PortsideError
from tests.support.agent_tasks import make_task
from tests.support.instances import Clock

REGION = "us-east-1"
HOST = "i-0a1b2c3d4e5f60718"
OTHER = "i-0ffffffffffffffff"


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    clock = Clock()
    cfg = ServerConfig(
        state_dir=tmp_path, api_port=0, extra={"cluster": "default"}, agent_ttl_s=15.0, agent_heartbeat_s=5.0
    )
    store = Store(tmp_path / "portside.db")
    plane = ControlPlane(cfg, store, "", clock=clock, started_at=clock.now)
    yield plane
    store.close()


def request(
    instance_id: str = HOST, *, cluster: str = "default", address: str = "10.0.0.2", **custom: str
) -> dict[str, Any]:
    return registration(
        cluster=cluster,
        region=REGION,
        instance_id=instance_id,
        address=address,
        zone=None,
        docker_version="test",
        cpu_units=2048,
        memory_mib=4096,
        reserved_tcp=[22],
        reserved_udp=[],
        attributes=custom,
        awsvpc=False,
    )


def register(plane: ControlPlane, instance_id: str = HOST, **extra: Any) -> dict[str, Any]:
    body = request(instance_id)
    body.update(extra)
    return agent_protocol.register_container_instance(plane, REGION, body)["containerInstance"]


def with_document(**changes: Any) -> dict[str, Any]:
    body = request()
    document = json.loads(body["instanceIdentityDocument"])
    document.update(changes)
    body["instanceIdentityDocument"] = json.dumps({k: v for k, v in document.items() if v is not None})
    return body


def snapshot(plane: ControlPlane) -> Any:
    return (
        plane.store.list_clusters(REGION),
        plane.store.list_container_instances(REGION, "default"),
        plane.store.list_container_instances(REGION, "other"),
        dict(plane.agent_seen),
        plane.store.task_revision(),
    )


def poll(plane: ControlPlane, params: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(agent_protocol.poll_assignments(plane, REGION, params))


def place(plane: ControlPlane, instance_arn: str, **kwargs: Any) -> Task:
    task = make_task(instance_arn, **kwargs)
    plane.store.put_task(task)  # a control plane write: the next task revision
    return task


# -- RegisterContainerInstance


def with_resources(name: str, entry: dict[str, Any]) -> dict[str, Any]:
    body = request()
    body["totalResources"] = [r for r in body["totalResources"] if r["name"] != name] + [
        {"name": name, **entry}
    ]
    return body


REFUSALS = {
    "document-not-json": (
        {**request(), "instanceIdentityDocument": "{not json"},
        "instanceIdentityDocument must be a JSON object",
    ),
    "document-a-list": (
        {**request(), "instanceIdentityDocument": "[]"},
        "instanceIdentityDocument must be a JSON object",
    ),
    "document-missing": (
        {**request(), "instanceIdentityDocument": None},
        "instanceIdentityDocument must be a JSON object",
    ),
    "bad-instance-id": (with_document(instanceId="host-1"), "instanceIdentityDocument.instanceId"),
    "long-instance-id": (with_document(instanceId="i-" + "a" * 41), "instanceIdentityDocument.instanceId"),
    "instance-id-newline": (with_document(instanceId="i-0abc\n"), "instanceIdentityDocument.instanceId"),
    "instance-id-not-ascii": (with_document(instanceId="i-caf\u00e9"), "instanceIdentityDocument.instanceId"),
    "bad-private-ip": (with_document(privateIp="10.0.0.256"), "instanceIdentityDocument.privateIp"),
    "no-private-ip": (with_document(privateIp=None), "instanceIdentityDocument.privateIp"),
    "no-zone": (with_document(availabilityZone=None), "instanceIdentityDocument.availabilityZone"),
    "empty-zone": (with_document(availabilityZone=""), "instanceIdentityDocument.availabilityZone"),
    "negative-cpu": (with_resources("CPU", {"integerValue": -1}), "totalResources: CPU"),
    "no-memory": (with_resources("MEMORY", {}), "totalResources: MEMORY"),
    "bool-cpu": (with_resources("CPU", {"integerValue": True}), "totalResources: CPU"),
    "port-zero": (with_resources("PORTS", {"stringSetValue": ["0"]}), "totalResources: PORTS"),
    "port-too-big": (with_resources("PORTS_UDP", {"stringSetValue": ["65536"]}), "totalResources: PORTS_UDP"),
    "port-not-number": (with_resources("PORTS", {"stringSetValue": ["http"]}), "totalResources: PORTS"),
    "attribute-no-name": (
        {**request(), "attributes": [{"value": "x"}]},
        "attributes: every attribute needs a name",
    ),
    "other-cluster-arn": (
        {
            **request(),
            "containerInstanceArn": "arn:aws:ecs:us-east-1:000000000000:container-instance/other/" + "c" * 32,
        },
        "containerInstanceArn: not a container instance of this cluster",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_bad_registration_is_refused_naming_the_field_and_changes_nothing(
    plane: ControlPlane, case: str
) -> None:
    params, message = REFUSALS[case]
    register(plane, OTHER)
    before = snapshot(plane)
    with pytest.raises(InvalidParameterException) as refused:
        agent_protocol.register_container_instance(plane, REGION, params)
    assert message in refused.value.message
    assert snapshot(plane) == before


def test_an_arn_held_by_another_instance_id_is_refused_and_changes_nothing(plane: ControlPlane) -> None:
    theirs = register(plane, OTHER)
    before = snapshot(plane)
    with pytest.raises(
        InvalidParameterException, match="containerInstanceArn: registered by another instance"
    ):
        register(plane, HOST, containerInstanceArn=theirs["containerInstanceArn"])
    assert snapshot(plane) == before


def test_the_same_host_gets_the_same_arn_and_a_new_version(plane: ControlPlane) -> None:
    first = register(plane)
    plane.clock.now += 100  # type: ignore[attr-defined]
    again = register(plane)
    sent_back = register(plane, containerInstanceArn=first["containerInstanceArn"])
    assert first["containerInstanceArn"] == again["containerInstanceArn"] == sent_back["containerInstanceArn"]
    assert (first["version"], again["version"], sent_back["version"]) == (1, 2, 3)
    assert again["registeredAt"] == first["registeredAt"]
    assert len(plane.store.list_container_instances(REGION, "default")) == 1
    assert register(plane, OTHER)["containerInstanceArn"] != first["containerInstanceArn"]


def test_draining_survives_a_re_registration(plane: ControlPlane) -> None:
    arn = register(plane)["containerInstanceArn"]
    instance_state.update_container_instances_state(
        plane, REGION, {"containerInstances": [arn], "status": "DRAINING"}
    )
    assert register(plane)["status"] == "DRAINING"


def test_a_deregistered_instance_registers_again_active(plane: ControlPlane) -> None:
    arn = register(plane)["containerInstanceArn"]
    instance_state.deregister_container_instance(plane, REGION, {"containerInstance": arn})
    again = register(plane, containerInstanceArn=arn)
    assert (again["containerInstanceArn"], again["status"]) == (arn, "ACTIVE")


# -- PollAssignments


def test_a_poll_without_a_revision_lists_every_live_task_of_the_instance(plane: ControlPlane) -> None:
    mine = register(plane)["containerInstanceArn"]
    theirs = register(plane, OTHER)["containerInstanceArn"]
    live = place(plane, mine)
    stopped = place(plane, mine)
    stopped.request_stop("UserInitiated", "Task stopped by user", plane.clock())
    stopped.advance(stopped.last_status.__class__.STOPPED, plane.clock())
    plane.store.put_task(stopped)
    place(plane, theirs)
    answer = poll(plane, {"containerInstance": mine})
    assert answer["complete"] is True
    assert [t["arn"] for t in answer["tasks"]] == [live.arn]
    assert answer["revision"] == plane.store.task_revision()


def test_a_revision_the_store_never_issued_answers_the_whole_list(plane: ControlPlane) -> None:
    mine = register(plane)["containerInstanceArn"]
    live = place(plane, mine)
    answer = poll(plane, {"containerInstance": mine, "sinceRevision": plane.store.task_revision() + 1000})
    assert (answer["complete"], [t["arn"] for t in answer["tasks"]]) == (True, [live.arn])


def test_a_poll_since_a_revision_answers_only_what_changed_after_it(plane: ControlPlane) -> None:
    mine = register(plane)["containerInstanceArn"]
    place(plane, mine)
    since = plane.store.task_revision()
    later = place(plane, mine)
    answer = poll(plane, {"containerInstance": mine, "sinceRevision": since})
    assert answer["complete"] is False
    assert [t["arn"] for t in answer["tasks"]] == [later.arn]
    assert answer["revision"] == since + 1


def test_a_task_write_wakes_a_waiting_poll_at_once(plane: ControlPlane) -> None:
    mine = register(plane)["containerInstanceArn"]
    since = plane.store.task_revision()

    async def scenario() -> tuple[dict[str, Any], float, Task]:
        waiting = asyncio.ensure_future(
            agent_protocol.poll_assignments(
                plane, REGION, {"containerInstance": mine, "sinceRevision": since, "waitSeconds": 5}
            )
        )
        await asyncio.sleep(0.2)
        assert not waiting.done()
        written = time.monotonic()
        task = place(plane, mine)
        answer = await asyncio.wait_for(waiting, 10)
        return answer, time.monotonic() - written, task

    answer, took, task = asyncio.run(scenario())
    assert [t["arn"] for t in answer["tasks"]] == [task.arn]
    assert took < 1.0, f"the poll answered {took:.2f} s after the write (waitSeconds 5)"


def test_an_agents_report_neither_wakes_a_poll_nor_moves_the_revision(plane: ControlPlane) -> None:
    mine = register(plane)["containerInstanceArn"]
    task = place(plane, mine)
    since = plane.store.task_revision()

    async def scenario() -> tuple[dict[str, Any], float]:
        started = time.monotonic()
        waiting = asyncio.ensure_future(
            agent_protocol.poll_assignments(
                plane, REGION, {"containerInstance": mine, "sinceRevision": since, "waitSeconds": 1}
            )
        )
        await asyncio.sleep(0.1)
        acknowledged = agent_protocol.submit_task_state_change(plane, REGION, running_report(task, mine))
        assert acknowledged == {"acknowledgment": "ACCEPTED"}
        answer = await asyncio.wait_for(waiting, 10)
        return answer, time.monotonic() - started

    answer, took = asyncio.run(scenario())
    assert answer["tasks"] == [] and answer["revision"] == since
    assert took >= 0.9, f"the report woke the poll after {took:.2f} s"
    assert plane.store.get_task(task.arn).last_status.name == "RUNNING"  # type: ignore[union-attr]


def test_a_poll_waits_at_most_a_third_of_the_ttl(plane: ControlPlane) -> None:
    plane.config = dataclasses.replace(plane.config, agent_ttl_s=1.5)
    mine = register(plane)["containerInstanceArn"]
    started = time.monotonic()
    answer = poll(
        plane, {"containerInstance": mine, "sinceRevision": plane.store.task_revision(), "waitSeconds": 20}
    )
    took = time.monotonic() - started
    assert answer["tasks"] == []
    assert 0.4 <= took < 2.0, f"a 20 s poll with a 1.5 s TTL took {took:.2f} s"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sinceRevision": -1}, "sinceRevision"),
        ({"sinceRevision": "3"}, "sinceRevision"),
        ({"sinceRevision": True}, "sinceRevision"),
        ({"sinceRevision": 1.5}, "sinceRevision"),
        ({"waitSeconds": -1}, "waitSeconds"),
        ({"waitSeconds": 26}, "waitSeconds"),
        ({"waitSeconds": "20"}, "waitSeconds"),
        ({"waitSeconds": False}, "waitSeconds"),
    ],
)
def test_a_bad_revision_or_wait_is_refused_naming_it(
    plane: ControlPlane, params: dict[str, Any], field: str
) -> None:
    mine = register(plane)["containerInstanceArn"]
    with pytest.raises(InvalidParameterException, match=f"^{field} must be"):
        poll(plane, {"containerInstance": mine, **params})


def test_polls_and_heartbeats_of_a_deregistered_instance_are_refused(plane: ControlPlane) -> None:
    mine = register(plane)["containerInstanceArn"]
    instance_state.deregister_container_instance(plane, REGION, {"containerInstance": mine})
    with pytest.raises(ClientException, match="was deregistered; restart its agent"):
        poll(plane, {"containerInstance": mine})
    with pytest.raises(ClientException, match="was deregistered"):
        agent_protocol.heartbeat(plane, REGION, {"containerInstance": mine})


def test_a_poll_of_an_unknown_instance_is_not_found(plane: ControlPlane) -> None:
    mine = register(plane)["containerInstanceArn"]
    with pytest.raises(NotFoundError, match="containerInstance: .* is not registered in cluster default"):
        poll(plane, {"containerInstance": mine[:-1] + "0"})
    with pytest.raises(NotFoundError, match="containerInstance"):
        poll(plane, {"cluster": "other", "containerInstance": mine})


# -- SubmitTaskStateChange


def running_report(task: Task, instance_arn: str, **changes: Any) -> dict[str, Any]:
    change = {
        "cluster": task.cluster_arn,
        "task": task.arn,
        "containerInstance": instance_arn,
        "status": "RUNNING",
        "containers": [
            {
                "containerName": "web",
                "runtimeId": "3f2c",
                "status": "RUNNING",
                "hostPorts": [{"hostPort": 49162, "hostPortRange": None}],
            }
        ],
        "timestamps": {"startedAt": 1_700_000_001.0},
    }
    change.update(changes)
    return change


def test_a_report_is_folded_into_the_stored_task_and_watchers_hear_it(plane: ControlPlane) -> None:
    mine = register(plane)["containerInstanceArn"]
    task = place(plane, mine)
    heard: list[str] = []
    plane.task_watchers.append(lambda t: heard.append(t.arn))
    plane.clock.now += 10  # type: ignore[attr-defined]
    assert agent_protocol.submit_task_state_change(plane, REGION, running_report(task, mine)) == {
        "acknowledgment": "ACCEPTED"
    }
    stored = plane.store.get_task(task.arn)
    assert stored is not None and stored.last_status.name == "RUNNING"
    assert stored.containers[0].ports[0].host_port == 49162
    assert heard == [task.arn]
    assert plane.agent_seen[mine] == plane.clock()


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("unknown-task", InvalidParameterException, "task: .* was not found"),
        ("other-instance", InvalidParameterException, "containerInstance: task .* is not placed on"),
        ("unknown-container", InvalidParameterException, "containers: task .* has no container named 'db'"),
        ("bad-status", InvalidParameterException, "status: 'UP' is not a task status"),
        (
            "bad-container-status",
            InvalidParameterException,
            "containers.status: 'UP' is not a container status",
        ),
        ("other-region", InvalidParameterException, "task: .* was not found"),
    ],
)
def test_a_bad_report_is_refused_and_changes_nothing(
    plane: ControlPlane, case: str, error: type[PortsideError], message: str
) -> None:
    mine = register(plane)["containerInstanceArn"]
    theirs = register(plane, OTHER)["containerInstanceArn"]
    task = place(plane, mine)
    change = running_report(task, mine, stopCode="EssentialContainerExited", reason="exited")
    region = REGION
    if case == "unknown-task":
        change["task"] = task.arn[:-4] + "ffff"
    elif case == "other-instance":
        change["containerInstance"] = theirs
    elif case == "unknown-container":
        change["containers"][0]["containerName"] = "db"
    elif case == "bad-status":
        change["status"] = "UP"
    elif case == "bad-container-status":
        change["containers"][0]["status"] = "UP"
    elif case == "other-region":
        region = "eu-west-1"
    heard: list[str] = []
    plane.task_watchers.append(lambda t: heard.append(t.arn))
    before = plane.store.get_task(task.arn).to_json()  # type: ignore[union-attr]
    with pytest.raises(error, match=message):
        agent_protocol.submit_task_state_change(plane, region, change)
    assert plane.store.get_task(task.arn).to_json() == before  # type: ignore[union-attr]
    assert heard == []


def test_a_report_for_a_stopped_task_is_acknowledged_and_ignored(plane: ControlPlane) -> None:
    mine = register(plane)["containerInstanceArn"]
    task = place(plane, mine)
    instance_state.deregister_container_instance(plane, REGION, {"containerInstance": mine, "force": True})
    register(plane, containerInstanceArn=mine)  # the agent came back
    before = plane.store.get_task(task.arn).to_json()  # type: ignore[union-attr]
    answer = agent_protocol.submit_task_state_change(
        plane, REGION, running_report(task, mine, stopCode="EssentialContainerExited")
    )
    assert answer == {"acknowledgment": "IGNORED"}
    assert plane.store.get_task(task.arn).to_json() == before  # type: ignore[union-attr]


# -- Heartbeat and liveness


@pytest.mark.parametrize(
    ("heartbeat", "ttl", "interval"), [(5.0, 15.0, 5.0), (5.0, 9.0, 3.0), (2.0, 30.0, 2.0)]
)
def test_the_heartbeat_interval_is_at_most_a_third_of_the_ttl(
    plane: ControlPlane, heartbeat: float, ttl: float, interval: float
) -> None:
    plane.config = dataclasses.replace(plane.config, agent_heartbeat_s=heartbeat, agent_ttl_s=ttl)
    mine = register(plane)["containerInstanceArn"]
    assert agent_protocol.heartbeat(plane, REGION, {"containerInstance": mine}) == {
        "heartbeatSeconds": interval,
        "ttlSeconds": ttl,
        "lbSources": [],  # a loopback API, no --lb-source, no load-balancer node
    }


def test_heartbeats_tell_agents_which_load_balancers_to_admit(plane: ControlPlane) -> None:
    plane.config = dataclasses.replace(plane.config, api_host="10.250.0.1", lb_sources=("192.0.2.0/24",))
    mine = register(plane)["containerInstanceArn"]
    beat = lambda: agent_protocol.heartbeat(plane, REGION, {"containerInstance": mine})["lbSources"]  # noqa: E731
    assert beat() == ["10.250.0.1/32", "192.0.2.0/24"]
    plane.lb_nodes["10.250.0.40"] = plane.clock()  # a node that asked for routes now
    assert beat() == ["10.250.0.1/32", "10.250.0.40/32", "192.0.2.0/24"]
    plane.lb_nodes["10.250.0.40"] = plane.clock() - agent_protocol.LB_NODE_KEEP_S - 1  # gone quiet
    assert beat() == ["10.250.0.1/32", "192.0.2.0/24"]
    plane.config = dataclasses.replace(plane.config, api_host="0.0.0.0", lb_sources=())
    assert beat() == []  # an unspecified API address says nothing about where probes leave from


def test_an_agent_silent_for_the_ttl_is_not_connected_until_it_calls(plane: ControlPlane) -> None:
    mine = register(plane)
    arn = mine["containerInstanceArn"]

    def connected() -> bool:
        body = plane.store.get_container_instance(arn)
        assert body is not None
        return bool(describe_instance(plane, body)["agentConnected"])

    assert mine["agentConnected"] is True
    plane.clock.now += 15.0  # type: ignore[attr-defined]
    assert connected() is True
    plane.clock.now += 0.5  # type: ignore[attr-defined]
    assert connected() is False
    # A call by the instance's id, not its ARN, counts too.
    agent_protocol.heartbeat(plane, REGION, {"containerInstance": arn.rsplit("/", 1)[-1]})
    assert connected() is True
