"""The seam between the ELBv2 control plane and the data plane (``proxy/``).

The control plane owns configuration and target registration (stored in SQLite);
the data plane owns sockets, health and in-flight requests. Every call is
synchronous and cheap: the data plane does its I/O in the background.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from portside.core.lb.model import LbConfig, Listener


class ListenerBindError(Exception):
    """The listener's port cannot be bound; ``message`` names the holder when known."""

    def __init__(self, message: str, duplicate: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.duplicate = duplicate  # True when another portside listener holds the port


@dataclass(frozen=True)
class HealthView:
    """What DescribeTargetHealth shows for one target."""

    state: str  # initial | healthy | unhealthy | draining | unused
    reason: str | None = None
    description: str | None = None
    # Healthy but still in its target group's slow-start ramp: not yet carrying its full share.
    warming: bool = False


class LbRuntime(Protocol):
    def bind_listener(self, listener: Listener) -> None:
        """Bind the listener's port now (raise ListenerBindError if impossible) and start serving it."""

    def close_listener(self, arn: str) -> None:
        """Stop accepting on the listener; in-flight requests finish."""

    def apply(self, config: LbConfig) -> None:
        """Swap in a new configuration (listeners already bound, rules, target groups, targets)."""

    def target_health(self, target_group_arn: str, target_id: str, port: int) -> HealthView:
        """Health of a registered (or draining) target; ``unused``/Target.NotRegistered if unknown."""

    def set_drained_callback(self, callback: Callable[[str, str, int], None]) -> None:
        """Called with (target group ARN, target id, port) when a draining target is done draining."""
