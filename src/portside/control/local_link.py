"""The agent protocol in process: how the server's own agent talks to the control plane.

The same messages and the same operations as over HTTP (``Portside.*`` actions, see
``api/agents.py``), without the network: each message is copied through JSON both ways, so the
agent and the control plane share no object, and refusals become the agent's ``LinkRefused``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from portside.agent.link import LinkRefused
from portside.control import agent_protocol, log_shipping, usage_reports
from portside.control.plane import ControlPlane
from portside.errors import PortsideError


class LocalLink:
    def __init__(self, plane: ControlPlane, region: str) -> None:
        self.plane = plane
        self.region = region

    async def register(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self._call(agent_protocol.register_container_instance, request)

    async def poll_assignments(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self._call(agent_protocol.poll_assignments, request)

    async def submit_task_state_change(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self._call(agent_protocol.submit_task_state_change, request)

    async def heartbeat(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self._call(agent_protocol.heartbeat, request)

    async def publish_metrics(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self._call(usage_reports.publish_metrics, request)
    async def put_container_logs(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self._call(log_shipping.put_container_logs, request)

    async def _call(self, operation: Callable[..., Any], request: dict[str, Any]) -> dict[str, Any]:
        try:
            result = operation(self.plane, self.region, json.loads(json.dumps(request)))
            if isinstance(result, Awaitable):
                result = await result
        except PortsideError as exc:
            raise LinkRefused(f"{exc.code}: {exc.message}") from exc
        return json.loads(json.dumps(result))
