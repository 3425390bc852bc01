"""The agent protocol over HTTP: an agent on another host calling the control plane's API.

Each call is one POST of JSON 1.1 to the API with ``X-Amz-Target: PortsideAgent.<Action>``,
signed with SigV4 for the ``ecs`` service with a key of the credentials file's profile (botocore
signs, as it does for every AWS client). Several server URLs may be given: a call that cannot
reach one moves on to the next. An answer of 4xx is a refusal (``LinkRefused``); anything else
that is not a 200 is an error to retry later (``LinkError``).
"""

from __future__ import annotations

import asyncio
import configparser
import json
from typing import Any

import aiohttp
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from portside.agent.link import LinkError, LinkRefused

TARGET_PREFIX = "PortsideAgent."
SIGNING_SERVICE = "ecs"
# Longer than the longest poll the control plane holds (agent_protocol.MAX_WAIT_S).
CALL_TIMEOUT_S = 40.0


def profile_credentials(path: str, profile: str) -> Credentials:
    """The access key of ``[profile]`` in an AWS shared-credentials file; ValueError names what is missing."""
    parser = configparser.ConfigParser()
    try:
        with open(path, encoding="utf-8-sig") as fh:
            parser.read_file(fh)
    except (OSError, configparser.Error) as exc:
        raise ValueError(f"--credentials {path}: cannot be read: {exc}") from exc
    if not parser.has_section(profile):
        raise ValueError(f"--credentials {path}: no [{profile}] section (--profile)")
    key = parser.get(profile, "aws_access_key_id", fallback="").strip()
    secret = parser.get(profile, "aws_secret_access_key", fallback="").strip()
    if not key or not secret:
        raise ValueError(f"--credentials {path}: [{profile}] needs aws_access_key_id and aws_secret_access_key")
    return Credentials(key, secret)


class HttpLink:
    def __init__(self, servers: list[str], credentials: Credentials, region: str) -> None:
        if not servers:
            raise ValueError("--server: give at least one URL")
        self.servers = [s.rstrip("/") for s in servers]
        self.credentials = credentials
        self.region = region
        self._current = 0
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def register(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self._call("RegisterContainerInstance", request)

    async def poll_assignments(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self._call("PollAssignments", request)

    async def submit_task_state_change(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self._call("SubmitTaskStateChange", request)

    async def heartbeat(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self._call("Heartbeat", request)

    async def publish_metrics(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self._call("PublishMetrics", request)
    async def put_container_logs(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self._call("PutContainerLogs", request)

    async def watch_routes(self, request: dict[str, Any]) -> dict[str, Any]:
        """The routing snapshot, once its revision differs from ``sinceRevision`` (``portside lb``)."""
        return await self._call("WatchRoutes", request)

    async def report_metrics(self, request: dict[str, Any]) -> dict[str, Any]:
        """A period's CloudWatch measurements of this load-balancer node (``portside lb``)."""
        return await self._call("ReportMetrics", request)

    async def _call(self, action: str, request: dict[str, Any]) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_S))
        body = json.dumps(request).encode()
        errors = []
        for attempt in range(len(self.servers)):
            url = self.servers[(self._current + attempt) % len(self.servers)]
            headers = self._signed(url, action, body)
            try:
                async with self._session.post(url + "/", data=body, headers=headers) as reply:
                    text = await reply.read()
                    status = reply.status
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                errors.append(f"{url}: {exc or type(exc).__name__}")
                continue
            self._current = (self._current + attempt) % len(self.servers)
            return _answer(action, status, text)
        raise LinkError("; ".join(errors))

    def _signed(self, url: str, action: str, body: bytes) -> dict[str, str]:
        request = AWSRequest(
            method="POST", url=url + "/", data=body,
            headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET_PREFIX + action},
        )
        SigV4Auth(self.credentials, SIGNING_SERVICE, self.region).add_auth(request)
        return dict(request.headers.items())


def _answer(action: str, status: int, text: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(text or b"{}")
    except ValueError:
        answer = {"message": text[:200].decode("utf-8", "replace")}
    if status == 200 and isinstance(answer, dict):
        return answer
    message = f"{action}: HTTP {status} {answer.get('__type', '')}: {answer.get('message') or answer.get('Message') or ''}"
    if 400 <= status < 500:
        raise LinkRefused(message)
    raise LinkError(message)
