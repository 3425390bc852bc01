"""A real portside API endpoint in this process, over a real SQLite store, for boto3 ``ecs`` clients.

The aiohttp app listens on 127.0.0.1:<free port> in a background event-loop thread; a container
instance is registered through the agent protocol's operation with no agent behind it, and no
controller runs (services keep their desired state only; RunTask stores tasks for an agent that
never comes). Every request goes the whole way: SigV4, botocore-model validation, the action table.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from portside.api.server import ApiServer
from portside.config import ServerConfig
from portside.control.plane import ControlPlane
from portside.control.store import Store
from tests.support.instances import Clock, register_instance

REGION = "us-east-1"
ACCOUNT = "000000000000"


class EcsEndpoint:
    def __init__(self, state_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.clock = Clock()
        cfg = ServerConfig(state_dir=state_dir, api_port=0, extra={"cluster": "default"})
        self.store = Store(state_dir / "portside.db")
        self.plane = ControlPlane(
            cfg, self.store, f"arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/default/x", clock=self.clock
        )
        self.instance = self.call(lambda: register_instance(self.plane))
        self.api = ApiServer(self.plane, None)
        self.run(self.api.start("127.0.0.1", 0))
        assert self.api._runner is not None
        self.endpoint = f"http://127.0.0.1:{self.api._runner.addresses[0][1]}"
        self.ecs = self.client()

    def client(self, region: str = REGION, parameter_validation: bool = True) -> Any:
        return boto3.client(
            "ecs",
            endpoint_url=self.endpoint,
            region_name=region,
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(retries={"max_attempts": 1}, parameter_validation=parameter_validation),
        )

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop thread (where the store lives)."""

        async def wrapper() -> Any:
            return fn()

        return self.run(wrapper())

    def close(self) -> None:
        self.run(self.api.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.store.close()

    # -- fixtures through the ECS API

    def task_definition(self, family: str = "web", **extra: Any) -> dict[str, Any]:
        return dict(
            self.ecs.register_task_definition(
                family=family,
                containerDefinitions=[{"name": "app", "image": "busybox", "memory": 64, "essential": True}],
                **extra,
            )["taskDefinition"]
        )

    def service(self, name: str = "web", desired: int = 0, **extra: Any) -> dict[str, Any]:
        self.task_definition(name)
        return dict(
            self.ecs.create_service(
                cluster="default", serviceName=name, taskDefinition=name, desiredCount=desired, **extra
            )["service"]
        )
