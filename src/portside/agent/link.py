"""The agent's side of the agent protocol: the calls it makes to the control plane.

Every agent, the one inside the server included, talks to the control plane through this
interface only (docs/agent-protocol.md). Messages are plain JSON-able dicts, the same over both
transports: ``portside.control.local_link.LocalLink`` calls the control plane's operations in
the server's own process; ``portside.agent.http_link.HttpLink`` sends them to the API over HTTP,
signed with SigV4.
"""

from __future__ import annotations

from typing import Any, Protocol


class LinkError(Exception):
    """The control plane could not be reached or refused a call; the agent retries later."""


class LinkRefused(LinkError):
    """The control plane answered and said no (bad request, unknown instance): retrying will not help."""


class ControlLink(Protocol):
    async def register(self, request: dict[str, Any]) -> dict[str, Any]:
        """RegisterContainerInstance: ``{"containerInstance": {...}}``."""

    async def poll_assignments(self, request: dict[str, Any]) -> dict[str, Any]:
        """The instance's tasks changed after ``sinceRevision``, waiting up to ``waitSeconds`` for one."""

    async def submit_task_state_change(self, request: dict[str, Any]) -> dict[str, Any]:
        """What a task and its containers are now (core.state_change.task_state_change)."""

    async def heartbeat(self, request: dict[str, Any]) -> dict[str, Any]:
        """The agent is alive: ``{"heartbeatSeconds": ..}``."""

    async def publish_metrics(self, request: dict[str, Any]) -> dict[str, Any]:
        """The CPU and memory its running tasks used (agent/usage_reports.py): ``{"reportSeconds": ..}``."""
    async def put_container_logs(self, request: dict[str, Any]) -> dict[str, Any]:
        """Events an awslogs container wrote (none: open its stream): ``{"accepted": n, ...}``."""
