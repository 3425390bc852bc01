"""Task and container lifecycle as ECS defines it (spec ecs.md §3.4).

Theory of operation
-------------------
A task has two status fields with one writer each: ``desired_status`` (RUNNING or
STOPPED) is written by the control plane (RunTask, StopTask); ``last_status`` is
written by the agent as it drives containers. ``last_status`` only moves forward
along ``TASK_ORDER``: a step backwards is refused with ``InvalidTransition`` and
leaves the task unchanged. Steps may be skipped (a task that fails to pull goes
PENDING -> STOPPED), which ECS does too.

Each status reached stamps the timestamp ECS reports for it, once.
"""

from __future__ import annotations

import enum


class InvalidTransition(Exception):
    def __init__(self, entity: str, state: str, target: str) -> None:
        super().__init__(f"cannot move {entity} from {state} to {target}: lastStatus only moves forward")


class TaskStatus(enum.IntEnum):
    PROVISIONING = 0
    PENDING = 1
    ACTIVATING = 2
    RUNNING = 3
    DEACTIVATING = 4
    STOPPING = 5
    DEPROVISIONING = 6
    STOPPED = 7

    @property
    def is_terminal(self) -> bool:
        return self is TaskStatus.STOPPED

    @property
    def is_stopping(self) -> bool:
        return self >= TaskStatus.DEACTIVATING


class ContainerStatus(enum.IntEnum):
    PENDING = 0
    RUNNING = 1
    STOPPED = 2


class StopCode(str, enum.Enum):
    TASK_FAILED_TO_START = "TaskFailedToStart"
    ESSENTIAL_CONTAINER_EXITED = "EssentialContainerExited"
    USER_INITIATED = "UserInitiated"
    SERVICE_SCHEDULER_INITIATED = "ServiceSchedulerInitiated"


# Timestamp field stamped the first time a task reaches each status.
STATUS_TIMESTAMP: dict[TaskStatus, str] = {
    TaskStatus.RUNNING: "startedAt",
    TaskStatus.STOPPING: "executionStoppedAt",
    TaskStatus.STOPPED: "stoppedAt",
}

# ECS's own words (spec ecs.md §3.7).
REASON_ESSENTIAL_EXITED = "Essential container in task exited"
REASON_USER_STOPPED = "Task stopped by user"
REASON_OOM = "OutOfMemoryError: Container killed due to memory usage"
REASON_PORTS_PREFIX = "HostConfigError: error retrieving docker port map: "


def next_task_status(current: TaskStatus, target: TaskStatus, entity: str = "task") -> TaskStatus:
    """Return ``target`` if moving there is forward (or a no-op); raise InvalidTransition otherwise."""
    if target < current:
        raise InvalidTransition(entity, current.name, target.name)
    return target


def task_status_from_containers(statuses: list[ContainerStatus], essential: list[bool]) -> TaskStatus:
    """The task status the containers imply while it is being started.

    RUNNING once every essential container is RUNNING (non-essential ones may have
    finished already, as dependsOn COMPLETE/SUCCESS containers do); PENDING before.
    """
    if all(s is ContainerStatus.RUNNING for s, e in zip(statuses, essential) if e):
        return TaskStatus.RUNNING
    return TaskStatus.PENDING


def task_health(container_health: list[str]) -> str:
    """Task health from its essential containers' health, UNHEALTHY > UNKNOWN > HEALTHY (spec §2.4)."""
    if not container_health:
        return "UNKNOWN"
    if "UNHEALTHY" in container_health:
        return "UNHEALTHY"
    if "UNKNOWN" in container_health:
        return "UNKNOWN"
    return "HEALTHY"
