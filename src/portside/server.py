"""Wire the shells into one process: store, control plane, API, load balancer, and this host's agent."""

from __future__ import annotations

import asyncio
import gc
import logging
import ssl
from collections.abc import Callable
from typing import Protocol
from pathlib import Path

import portside.proxy
from portside import open_file_limit, process
from portside.agent import host
from portside.agent.agent import HostAgent
from portside.agent.docker_driver import DockerDriver
from portside.agent.engine import USERLAND_PROXY_WARNING, userland_proxy_enabled
from portside.agent.firewall import FirewallError, FirewallKeeper, HostFirewall, host_keeper
from portside.agent.ports import choose_range
from portside.api import sigv4
from portside.api.metrics import render_metrics
from portside.api.server import ApiServer
from portside.config import ServerConfig
from portside.agent.registration import registration
from portside.agent.state import AgentState
from portside.control.change_feed import ChangeFeed
from portside.control.controllers.alarms import AlarmController
from portside.control.controllers.liveness import LivenessController
from portside.control.controllers.log_retention import LogRetention
from portside.control.leadership import Leadership
from portside.control.local_link import LocalLink
from portside.control.doctor import HostDoctor
from portside.control.elbv2 import config as elb_config
from portside.control.elbv2 import targets as elb_targets
from portside.control.plane import ControlPlane
from portside.control.secrets_key import CHECK_META_KEY, DEFAULT_KEY_FILE, SecretsKey
from portside.control.controllers.alb_metrics import AlbMetricsRecorder, MetricsRetention
from portside.control.controllers.scaling import Scaler
from portside.control.controllers.scheduled_scaling import ScheduledScaling, round_clock
from portside.control.controllers.task_counts import TaskCountRecorder
from portside.control.controllers.services import ServiceController
from portside.control.store import Store
from portside.control.store.database import StoreUnavailable
from portside.core import arns
from portside.core.firewall import chain_name
from portside.errors import PortsideError
from portside.proxy.runtime import ProxyRuntime

log = logging.getLogger("portside.server")



class Controller(Protocol):
    """A loop that runs while this replica leads (control/controllers/)."""

    def start(self) -> None: ...

    async def close(self) -> None: ...

