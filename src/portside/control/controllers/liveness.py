"""Liveness of agents: their lost instances' service tasks are marked STOPPED (core/liveness.py).

Runs every second over the container instances of every region. The heartbeats themselves are
``ControlPlane.agent_seen``, written by every call of the agent protocol.
"""

from __future__ import annotations

import logging

from portside.control import rounds
from portside.control.plane import ControlPlane
from portside.core import liveness
from portside.core.lifecycle import ContainerStatus, TaskStatus

log = logging.getLogger("portside.liveness")

TICK_S = 1.0


class LivenessController(rounds.Periodic):
    def __init__(self, plane: ControlPlane) -> None:
        super().__init__(TICK_S, "liveness round", log)
        self.plane = plane
        self.lost_tasks = 0  # marked STOPPED because their host was lost (metrics)
        self._holding = False  # most agents silent: eviction held (logged once)

    def round(self) -> None:
        self.tick()

    def _seen(self, body: dict[str, object]) -> float:
        return self.plane.agent_seen.get(str(body["containerInstanceArn"]), self.plane.started_at)

    def tick(self) -> None:
        plane = self.plane
        now = plane.clock()
        config = plane.config
        remote = [b for b in plane.store.all_container_instances()
                  if b["status"] != "INACTIVE" and b["containerInstanceArn"] != plane.instance_arn]
        lost = [b for b in remote if liveness.is_lost(self._seen(b), now, config.agent_ttl_s, config.agent_grace_s)]
        if not lost:
            return
        if not liveness.may_evict(len(lost), len(remote) - len(lost)):
            if not self._holding:
                log.warning("%d of %d agents are silent at once: not evicting them (this control plane may be "
                            "the one cut off)", len(lost), len(remote))
            self._holding = True
            return
        self._holding = False
        for body in lost:
            arn = body["containerInstanceArn"]
            seen = self._seen(body)
            for task in plane.store.live_tasks_on(arn):
                if not (task.group or "").startswith("service:"):
                    continue
                reason = liveness.lost_reason(body.get("ec2InstanceId", ""), now - seen)
                task.request_stop(liveness.STOP_CODE, reason, now)
                for container in task.containers:
                    if container.last_status is not ContainerStatus.STOPPED:
                        container.last_status = ContainerStatus.STOPPED
                        container.reason = container.reason or reason
                task.advance(TaskStatus.STOPPED, now)
                plane.store.put_task(task)  # its agent, if it returns, hears it is STOPPED and stops it
                plane.task_changed(task)  # the service controller deregisters its targets and replaces it
                self.lost_tasks += 1
                log.warning("task %s: %s", task.id, reason)
