"""``portside lb``: a load-balancer node on any host, serving every listener of the control plane.

Theory of operation
-------------------
The node runs a ``ProxyRuntime`` of its own, without a store (health states live in memory: the
node probes every target itself, as each ALB node does), and long-polls the control plane's
routing snapshot over HTTP with SigV4 (``PortsideAgent.WatchRoutes``, ``agent/http_link.py``,
``control/routes_snapshot.py``). Each new revision is applied in one step of the event loop, so
no request sees half of it:

1. read it (``core/lb/snapshot.py``; the certificates' PEMs are written to files of the node's
   own first), bind it where this node serves (``core/lb/node.for_node``) and leave out targets
   that would forward into the API or the node's own listeners (``core/lb/node.without_loops``);
2. close the listeners that are gone or moved, swap the target groups and rules in
   (``runtime.apply``), bind the new or moved listeners (``core/lb/node.listener_changes``).

The node also reports what its listeners served to the control plane every ``--metrics-period``
(lb_node_metrics.py), so CloudWatch's AWS/ApplicationELB metrics count every node's traffic.

A snapshot that does not read, or a listener that cannot bind, is logged; the node keeps serving
what it served, and binds the missing listener again at every later answer. When the control
plane cannot be reached, the node keeps serving the last good snapshot and retries with back-off
(``RETRY_FIRST_S`` doubling to ``RETRY_MAX_S``), logging the outage once and the recovery once.
The last good snapshot is also kept in ``--state-dir`` (``routes.json``, mode 0600: it holds
private keys), so a node that restarts while the control plane is away serves at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portside import process
from portside.agent.http_link import HttpLink, profile_credentials
from portside.agent.link import LinkError
from portside.config import DEFAULT_MAX_CLIENT_CONNECTIONS
from portside.core.lb import node, snapshot
from portside.core.lb.model import Certificate, LbConfig, Listener
from portside.core.lb.runtime import ListenerBindError
from portside.errors import PortsideError
from portside.lb_node_metrics import DEFAULT_PERIOD_S as DEFAULT_METRICS_PERIOD_S
from portside.lb_node_metrics import NodeMetricsReporter
from portside.local_address import is_local_address
from portside.proxy.runtime import ProxyRuntime

log = logging.getLogger("portside.lb")

WAIT_S = 20  # how long one WatchRoutes may wait for a change (the server holds at most 25 s)
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0
SNAPSHOT_FILE = "routes.json"
CERTIFICATES_DIR = "certificates"


@dataclass(frozen=True)
class LbNodeOptions:
    servers: list[str]
    credentials_file: str
    profile: str
    region: str
    state_dir: Path
    bind_address: str | None = None  # None: where the server binds (internal 127.0.0.1, else 0.0.0.0)
    proxy_retries: bool = True
    max_client_connections: int = DEFAULT_MAX_CLIENT_CONNECTIONS
    # The address this node reaches copies from; told to the control plane, which has agents admit it.
    source_address: str | None = None
    # Seconds per CloudWatch metrics report (lb_node_metrics.py).
    metrics_period_s: float = DEFAULT_METRICS_PERIOD_S


class LbNode:
    """The node's state: the runtime it feeds, the revision it serves, where it keeps its files."""

    def __init__(self, options: LbNodeOptions, link: HttpLink, runtime: ProxyRuntime) -> None:
        self.options = options
        self.link = link
        self.runtime = runtime
        self.apis = api_endpoints(options.servers)
        self.serving: int | None = None  # revision of the snapshot applied
        self.seen: int | None = None  # revision of the last snapshot received (applied or refused)
        self._outage: str | None = None

    # -- the watch

    async def watch(self) -> None:
        """Follow the control plane's snapshots until cancelled."""
        delay = RETRY_FIRST_S
        while True:
            # After a failure, ask without waiting: the node learns at once that the control plane is back.
            request: dict[str, Any] = {"waitSeconds": 0 if self._outage is not None else WAIT_S}
            if self.seen is not None:
                request["sinceRevision"] = self.seen
            if self.options.source_address:
                request["address"] = self.options.source_address
            try:
                document = await self.link.watch_routes(request)
            except LinkError as exc:
                self._unreachable(str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = RETRY_FIRST_S
            if self._outage is not None:
                log.info("control plane reachable again; snapshot revision %s", document.get("revision"))
                self._outage = None
            if document.get("revision") != self.seen:
                if not self.apply(document):
                    await asyncio.sleep(
                        RETRY_MAX_S
                    )  # a snapshot without a revision must not make a busy loop
            else:
                self.bind_missing()

    def _unreachable(self, error: str) -> None:
        if self._outage is None:
            log.warning(
                "control plane unreachable (%s): serving the last good snapshot (revision %s); "
                "retrying every %g s at most",
                error,
                self.serving,
                RETRY_MAX_S,
            )
        elif error != self._outage:
            log.debug("control plane still unreachable: %s", error)
        self._outage = error

    # -- applying one snapshot

    def apply(self, document: dict[str, Any], save: bool = True) -> bool:
        """Serve ``document`` (a WatchRoutes answer); False, logged, when it does not read."""
        revision = document.get("revision")
        self.seen = revision if isinstance(revision, int) else None
        try:
            if not isinstance(revision, int) or isinstance(revision, bool):
                raise snapshot.SnapshotError("snapshot.revision: expected int")
            certificates = self._write_certificates(document.get("certificates"))
            config = snapshot.config_from_json(document, certificates)
        except (snapshot.SnapshotError, OSError) as exc:
            log.error(
                "snapshot revision %s not applied, still serving revision %s: %s", revision, self.serving, exc
            )
            return False
        config = node.for_node(config, self.options.bind_address)
        config, problems = node.without_loops(
            config, [a for a, _ in self.apis], self._local_addresses(config)
        )
        for problem in problems:
            log.warning(problem)
        try:
            self._switch(config)
        except Exception:  # e.g. a certificate that does not load into a bound listener: keep watching
            log.exception(
                "snapshot revision %s applied only in part (still serving what did not change)", revision
            )
            return False
        self.serving = revision
        log.info(
            "serving snapshot revision %d: %d listener(s), %d target group(s)",
            revision,
            len(config.listeners),
            len(config.target_groups),
        )
        if save:
            self._save(document)
        self._forget_certificates(certificates)
        return True

    def _switch(self, config: LbConfig) -> None:
        """Close, swap, bind: no await in between, so no request sees half a snapshot."""
        bound = {arn: listener.config for arn, listener in self.runtime.listeners.items()}
        changes = node.listener_changes(bound, config.listeners)
        for arn in changes.close:
            self.runtime.close_listener(arn)
        self.runtime.apply(config)
        for listener in changes.bind:
            self._bind(listener)

    def bind_missing(self) -> None:
        for listener in self.runtime.config.listeners:
            if listener.arn not in self.runtime.listeners:
                self._bind(listener)

    def _bind(self, listener: Listener) -> None:
        try:
            self.runtime.bind_listener(listener)
        except ListenerBindError as exc:
            log.error(
                "listener %s (%s:%d) not served on this node yet: %s",
                listener.arn,
                listener.bind_host,
                listener.port,
                exc.message,
            )
        else:
            log.info(
                "listener %s on %s:%d (%s)",
                listener.arn,
                listener.bind_host,
                listener.port,
                listener.protocol,
            )

    def _local_addresses(self, config: LbConfig) -> set[str]:
        addresses = {t.address for group in config.target_groups.values() for t in group.targets}
        addresses |= {host for (host, _port), _url in self.apis}
        return {a for a in addresses if is_local_address(a)}

    # -- files in --state-dir

    def _write_certificates(self, pems: Any) -> dict[str, Certificate]:
        """PEM pairs -> files named by their digest (a renewed certificate gets new files, so
        listeners reload it); SnapshotError when the map is not ARN -> {certificate, privateKey}."""
        if pems is None:
            return {}
        if not isinstance(pems, dict):
            raise snapshot.SnapshotError("snapshot.certificates: expected an object")
        folder = self.options.state_dir / CERTIFICATES_DIR
        folder.mkdir(mode=0o700, exist_ok=True)
        out = {}
        for arn, pair in pems.items():
            if not isinstance(pair, dict) or not all(
                isinstance(pair.get(k), str) for k in ("certificate", "privateKey")
            ):
                raise snapshot.SnapshotError(
                    f"snapshot.certificates[{arn!r}]: expected certificate and privateKey text"
                )
            pem = pair["certificate"] + "\0" + pair["privateKey"]
            digest = hashlib.sha256(pem.encode()).hexdigest()[:32]
            cert_path, key_path = folder / f"{digest}.crt", folder / f"{digest}.key"
            for path, text in ((cert_path, pair["certificate"]), (key_path, pair["privateKey"])):
                if not path.exists():
                    _write_private(path, text)
            out[arn] = Certificate(arn, str(cert_path), str(key_path))
        return out

    def _forget_certificates(self, kept: dict[str, Certificate]) -> None:
        names = {Path(p).name for c in kept.values() for p in (c.cert_path, c.key_path)}
        folder = self.options.state_dir / CERTIFICATES_DIR
        for path in folder.glob("*") if folder.is_dir() else ():
            if path.name not in names:
                path.unlink(missing_ok=True)

    def _save(self, document: dict[str, Any]) -> None:
        try:
            _write_private(self.options.state_dir / SNAPSHOT_FILE, json.dumps(document))
        except OSError as exc:
            log.warning("cannot keep the snapshot in %s: %s", self.options.state_dir, exc)

    def restore(self) -> None:
        """Serve the snapshot a previous run kept, if any, until the control plane answers."""
        path = self.options.state_dir / SNAPSHOT_FILE
        try:
            document = json.loads(path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("the kept snapshot %s cannot be read, starting empty: %s", path, exc)
            return
        if isinstance(document, dict) and self.apply(document, save=False):
            log.info("serving the kept snapshot (revision %s) until the control plane answers", self.serving)


def api_endpoints(servers: list[str]) -> list[tuple[tuple[str, int], str]]:
    """((address, port), url) of every API URL, each address a name resolves to included."""
    out = []
    for url in servers:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname or ""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addresses = sorted({info[4][0] for info in infos} | {host})
        except OSError:
            addresses = [host]
        out.extend(((address, port), url) for address in addresses)
    return out


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by the owner only."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(temporary, path)


async def serve(options: LbNodeOptions) -> None:
    """Run the node until SIGINT or SIGTERM."""
    stop = process.stop_on_signals()
    try:
        credentials = profile_credentials(options.credentials_file, options.profile)
    except ValueError as exc:
        raise PortsideError(str(exc)) from exc
    options.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    options.state_dir.chmod(0o700)
    link = HttpLink(options.servers, credentials, options.region)
    runtime = ProxyRuntime(
        None, retries=options.proxy_retries, max_client_connections=options.max_client_connections
    )
    lb = LbNode(options, link, runtime)
    watching: asyncio.Task[None] | None = None
    reporting: asyncio.Task[None] | None = None
    try:
        lb.restore()
        watching = asyncio.ensure_future(lb.watch())
        reporting = asyncio.ensure_future(NodeMetricsReporter(link, runtime, options.metrics_period_s).run())
        log.info("load-balancer node running; control plane %s", ", ".join(options.servers))
        await stop.wait()
    finally:
        for task in (watching, reporting):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await runtime.close()
        await link.close()


def run(options: LbNodeOptions) -> None:
    process.run(serve(options))
