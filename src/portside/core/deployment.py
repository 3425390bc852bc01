"""Rolling-update arithmetic of the ECS service scheduler (spec ecs.md §3.1-§3.3).

Pure integer arithmetic, no clock and no state: the service reconciler
(:mod:`portside.core.service_reconcile`) and the controller both call these.

* **minimum healthy** = ``ceil(desired * minimumHealthyPercent / 100)`` healthy tasks that must
  stay during a deployment (§3.1: "Lower bound on RUNNING tasks = ``ceil(desired * min/100)``";
  the developer guide: "This value is rounded up").
* **maximum** = ``floor(desired * maximumPercent / 100)`` tasks RUNNING + PENDING (+ STOPPING, per
  the developer guide) at once (§3.1: "Upper bound on RUNNING+PENDING(+STOPPING per [dg]) =
  ``floor(desired * max/100)``"; "This value is rounded down").
* **circuit breaker threshold** = ``ceil(0.5 * desired)`` clamped to [10, 200] (§3.2).
* **launch back-off** for tasks that never reach RUNNING: exponential, at most 15 minutes (§3.3).

All percent arithmetic is done on integers so that 4 × 75 % is exactly 3, never 2.9999.
"""

from __future__ import annotations

__all__ = [
    "CIRCUIT_BREAKER_MAX_THRESHOLD",
    "CIRCUIT_BREAKER_MIN_THRESHOLD",
    "DEFAULT_MAXIMUM_PERCENT",
    "DEFAULT_MINIMUM_HEALTHY_PERCENT",
    "LAUNCH_BACKOFF_BASE_S",
    "LAUNCH_BACKOFF_MAX_S",
    "breaker_counts_failure",
    "circuit_breaker_stage",
    "circuit_breaker_threshold",
    "configuration_blocks_deployment",
    "maximum_tasks",
    "minimum_healthy_tasks",
    "next_launch_backoff_s",
    "start_first_allowance",
    "stop_first_allowance",
]

# §3.1: REPLICA defaults.
DEFAULT_MINIMUM_HEALTHY_PERCENT = 100
DEFAULT_MAXIMUM_PERCENT = 200

# §3.2: "Threshold = ceil(0.5*desired) clamped to [10, 200] (desired 1→10, 25→13, 400→200)".
CIRCUIT_BREAKER_MIN_THRESHOLD = 10
CIRCUIT_BREAKER_MAX_THRESHOLD = 200

# §3.3: back off "up to a maximum of 15 minutes". ECS does not publish its base or factor
# ("incrementally increased"); ours is 10 s doubling per consecutive failure:
# 10, 20, 40, 80, 160, 320, 640, then 900 s for every later failure.
LAUNCH_BACKOFF_BASE_S = 10.0
LAUNCH_BACKOFF_MAX_S = 15 * 60.0


def minimum_healthy_tasks(desired: int, minimum_healthy_percent: int) -> int:
    """``ceil(desired * minimumHealthyPercent / 100)``, never more than ``desired`` (§3.1).

    A percent above 100 (ECS rejects it) is treated as 100, a negative one as 0.
    """
    desired = max(0, desired)
    percent = min(100, max(0, minimum_healthy_percent))
    return -(-desired * percent // 100)


def maximum_tasks(desired: int, maximum_percent: int) -> int:
    """``floor(desired * maximumPercent / 100)`` (§3.1)."""
    return max(0, desired) * max(0, maximum_percent) // 100


def start_first_allowance(desired: int, maximum_percent: int) -> int:
    """How many new tasks a deployment may start before it stops any of ``desired`` old ones.

    Developer guide (``deployment-type-ecs.md``): "if the maximum percent is 200 and the desired
    task count is four then the scheduler can start four new tasks before stopping four existing
    tasks … if the maximum percent is 125 and the desired task count is three, the scheduler
    can't start any tasks".
    """
    return max(0, maximum_tasks(desired, maximum_percent) - max(0, desired))


def stop_first_allowance(desired: int, minimum_healthy_percent: int) -> int:
    """How many of ``desired`` healthy old tasks a deployment may stop before new ones are healthy.

    Developer guide: "if the minimum healthy percent is 50 and the desired task count is four,
    then the scheduler can stop two existing tasks before starting two new tasks … if the
    minimum healthy percent is 75% and the desired task count is two, then the scheduler can't
    stop any tasks due to the resulting value also being two."
    """
    return max(0, desired) - minimum_healthy_tasks(desired, minimum_healthy_percent)


def configuration_blocks_deployment(desired: int, minimum_healthy_percent: int, maximum_percent: int) -> bool:
    """True when a service running ``desired`` healthy old tasks can neither start nor stop one.

    That is the case ECS reports with "unable to stop or start tasks during a deployment because
    of the service deployment configuration" (§3.1; "min=max=100 blocks draining/deploys").
    """
    return (
        desired > 0
        and start_first_allowance(desired, maximum_percent) == 0
        and stop_first_allowance(desired, minimum_healthy_percent) == 0
    )


def circuit_breaker_threshold(desired: int) -> int:
    """Failed tasks that turn a deployment FAILED: ``ceil(desired / 2)`` clamped to [10, 200] (§3.2)."""
    half_up = -(-max(0, desired) // 2)
    return min(CIRCUIT_BREAKER_MAX_THRESHOLD, max(CIRCUIT_BREAKER_MIN_THRESHOLD, half_up))


def circuit_breaker_stage(had_running_task: bool) -> int:
    """Stage 1 until a task of the deployment has reached RUNNING, stage 2 after (§3.2).

    Developer guide (``deployment-circuit-breaker.md``): stage 1 "checks for tasks that are in
    the RUNNING state … When tasks fail to reach in the RUNNING state, the deployment circuit
    breaker increases the failure count by one"; stage 2 "is entered when there are one of
    more tasks in the RUNNING state" and counts ELB, Cloud Map and container health-check
    failures.
    """
    return 2 if had_running_task else 1


def breaker_counts_failure(
    *, had_running_task: bool, reached_running: bool, failed_health_check: bool
) -> bool:
    """Whether a stopped task of the deployment adds one to its ``failedTasks`` (§3.2).

    For the controller, which owns the count. ``had_running_task`` must already include the
    stopped task itself if it reached RUNNING. Stage 1 counts tasks that stopped before RUNNING;
    stage 2 counts health-check failures only, so a task that ran and then exited on its own is
    not counted in either stage (as in ECS: aws/containers-roadmap#1206).
    """
    if circuit_breaker_stage(had_running_task) == 1:
        return not reached_running
    return failed_health_check


def next_launch_backoff_s(consecutive_failures: int) -> float:
    """Seconds to wait before the next task launch after ``consecutive_failures`` (§3.3).

    Counts only tasks that went PENDING → STOPPED without reaching RUNNING ("Tasks that reached
    RUNNING (e.g. ELB-failed) are not throttled"); the controller resets the count to 0 when the
    service gets a new task definition ("reset on new task definition"). 0 failures → 0 s;
    n ≥ 1 → ``min(900, 10 × 2**(n-1))``.
    """
    if consecutive_failures <= 0:
        return 0.0
    exponent = min(consecutive_failures - 1, 32)  # 10 × 2**32 is far past the cap already
    return min(LAUNCH_BACKOFF_MAX_S, LAUNCH_BACKOFF_BASE_S * 2.0**exponent)
