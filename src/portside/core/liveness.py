"""When a container instance's agent counts as gone, and what happens to the tasks it ran.

An agent that has not called for ``ttl`` is disconnected (``agentConnected: false``): nothing new
is placed on its instance, and its copies keep running and serving (it may only be cut off from
the control plane). After a further ``grace``, its instance is lost: the control plane marks its
service tasks STOPPED, so the service controller deregisters their targets and starts
replacements elsewhere, unless most agents fell silent at once (``may_evict``: then the control
plane is the likelier one cut off). Tasks started outside a service are left alone, as ECS leaves them. An
agent that comes back learns that those tasks are STOPPED from its assignments and stops them, so
once settled no service runs more copies than it wants.
"""

from __future__ import annotations

from portside.core.lifecycle import StopCode

STOP_CODE = StopCode.SERVICE_SCHEDULER_INITIATED.value


def is_connected(last_seen: float, now: float, ttl: float) -> bool:
    return now - last_seen <= ttl


def is_lost(last_seen: float, now: float, ttl: float, grace: float) -> bool:
    return now - last_seen > ttl + grace


def may_evict(lost: int, others: int) -> bool:
    """Whether ``lost`` silent instances may be declared lost while ``others`` still call.

    When most agents fall silent at once, the control plane itself is the likelier one cut off (its
    network, or its own pause): it evicts nobody then, so copies are never moved off healthy hosts
    it merely cannot hear. Evicted: up to as many silent instances as there are calling ones (the
    server's own instance does not count: its agent runs in the control plane's process).
    """
    return 0 < lost <= others


def lost_reason(instance_id: str, silent_s: float) -> str:
    """The stopped reason of a task on a lost instance, in the words ECS uses for a lost host."""
    return f"Host EC2 (instance {instance_id}) is unreachable: its agent has not called for {silent_s:.0f} s."