class Server:
    """One portside server; ``start`` brings it up, ``close`` takes it down (containers keep running)."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.store: Store | None = None
        self.driver: DockerDriver | None = None
        self.api: ApiServer | None = None
        self.plane: ControlPlane | None = None
        self.lb: ProxyRuntime | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.scaler: Scaler | None = None  # while this replica leads (its figures are in /metrics)
        # The controllers that run while this replica leads, in start order (closed in reverse).
        self._controllers: list[Controller] = []
        self._schedule_clock: Callable[[], float] | None = None
        self.alb_metrics: AlbMetricsRecorder | None = None  # every replica records its own listeners
        self.firewall: FirewallKeeper | None = None
        self.doctor: HostDoctor | None = None
        self.agent: HostAgent | None = None
        self.leadership: Leadership | None = None
        self.feed: ChangeFeed | None = None

    async def start(self) -> None:
        config = self.config
        credentials = None
        if config.credentials_file is not None:
            credentials = sigv4.load_credentials(str(config.credentials_file))
        elif not config.api_is_loopback:
            raise PortsideError(
                f"--api {config.api_host}:{config.api_port} is reachable from other hosts: "
                "give --credentials FILE so requests from them must be signed"
            )
        elif config.auth_mode == "always":
            raise PortsideError("--auth always accepts only keys in --credentials: give --credentials FILE")
        tls = _api_tls_context(config.api_tls) if config.api_tls is not None else None
        self._schedule_clock = round_clock(config)  # refuses a test clock outside a test's setting
        self._raise_open_file_limit()
        port_range, warning = choose_range(config.dynamic_port_range, host.read_kernel_port_range())
        if warning:
            log.warning(warning)
        log.info("dynamic host port range %d-%d (from %s)", port_range.start, port_range.end, port_range.source)
        if portside.proxy.COMPILED:
            log.info("proxy hot path: compiled by mypyc")
        else:
            log.info("proxy hot path: pure Python (%s)", portside.proxy.FALLBACK_REASON)
        prepare_state_dir(Path(config.state_dir))
        try:
            state = AgentState.load(Path(config.state_dir))  # before Docker, so a bad file stops nothing
        except ValueError as exc:
            raise PortsideError(str(exc)) from exc
        secrets_key = load_secrets_key(config)  # before the store: a bad key file changes nothing
        self.store = Store(config.store or Path(config.state_dir) / "portside.db")
        log.info("store: %s (schema version %d, revision %d)", self.store.description,
                 self.store.schema_version(), self.store.revision())
        self.driver = DockerDriver(host.owner_id(config.state_dir), config.docker_url)
        if userland_proxy_enabled():
            log.warning(USERLAND_PROXY_WARNING)
        cluster = config.extra.get("cluster", "default")
        self.plane = ControlPlane(config, self.store, api_address=(config.api_host, config.api_port))
        self.plane.secrets_key = check_secrets_key(self.store, secrets_key)
        if state.instance_arn is None:  # the ARN this host always had, so a state directory keeps its tasks
            machine = config.instance_id or host.read_machine_id()
            instance_id = arns.stable_hex_id("container-instance", machine, config.region, cluster)
            state.instance_arn = arns.container_instance_arn(config.region, config.account_id, cluster, instance_id)
        self.plane.instance_arn = state.instance_arn
        registered = registration(
            cluster=cluster, region=config.region, instance_id=config.instance_id or host.host_instance_id(),
            address=config.target_ip,
            zone=None, docker_version=self.driver.engine_version, cpu_units=host.cpu_units(),
            memory_mib=max(host.memory_mib() - config.reserved_memory_mib, 0),
            reserved_tcp=[*config.reserved_ports_tcp, config.api_port], reserved_udp=list(config.reserved_ports_udp),
            attributes={}, awsvpc=True,
        )
        agent = self.agent = HostAgent(
            config, LocalLink(self.plane, config.region), self.driver, port_range, state, registered
        )
        if config.firewall_mode != "off":
            self.firewall = host_keeper(config, self.driver, port_range, agent.live_tasks)
            await self.firewall.install()  # before any copy starts: fail closed, or do not start
            agent.on_change.append(self.firewall.changed)
            agent.on_lb_sources.append(self.firewall.admit_sources)
            agent.before_start = self.firewall.ensure_in_step
        else:
            await asyncio.to_thread(self._remove_earlier_chain, chain_name(self.driver.owner))
        self.doctor = HostDoctor(self.plane, self.driver, self.firewall, agent)
        self.plane.preflight = self.doctor.service_changed
        self.plane.doctor_report = self.doctor.report
        await agent.start()
        self.plane.instance_arn = agent.instance_arn or self.plane.instance_arn
        if self.firewall is not None:
            self.firewall.changed()
            self.firewall.start()
        self.lb = ProxyRuntime(
            self.store, retries=config.proxy_retries,
            max_client_connections=config.max_client_connections,
        )
        elb_config.restore(self.plane, self.lb)  # bind stored listeners, resume target health, probe at once
        if self.plane.replicated:
            self.feed = ChangeFeed(self.plane)
            self.feed.start()
        self.leadership = Leadership(
            self.store, on_elected=self._start_controllers, on_deposed=self._stop_controllers,
            ttl_s=config.leader_lease_s, replica=self.plane.instance_arn,
        )
        await self.leadership.start()
        leadership = self.leadership
        self.alb_metrics = AlbMetricsRecorder(self.plane, config.scaling_period_s, lambda: leadership.is_leader)
        self.alb_metrics.start()
        self.api = ApiServer(
            self.plane, credentials,
            metrics=lambda: render_metrics(self.plane, self.scaler, self.firewall, self.leadership),
            auth=config.auth_mode, api_hosts=config.api_hosts, tls=tls, status=self.status,
        )
        await self.api.start(config.api_host, config.api_port)
        log.info("portside API listening on %s://%s:%d", "https" if tls else "http", config.api_host, config.api_port)
        # What start-up built (modules, AWS service models, ~70k objects) lives as long as the process:
        # move it out of the collector's reach, or every full collection walks it (18 ms here).
        gc.freeze()

    async def _start_controllers(self) -> None:
        """This replica leads: run the controllers (inside the lease's fence, see control/leadership.py)."""
        assert self.plane is not None
        self._sweeper = asyncio.ensure_future(elb_targets.run_sweeper(self.plane))
        plane, period = self.plane, self.config.scaling_period_s
        assert self._schedule_clock is not None
        self.scaler = Scaler(plane, period)
        self._controllers = [
            ServiceController(plane),
            AlarmController(plane, period),
            self.scaler,
            ScheduledScaling(plane, self._schedule_clock),
            MetricsRetention(plane, self.config.metrics_retention_s),
            LogRetention(plane),
            TaskCountRecorder(plane),
            LivenessController(plane),  # closed first: it must not take hosts for lost while others stop
        ]
        for controller in self._controllers:
            controller.start()

    async def _stop_controllers(self) -> None:
        for controller in reversed(self._controllers):
            await controller.close()
        self._controllers = []
        self.scaler = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        self._sweeper = None

    def status(self) -> tuple[dict[str, object], bool]:
        """/healthz's document, and whether the store answers (503 when not)."""
        assert self.store is not None and self.leadership is not None
        document: dict[str, object] = {
            "store": self.store.dialect, "leader": self.leadership.is_leader, "epoch": self.leadership.epoch,
            "holder": self.leadership.holder,
        }
        try:
            document["revision"] = self.store.revision()
        except StoreUnavailable:
            document["storeAvailable"] = False
            return document, False
        document["storeAvailable"] = True
        return document, True

    async def close(self) -> None:
        # Controllers first: once the API stops answering, agents cannot call, and liveness must not
        # take that silence for lost hosts while the last requests finish. Giving the lease up lets
        # another replica take over at once.
        if self.leadership is not None:
            await self.leadership.close()
        else:
            await self._stop_controllers()
        if self.feed is not None:
            await self.feed.close()
        if self.alb_metrics is not None:
            await self.alb_metrics.close()
        if self.api is not None:
            await self.api.close()
        if self.doctor is not None:
            await self.doctor.close()
        if self.lb is not None:
            await self.lb.close()
        if self.agent is not None:
            await self.agent.close()
        if self.firewall is not None:
            await self._close_firewall()
        if self.driver is not None:
            self.driver.close()
        if self.store is not None:
            self.store.close()


    @staticmethod
    def _raise_open_file_limit() -> None:
        """Every proxied connection holds two descriptors: take all the open files the hard limit allows."""
        limit = open_file_limit.raise_to_hard()
        soft, hard = open_file_limit.text(limit.soft), open_file_limit.text(limit.hard)
        if limit.error:
            log.warning("open files: could not raise the soft limit %s to the hard limit %s: %s", soft, hard, limit.error)
        elif limit.raised_from is not None:
            log.info("open files: soft limit raised from %s to the hard limit %s", open_file_limit.text(limit.raised_from), hard)
        else:
            log.info("open files: soft limit %s, hard limit %s", soft, hard)

    @staticmethod
    def _remove_earlier_chain(chain: str) -> None:
        """--firewall off: rules an earlier run of this server left must not keep dropping traffic."""
        try:
            if HostFirewall(chain).remove():
                log.warning("firewall: removed chain %s left by an earlier run (--firewall off)", chain)
        except FirewallError as exc:
            log.info("firewall: %s", exc.message)

    async def _close_firewall(self) -> None:
        """Also after a failed start: the keeper asks the store, so copies still running stay guarded."""
        assert self.firewall is not None
        try:
            await self.firewall.close()
        except FirewallError as exc:
            log.error("firewall: %s", exc.message)


STATE_DIR_MODE = 0o700


def prepare_state_dir(path: Path) -> None:
    """The state directory, owner-only whatever the umask: it holds the database and private keys.

    An existing directory others can read is tightened (and said so), not trusted as it is.
    """
    path.mkdir(mode=STATE_DIR_MODE, parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777
    if mode != STATE_DIR_MODE:
        log.warning("state directory %s had mode %o; setting it to %o", path, mode, STATE_DIR_MODE)
        path.chmod(STATE_DIR_MODE)


def load_secrets_key(config: ServerConfig) -> SecretsKey:
    """The key sealing secrets: --secrets-key-file, or the state directory's (created at first start)."""
    if config.secrets_key_file is not None:
        return SecretsKey.load(Path(config.secrets_key_file))
    return SecretsKey.load_or_create(Path(config.state_dir) / DEFAULT_KEY_FILE)


def check_secrets_key(store: Store, key: SecretsKey) -> SecretsKey:
    """``key``, once it is the store's: the store keeps the fingerprint of the key its secrets are
    sealed with (the first key it met), and a replica with another key is refused here, naming its file."""
    with store.transaction():
        stored = store.get_meta(CHECK_META_KEY)
        key.check_against(stored)
        if stored is None:
            store.put_meta(CHECK_META_KEY, key.fingerprint())
    return key


def _api_tls_context(files: tuple[Path, Path]) -> ssl.SSLContext:
    """The API's server-side TLS context; PortsideError naming --api-tls when the pair does not load."""
    cert, key = files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise PortsideError(f"--api-tls {cert} {key}: cannot load the certificate and key: {exc}") from exc
    return context


def run(config: ServerConfig) -> None:
    """Run until SIGINT or SIGTERM, on uvloop where it is installed."""
    process.run(serve(config))


async def serve(config: ServerConfig) -> None:
    """Run until SIGINT or SIGTERM."""
    server = Server(config)
    stop = process.stop_on_signals()
    try:
        await server.start()
        await stop.wait()
    finally:
        await server.close()
