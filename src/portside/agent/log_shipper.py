"""The agent's half of ``awslogs``: follow each container's output and ship it to the control plane.

A container whose definition logs with ``awslogs`` runs with Docker's ``local`` driver (never
Docker's own awslogs driver: it would call AWS). Before it starts, ``open`` asks the control
plane for its stream (``PutContainerLogs`` with no events), which creates the log group when
``awslogs-create-group`` is true and otherwise fails the start with Docker's reason, as on ECS.
Once it runs, ``follow`` reads its output through the Docker API on a thread and ships it in
PutLogEvents-sized batches (``core/log_events.py``).

Nothing lost, nothing twice: each container has a cursor (the last Docker timestamp shipped and
how many events of it), kept in ``--state-dir/log-cursors.json`` (mode 0600, replaced
atomically) and moved only after the control plane accepted a batch. A batch that got no answer
is sent again until one comes; a restarted agent reads again from 2 s before its cursor (Docker's
file is only nearly in timestamp order: stdout and stderr are stamped on two threads). The
control plane stores each event key once, so what it holds already is not stored twice. A
batch the control plane refuses (its group was deleted meanwhile) is dropped and logged, as
Docker's awslogs driver drops what CloudWatch refuses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from portside.agent.driver import Driver, LogFollow
from portside.agent.link import ControlLink, LinkError, LinkRefused
from portside.core import awslogs
from portside.core.log_events import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, Cursor, Event, EventReader, advance
from portside.errors import DriverError

log = logging.getLogger("portside.agent.logs")

CURSOR_FILE = "log-cursors.json"
CURSOR_FILE_MODE = 0o600
#: Bytes of lines read ahead of shipping per container (the reader waits beyond it: Docker's files
#: are the buffer); one line part (at most 1 MiB) may go over it.
READ_AHEAD_BYTES = 4 * 1024 * 1024
#: What a line costs the read-ahead budget beyond its bytes.
LINE_OVERHEAD_BYTES = 64
#: How long a batch waits for more lines before it is sent.
BATCH_WAIT_S = 0.2
RETRY_MIN_S = 0.5
RETRY_MAX_S = 5.0
#: How far before its cursor a follower reads again (keys make the overlap harmless).
REREAD_MARGIN_NS = 2_000_000_000
#: How long removing a container waits for the rest of its output to be shipped.
DRAIN_TIMEOUT_S = 20.0
_END = object()
REASON_NO_GROUP = (
    "Error response from daemon: failed to initialize logging driver: failed to create Cloudwatch log stream: "
    "ResourceNotFoundException: The specified log group does not exist."
)


class LogShipper:
    def __init__(self, link: ControlLink, driver: Driver, state_dir: Path | None) -> None:
        self.link = link
        self.driver = driver
        self.path = None if state_dir is None else Path(state_dir) / CURSOR_FILE
        self.cursors: dict[str, dict[str, int]] = self._load()
        self._followers: dict[str, asyncio.Task[None]] = {}
        self._follows: dict[str, LogFollow] = {}

    # -- what the agent calls

    async def open(self, request: dict[str, Any]) -> None:
        """Make sure the container's stream exists before it starts; DriverError (Docker's reason) if not."""
        try:
            await self.link.put_container_logs({**request, "events": []})
        except LinkRefused as exc:
            if "ResourceNotFoundException" in str(exc):
                raise DriverError(REASON_NO_GROUP) from exc
            raise DriverError(f"failed to initialize logging driver: {exc}") from exc
        except LinkError as exc:
            raise DriverError(f"failed to initialize logging driver: the control plane did not answer: {exc}") from exc

    def follow(self, docker_id: str, request: dict[str, Any]) -> None:
        """Ship the container's output from its cursor on (once per container; idempotent)."""
        current = self._followers.get(docker_id)
        if current is not None and not current.done():
            return
        if self.cursors.get(docker_id, {}).get("done"):
            return
        self._followers[docker_id] = asyncio.ensure_future(self._follow(docker_id, request))

    async def drain(self, docker_id: str) -> None:
        """Wait (bounded) for the container's follower to ship what the container wrote."""
        current = self._followers.get(docker_id)
        if current is not None and not current.done():
            await asyncio.wait([current], timeout=DRAIN_TIMEOUT_S)

    def forget(self, keep: set[str]) -> None:
        """Drop the cursors and finished followers of containers that are gone (ids not in ``keep``)."""
        for key in [k for k, work in self._followers.items() if k not in keep and work.done()]:
            del self._followers[key]
        gone = [k for k in self.cursors if k not in keep]
        if gone:
            for key in gone:
                self.cursors.pop(key, None)
            self._save()

    async def close(self) -> None:
        for follow in list(self._follows.values()):
            follow.close()
        for work in self._followers.values():
            work.cancel()
        if self._followers:
            await asyncio.gather(*self._followers.values(), return_exceptions=True)

    # -- following one container

    async def _follow(self, docker_id: str, request: dict[str, Any]) -> None:
        """Follow until the container has exited and all it wrote is shipped (reading again if the stream broke)."""
        while True:
            await self._follow_once(docker_id, request)
            try:
                state = await self.driver.inspect(docker_id)
            except DriverError as exc:
                log.info("logs of container %s: Docker did not answer (%s); reading again", docker_id[:12], exc.message)
                await asyncio.sleep(RETRY_MAX_S)
                continue
            if state is None or not state.running:
                break
            await asyncio.sleep(RETRY_MIN_S)  # the stream ended while the container runs: read again from the cursor
        self.cursors[docker_id] = {**self.cursors.get(docker_id, {}), "done": 1}
        self._save()

    async def _follow_once(self, docker_id: str, request: dict[str, Any]) -> None:
        saved = self.cursors.get(docker_id, {})
        cursor = Cursor(int(saved.get("ts", 0)), int(saved.get("count", 0)))
        lines: asyncio.Queue[Any] = asyncio.Queue()
        budget = _Budget(READ_AHEAD_BYTES)
        # Docker stamps stdout and stderr on two threads, so its file is in timestamp order only
        # nearly: read again from a little before the cursor and let the control plane's keys
        # drop what it holds already.
        since = Cursor(max(cursor.ts_ns - REREAD_MARGIN_NS, 0), 0) if cursor.ts_ns else cursor
        follow = self.driver.follow_logs(docker_id, max(since.ts_ns // 1_000_000_000 - 1, 0))
        self._follows[docker_id] = follow
        stop = threading.Event()
        loop = asyncio.get_running_loop()
        threading.Thread(
            target=_pump, args=(follow, loop, lines, budget, stop), name=f"logs-{docker_id[:12]}", daemon=True
        ).start()
        reader = EventReader(since)
        pending: list[Event] = []
        try:
            ended = False
            while not ended or pending:
                ended = await self._gather(lines, budget, reader, pending) or ended
                if pending:
                    batch, size = [], 0
                    for event in pending:
                        if len(batch) >= MAX_BATCH_EVENTS or size + event.size > MAX_BATCH_BYTES:
                            break
                        batch.append(event)
                        size += event.size
                    await self._ship(request, docker_id, batch)
                    del pending[: len(batch)]
                    cursor = advance(cursor, batch)
                    self.cursors[docker_id] = {"ts": cursor.ts_ns, "count": cursor.count}
                    self._save()
        finally:
            stop.set()
            follow.close()
            self._follows.pop(docker_id, None)

    async def _gather(
        self, lines: asyncio.Queue[Any], budget: _Budget, reader: EventReader, pending: list[Event]
    ) -> bool:
        """Move read lines into ``pending`` until a batch is full or none came for a moment; True at the end."""
        size = sum(e.size for e in pending)
        while len(pending) < MAX_BATCH_EVENTS and size < MAX_BATCH_BYTES:
            try:
                item = lines.get_nowait()
            except asyncio.QueueEmpty:
                try:
                    item = await asyncio.wait_for(lines.get(), BATCH_WAIT_S if pending else None)
                except TimeoutError:
                    return False
            if item is _END:
                return True
            budget.give(len(item[1]) + LINE_OVERHEAD_BYTES)
            events = reader.events(*item)
            pending.extend(events)
            size += sum(e.size for e in events)
        return False

    async def _ship(self, request: dict[str, Any], docker_id: str, batch: list[Event]) -> None:
        message = {**request, "events": [{"key": e.key, "timestamp": e.ts_ms, "message": e.message} for e in batch]}
        delay = RETRY_MIN_S
        while True:
            try:
                await self.link.put_container_logs(message)
                return
            except LinkRefused as exc:
                log.warning("logs of container %s: %d events refused and dropped: %s", docker_id[:12], len(batch), exc)
                return
            except LinkError as exc:
                log.info("logs of container %s: control plane unreachable (%s); retrying", docker_id[:12], exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    # -- the cursor file

    def _load(self) -> dict[str, dict[str, int]]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:  # a cursor file that does not read: start over (the server dedups)
            log.warning("log cursors %s cannot be read (%s): reading every container's output again", self.path, exc)
            return {}
        return {str(k): dict(v) for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self.path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, CURSOR_FILE_MODE)
        with os.fdopen(fd, "w") as out:
            json.dump(self.cursors, out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, CURSOR_FILE_MODE)
        os.replace(temporary, self.path)


class _Budget:
    """Bytes read ahead and not yet taken: the reading thread waits while they are over the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._changed = threading.Condition()

    def take(self, size: int, stop: threading.Event) -> None:
        with self._changed:
            while self.used and self.used + size > self.limit and not stop.is_set():
                self._changed.wait(1.0)
            self.used += size

    def give(self, size: int) -> None:
        with self._changed:
            self.used -= size
            self._changed.notify_all()


def _pump(
    follow: LogFollow, loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[Any], budget: _Budget,
    stop: threading.Event,
) -> None:
    """Read lines on this thread and hand them to the follower's loop, within the read-ahead budget."""
    try:
        for item in follow:
            budget.take(len(item[1]) + LINE_OVERHEAD_BYTES, stop)
            if stop.is_set():
                return
            loop.call_soon_threadsafe(lines.put_nowait, item)
    finally:
        try:
            loop.call_soon_threadsafe(lines.put_nowait, _END)
        except RuntimeError:  # the loop is closed: nobody reads any more
            pass


def log_request(cluster: str, instance_arn: str | None, task_arn: str, container: str, docker_id: str | None) -> dict[str, Any]:
    """The fields of a PutContainerLogs call that name the container."""
    return {"cluster": cluster, "containerInstance": instance_arn, "task": task_arn, "containerName": container,
            "runtimeId": docker_id}


def uses_awslogs(definition: dict[str, Any]) -> bool:
    return (definition.get("logConfiguration") or {}).get("logDriver") == awslogs.DRIVER

