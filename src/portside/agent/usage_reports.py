"""The agent's usage reports: each running task's CPU and memory, sent to the control plane every few seconds.

Every round the reporter reads the counters of every running container of its RUNNING tasks
(``agent/usage.py``: the container's cgroup, found through Docker's ``State.Pid`` once per
container) and sends ``PublishMetrics`` (docs/agent-protocol.md): per container the CPU
nanoseconds used since the previous round and how long that was, and the memory in use now. A
container's first round only sets its baseline, so it reports memory alone. The control plane's
answer says how often to report (``reportSeconds``: a third of its metric period); until it has
answered, every ``DEFAULT_REPORT_S``.

A report that cannot be delivered is dropped, not queued: the next one measures from the same
baselines' successors, and usage is only worth having while it is fresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from portside.agent.link import LinkError, LinkRefused
from portside.agent.usage import CgroupReader, Usage
from portside.core.cgroups import CgroupDir
from portside.core.lifecycle import ContainerStatus, TaskStatus
from portside.core.utilisation import MAX_REPORT_S, MAX_TASKS_PER_REPORT, MIN_REPORT_S
from portside.errors import DriverError

if TYPE_CHECKING:
    from portside.agent.agent import HostAgent

log = logging.getLogger("portside.agent.usage")

DEFAULT_REPORT_S = 5.0


class UsageReporter:
    def __init__(self, agent: HostAgent, reader: CgroupReader | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.agent = agent
        self.reader = reader or CgroupReader()
        self.monotonic = monotonic
        self.interval_s = DEFAULT_REPORT_S
        self._dirs: dict[str, dict[str, CgroupDir]] = {}  # docker id -> its counter directories
        self._last_cpu: dict[str, tuple[float, int]] = {}  # docker id -> (when, cumulative CPU ns)

    async def run_forever(self) -> None:
        while True:
            try:
                await self.report_once()
            except LinkRefused as exc:
                log.warning("the control plane refused a usage report: %s", exc)
            except LinkError:
                pass  # the other loops log the link's trouble; the next round measures afresh
            await asyncio.sleep(self.interval_s)

    async def report_once(self) -> None:
        """Measure every running task and send the reports (in batches of ``MAX_TASKS_PER_REPORT``)."""
        instance = self.agent.instance_arn
        entries = await self.measure()
        if instance is None:
            return
        for start in range(0, max(len(entries), 1), MAX_TASKS_PER_REPORT):
            batch = entries[start : start + MAX_TASKS_PER_REPORT]
            answer = await self.agent.link.publish_metrics(
                {"cluster": self.agent.cluster, "containerInstance": instance, "tasks": batch}
            )
            given = answer.get("reportSeconds")
            if isinstance(given, (int, float)) and not isinstance(given, bool):
                if MIN_REPORT_S <= given <= MAX_REPORT_S:
                    self.interval_s = float(given)

    async def measure(self) -> list[dict[str, Any]]:
        """One entry per RUNNING task with a readable container: what goes in ``tasks``.

        The files are read on a worker thread, all in one go: in the server the agent shares its
        event loop with the proxy, which must not wait on a few hundred file reads.
        """
        running = [
            (task, container)
            for task in list(self.agent.tasks.values()) if task.last_status is TaskStatus.RUNNING
            for container in task.containers
            if container.docker_id is not None and container.last_status is ContainerStatus.RUNNING
        ]
        live = {container.docker_id for _, container in running if container.docker_id is not None}
        for gone in set(self._dirs) - live:  # stopped containers: forget them
            self._dirs.pop(gone, None)
            self._last_cpu.pop(gone, None)
        for docker_id in live - set(self._dirs):
            await self._locate(docker_id)
        readings = await asyncio.to_thread(self._read_all, [d for d in live if d in self._dirs])
        entries: list[dict[str, Any]] = []
        by_task: dict[str, list[dict[str, Any]]] = {}
        for task, container in running:
            sample = self._sample(container.docker_id, readings) if container.docker_id else None
            if sample is not None:
                if task.arn not in by_task:
                    by_task[task.arn] = []
                    entries.append({"task": task.arn, "containers": by_task[task.arn]})
                by_task[task.arn].append({"containerName": container.name, **sample})
        return entries

    async def _locate(self, docker_id: str) -> None:
        """Find a container's cgroup through Docker: its main process names it."""
        try:
            state = await self.agent.driver.inspect(docker_id)
        except DriverError:
            return
        if state is not None and state.pid > 0:
            dirs = await asyncio.to_thread(self.reader.locate, state.pid)
            if dirs:
                self._dirs[docker_id] = dirs

    def _read_all(self, docker_ids: list[str]) -> dict[str, tuple[float, Usage]]:
        return {docker_id: (self.monotonic(), self.reader.read(self._dirs[docker_id])) for docker_id in docker_ids}

    def _sample(self, docker_id: str, readings: dict[str, tuple[float, Usage]]) -> dict[str, Any] | None:
        if docker_id not in readings:
            return None
        now, usage = readings[docker_id]
        if usage.cpu_ns is None and usage.memory_bytes is None:
            self._dirs.pop(docker_id, None)  # gone, or moved: look it up again next round
            self._last_cpu.pop(docker_id, None)
            return None
        sample: dict[str, Any] = {}
        if usage.cpu_ns is not None:
            previous = self._last_cpu.get(docker_id)
            self._last_cpu[docker_id] = (now, usage.cpu_ns)
            if previous is not None and now > previous[0] and usage.cpu_ns >= previous[1]:
                sample["cpuNanoseconds"] = usage.cpu_ns - previous[1]
                sample["seconds"] = round(now - previous[0], 6)
        if usage.memory_bytes is not None:
            sample["memoryBytes"] = usage.memory_bytes
        return sample
