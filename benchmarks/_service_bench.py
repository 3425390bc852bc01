"""Shared pieces of the service benchmarks (scale_latency, zero_downtime, container_path).

A ``portside server`` child process on a free loopback port with a temporary state dir, boto3
clients for it, one service of N copies behind an internal load balancer listener, a wait for a
stable service, and a teardown that leaves nothing behind: the service is scaled to 0 and
deleted, the load balancer and target group deleted, the server stopped, then any container
still labelled with this server's owner id is force-removed, and the state dir deleted.

Not a benchmark itself; the scripts import it from their own directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any

import boto3
import docker
from botocore.config import Config

from portside.agent.driver import LABEL_OWNER, LABEL_TASK_ARN
from portside.agent.host import owner_id

SERVER_START_TIMEOUT_S = 30.0
SERVER_STOP_TIMEOUT_S = 20.0
WAIT_STEP_S = 0.1


class BenchError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(what: str, check: Callable[[], bool], timeout: float, step: float = WAIT_STEP_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def percentile(xs: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no data."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = max(0, min(len(s) - 1, round(p / 100.0 * len(s) + 0.5) - 1))
    return s[k]


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    out = [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    return "\n".join(out)


def load_average() -> float:
    return os.getloadavg()[0]


def wait_for_quiet(limit: float, max_wait_s: float) -> float:
    """Wait up to ``max_wait_s`` for the 1-minute load average to drop below ``limit``; return it."""
    deadline = time.monotonic() + max_wait_s
    load = load_average()
    while load >= limit and time.monotonic() < deadline:
        print(f"  waiting for a quieter machine: load {load:.2f} >= {limit:g}", flush=True)
        time.sleep(15)
        load = load_average()
    return load


class PortsideServer:
    """``portside server`` in a child process (own session), optionally pinned with taskset."""

    def __init__(self, *extra_args: str, cpus: str | None = None, stop_timeout: int = 10) -> None:
        self.state_dir = Path(tempfile.mkdtemp(prefix="portside-bench-"))
        self.port = free_port()
        self.extra_args = list(extra_args)
        self.cpus = cpus
        self.stop_timeout = stop_timeout
        self.log_path = self.state_dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.owner = owner_id(self.state_dir)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [
            sys.executable, "-m", "portside.cli.main", "server",
            "--api", f"127.0.0.1:{self.port}", "--state-dir", str(self.state_dir),
            "--task-cleanup-wait", "0", "--stop-timeout", str(self.stop_timeout),
            "--min-health-check-interval", "1", *self.extra_args,
        ]
        if self.cpus is not None:
            argv = ["taskset", "-c", self.cpus, *argv]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"portside server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.endpoint + "/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(WAIT_STEP_S)
        raise BenchError(f"portside server did not answer within {SERVER_START_TIMEOUT_S:g} s:\n{self.log_tail()}")

    def client(self, service: str) -> Any:
        return boto3.client(
            service, endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id="bench", aws_secret_access_key="bench",
            config=Config(retries={"max_attempts": 2, "mode": "standard"}, read_timeout=60, max_pool_connections=10),
        )

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far."""
        if self.proc is None:
            return 0.0
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(SERVER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def remove_leftovers(self, engine: Any) -> int:
        """Force-remove containers this server labelled (after it stopped); return how many."""
        n = 0
        for c in engine.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={self.owner}"}):
            try:
                c.remove(force=True)
                n += 1
            except docker.errors.APIError:
                pass
        return n

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def cleanup_dir(self) -> None:
        shutil.rmtree(self.state_dir, ignore_errors=True)


def web_task_definition(family: str, image: str, stop_timeout: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "family": family,
        "networkMode": "bridge",
        "containerDefinitions": [
            {
                "name": "web",
                "image": image,
                "essential": True,
                "memoryReservation": 32,
                "portMappings": [{"containerPort": 80, "hostPort": 0, "protocol": "tcp"}],
                "stopTimeout": stop_timeout,
                "environment": [{"name": k, "value": v} for k, v in (env or {}).items()],
            }
        ],
    }


class Service:
    """One ECS service of ``count`` copies behind an internal load balancer's HTTP listener."""

    def __init__(self, server: PortsideServer, name: str) -> None:
        self.server = server
        self.name = name
        self.ecs = server.client("ecs")
        self.elb = server.client("elbv2")
        self.lb_arn: str | None = None
        self.tg_arn: str | None = None
        self.created = False
        self.listener_port = free_port()
        self.taskdef_arn: str | None = None

    def create(
        self, image: str, count: int, *, hc_path: str = "/", hc_interval: int = 5, healthy_threshold: int = 2,
        dereg_delay: int = 5, stop_timeout: int = 10, env: dict[str, str] | None = None,
    ) -> None:
        ecs, elb = self.ecs, self.elb
        self.taskdef_arn = ecs.register_task_definition(**web_task_definition(self.name, image, stop_timeout, env))[
            "taskDefinition"]["taskDefinitionArn"]
        self.lb_arn = elb.create_load_balancer(Name=self.name, Scheme="internal", Subnets=["subnet-bench"])[
            "LoadBalancers"][0]["LoadBalancerArn"]
        self.tg_arn = elb.create_target_group(
            Name=self.name, Protocol="HTTP", Port=80, VpcId="vpc-bench", TargetType="instance",
            HealthCheckPath=hc_path, HealthCheckIntervalSeconds=hc_interval, HealthyThresholdCount=healthy_threshold,
        )["TargetGroups"][0]["TargetGroupArn"]
        elb.modify_target_group_attributes(
            TargetGroupArn=self.tg_arn,
            Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": str(dereg_delay)}],
        )
        elb.create_listener(
            LoadBalancerArn=self.lb_arn, Protocol="HTTP", Port=self.listener_port,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": self.tg_arn}],
        )
        ecs.create_service(
            serviceName=self.name, taskDefinition=self.taskdef_arn, desiredCount=count,
            loadBalancers=[{"targetGroupArn": self.tg_arn, "containerName": "web", "containerPort": 80}],
        )
        self.created = True

    # -- observation

    def tasks(self) -> list[dict[str, Any]]:
        arns = self.ecs.list_tasks(serviceName=self.name)["taskArns"]
        out: list[dict[str, Any]] = []
        for i in range(0, len(arns), 100):
            out += self.ecs.describe_tasks(tasks=arns[i : i + 100])["tasks"]
        return out

    def health(self) -> dict[int, str]:
        """host port -> target state (initial, healthy, unhealthy, draining, ...)."""
        assert self.tg_arn
        return {
            int(d["Target"]["Port"]): d["TargetHealth"]["State"]
            for d in self.elb.describe_target_health(TargetGroupArn=self.tg_arn)["TargetHealthDescriptions"]
        }

    def is_stable(self, n: int, taskdef: str | None = None) -> bool:
        tasks = self.tasks()
        running = [t for t in tasks if t["lastStatus"] == "RUNNING" and t["desiredStatus"] == "RUNNING"]
        if len(tasks) != n or len(running) != n:
            return False
        if taskdef is not None and any(t["taskDefinitionArn"] != taskdef for t in tasks):
            return False
        health = self.health()
        return len(health) == n and all(s == "healthy" for s in health.values())

    def wait_stable(self, n: int, timeout: float = 90.0, taskdef: str | None = None) -> None:
        wait_until(f"service {self.name} stable at {n} healthy copies", lambda: self.is_stable(n, taskdef), timeout, 0.2)

    def _all_stopped(self) -> bool:
        if self.ecs.list_tasks(serviceName=self.name)["taskArns"]:
            return False
        return self.stopped_tasks_done()

    def stopped_tasks_done(self) -> bool:
        """Every task asked to stop has stopped (ListTasks lists desiredStatus RUNNING unless asked)."""
        arns = self.ecs.list_tasks(serviceName=self.name, desiredStatus="STOPPED")["taskArns"]
        for i in range(0, len(arns), 100):
            if any(t["lastStatus"] != "STOPPED" for t in self.ecs.describe_tasks(tasks=arns[i : i + 100])["tasks"]):
                return False
        return True

    # -- teardown

    def delete(self, timeout: float = 90.0) -> None:
        steps: list[tuple[str, Callable[[], Any]]] = []
        if self.created:
            steps.append(("scale to 0", lambda: self.ecs.update_service(service=self.name, desiredCount=0)))
            # ListTasks lists desiredStatus RUNNING only (as ECS): wait for every task to be STOPPED.
            steps.append(("wait for every task to stop", lambda: wait_until(
                "every task stopped", self._all_stopped, timeout, 0.3)))
            steps.append(("delete service", lambda: self.ecs.delete_service(service=self.name, force=True)))
        if self.lb_arn:
            steps.append(("delete load balancer", lambda: self.elb.delete_load_balancer(LoadBalancerArn=self.lb_arn)))
        if self.tg_arn:
            steps.append(("delete target group", lambda: self.elb.delete_target_group(TargetGroupArn=self.tg_arn)))
        for what, step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - keep tearing down the rest
                print(f"  teardown: {what} failed: {exc}", file=sys.stderr)


def container_of_task(engine: Any, task_arn: str) -> Any | None:
    found = engine.containers.list(all=True, filters={"label": f"{LABEL_TASK_ARN}={task_arn}"})
    return found[0] if found else None


def host_port(task: dict[str, Any]) -> int | None:
    for container in task.get("containers") or []:
        for binding in container.get("networkBindings") or []:
            if binding.get("containerPort") == 80 and binding.get("hostPort"):
                return int(binding["hostPort"])
    return None


def docker_time(value: str) -> float:
    """Docker's RFC 3339 nanosecond timestamp as epoch seconds (float)."""
    from datetime import datetime

    date, _, frac = value.rstrip("Z").partition(".")
    base = datetime.strptime(date, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return base + (float("0." + frac) if frac else 0.0)
