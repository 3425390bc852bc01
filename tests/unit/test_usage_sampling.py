"""The agent's usage reports (agent/usage_reports.py) over a fixture cgroup tree: baselines, CPU
intervals, memory, containers that stop, and the interval the control plane asks for."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from portside.agent.driver import ContainerState
from portside.agent.usage import CgroupReader
from portside.agent.usage_reports import DEFAULT_REPORT_S, UsageReporter
from portside.core.lifecycle import ContainerStatus, TaskStatus
from tests.support.agent_tasks import make_task

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "cgroups"
ID = "3771f20adf3c7ab1320b14d3e05f434069b3501a15d5fdcc6c9b889a39506f3f"
INSTANCE = "arn:aws:ecs:us-east-1:000000000000:container-instance/default/0123"


class Engine:
    """Answers inspect with the fixture's process for the one container it knows."""

    def __init__(self) -> None:
        self.inspected = 0

    async def inspect(self, name_or_id: str) -> ContainerState | None:
        self.inspected += 1
        return ContainerState(id=ID, name="web", labels={}, status="running", pid=4242) if name_or_id == ID else None


class Link:
    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.sent: list[dict[str, Any]] = []

    async def publish_metrics(self, request: dict[str, Any]) -> dict[str, Any]:
        self.sent.append(request)
        return self.answer


def setup(tmp_path: Path, answer: dict[str, Any]) -> tuple[UsageReporter, Any, Path, list[float]]:
    tree = tmp_path / "tree"
    shutil.copytree(FIXTURES / "v2-systemd", tree)
    task = make_task(INSTANCE, group="service:web")
    task.last_status = TaskStatus.RUNNING
    task.containers[0].docker_id = ID
    task.containers[0].last_status = ContainerStatus.RUNNING
    agent = SimpleNamespace(tasks={task.arn: task}, driver=Engine(), link=Link(answer), cluster="default", instance_arn=INSTANCE)
    now = [100.0]
    reporter = UsageReporter(agent, CgroupReader(proc=tree / "proc", root=tree), monotonic=lambda: now[0])  # type: ignore[arg-type]
    return reporter, agent, tree / f"sys/fs/cgroup/system.slice/docker-{ID}.scope", now


def test_the_first_round_sets_a_baseline_and_the_next_reports_the_cpu_used_since(tmp_path: Path) -> None:
    reporter, agent, cgroup, now = setup(tmp_path, {"reportSeconds": 2.0})
    asyncio.run(reporter.report_once())
    task = next(iter(agent.tasks.values()))
    memory = 1130496 - 286720
    assert agent.link.sent == [{"cluster": "default", "containerInstance": INSTANCE,
                                "tasks": [{"task": task.arn, "containers": [{"containerName": "web", "memoryBytes": memory}]}]}]
    assert reporter.interval_s == 2.0
    (cgroup / "cpu.stat").write_text("usage_usec 1547804\n")  # half a second more CPU ...
    now[0] += 2.0  # ... in two seconds
    asyncio.run(reporter.report_once())
    assert agent.link.sent[1]["tasks"][0]["containers"] == [
        {"containerName": "web", "cpuNanoseconds": 500_000_000, "seconds": 2.0, "memoryBytes": memory}
    ]
    assert agent.driver.inspected == 1  # the cgroup is looked up once per container


def test_a_container_that_stopped_is_forgotten_and_nothing_is_reported_for_it(tmp_path: Path) -> None:
    reporter, agent, cgroup, now = setup(tmp_path, {})
    asyncio.run(reporter.report_once())
    task = next(iter(agent.tasks.values()))
    task.containers[0].last_status = ContainerStatus.STOPPED
    asyncio.run(reporter.report_once())
    assert agent.link.sent[-1]["tasks"] == []  # still sent: the answer says how often to report
    assert reporter._dirs == {} and reporter._last_cpu == {}
    assert reporter.interval_s == DEFAULT_REPORT_S


def test_a_cgroup_that_vanished_is_looked_up_again(tmp_path: Path) -> None:
    reporter, agent, cgroup, now = setup(tmp_path, {"reportSeconds": 999})  # out of range: ignored
    asyncio.run(reporter.report_once())
    shutil.rmtree(cgroup)
    asyncio.run(reporter.report_once())
    assert agent.link.sent[-1]["tasks"] == []
    assert reporter._dirs == {}
    assert reporter.interval_s == DEFAULT_REPORT_S


def test_a_counter_that_went_backwards_sets_a_new_baseline(tmp_path: Path) -> None:
    reporter, agent, cgroup, now = setup(tmp_path, {})
    asyncio.run(reporter.report_once())
    (cgroup / "cpu.stat").write_text("usage_usec 10\n")
    now[0] += 1.0
    asyncio.run(reporter.report_once())
    assert "cpuNanoseconds" not in agent.link.sent[-1]["tasks"][0]["containers"][0]
