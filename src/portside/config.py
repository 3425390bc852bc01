"""Settings of one portside server, with every default named and its unit in its name.

`ServerConfig` is built once by the CLI from flags (and `PORTSIDE_*` environment
variables for a few operational knobs) and passed down; nothing reads flags or
the environment anywhere else.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from portside.core.firewall import DEFAULT_FIREWALL_MODE
from portside.core.task_allowances import Allowances

DEFAULT_API_ADDRESS = "127.0.0.1:7070"
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "000000000000"
DEFAULT_PUBLISH_IP = "127.0.0.1"
DEFAULT_STATE_DIR = "/var/lib/portside"
DEFAULT_CLUSTER = "default"
# Memory kept back from the registered MEMORY resource for the OS, dockerd and portside itself.
DEFAULT_RESERVED_MEMORY_MIB = 256
# ECS_CONTAINER_STOP_TIMEOUT: SIGTERM -> SIGKILL when the container sets no stopTimeout.
DEFAULT_STOP_TIMEOUT_S = 30
DEFAULT_IMAGE_PULL_BEHAVIOR = "prefer-cached"
IMAGE_PULL_BEHAVIORS = ("default", "always", "once", "prefer-cached")
DEFAULT_IMAGE_PULL_TIMEOUT_S = 60.0
# A host port freed by a stopped task is not handed out again for this long, so a stale
# load-balancer target can never reach a new container on a recycled port.
DEFAULT_PORT_QUARANTINE_S = 120.0
# Labelled containers that no task owns are removed after this grace period.
DEFAULT_ORPHAN_GRACE_S = 60.0
# Stopped tasks' containers are removed after this delay (ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION is 3 h).
DEFAULT_TASK_CLEANUP_WAIT_S = 3600.0
# Periodic resync of the agent against Docker, a safety net behind Docker's event stream.
DEFAULT_RESYNC_INTERVAL_S = 10.0
# Client connections one listener holds at once; at the limit idle keep-alive connections make
# room first, then new ones are refused. Each holds a file descriptor, and its target connection
# another: keep it under half the open-file limit the server raises itself to.
DEFAULT_MAX_CLIENT_CONNECTIONS = 10_000
AWSVPC_NETWORK_NAME = "portside-awsvpc"
DEFAULT_AGENT_HEARTBEAT_S = 5.0
DEFAULT_AGENT_TTL_S = 15.0
DEFAULT_AGENT_GRACE_S = 60.0
# CloudWatch metric retention (--metrics-retention): AWS keeps 1-minute datapoints 15 days.
DEFAULT_METRICS_RETENTION = "15d"
DEFAULT_METRICS_RETENTION_S = 15 * 24 * 3600.0
MIN_METRICS_RETENTION_S = 3600.0
MAX_METRICS_RETENTION_S = 455 * 24 * 3600.0
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: Days a log group with no retention policy keeps its events (docs/logs.md; AWS keeps them forever).
DEFAULT_LOG_RETENTION_DAYS = 30


@dataclass(frozen=True)
class ServerConfig:
    api_host: str = "127.0.0.1"
    api_port: int = 7070
    state_dir: Path = Path(DEFAULT_STATE_DIR)
    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT_ID
    dynamic_port_range: str | None = None
    publish_ip: str = DEFAULT_PUBLISH_IP
    credentials_file: Path | None = None
    # The key sealing secrets at rest (control/secrets_key.py); None: state_dir/secrets.key, created at first start.
    secrets_key_file: Path | None = None
    # "loopback": callers on loopback may sign with any key; "always": only keys in credentials_file.
    auth_mode: str = "loopback"
    # Names (besides the listen address) a request's Host header may give for the API (DNS rebinding).
    api_hosts: tuple[str, ...] = ()
    # (certificate PEM, private key PEM): serve the API over HTTPS.
    api_tls: tuple[Path, Path] | None = None
    reserved_memory_mib: int = DEFAULT_RESERVED_MEMORY_MIB
    reserved_ports_tcp: tuple[int, ...] = (22, 2375, 2376, 51678, 51679)
    reserved_ports_udp: tuple[int, ...] = ()
    stop_timeout_s: int = DEFAULT_STOP_TIMEOUT_S
    image_pull_behavior: str = DEFAULT_IMAGE_PULL_BEHAVIOR
    image_pull_timeout_s: float = DEFAULT_IMAGE_PULL_TIMEOUT_S
    port_quarantine_s: float = DEFAULT_PORT_QUARANTINE_S
    orphan_grace_s: float = DEFAULT_ORPHAN_GRACE_S
    task_cleanup_wait_s: float = DEFAULT_TASK_CLEANUP_WAIT_S
    resync_interval_s: float = DEFAULT_RESYNC_INTERVAL_S
    # Agents: how often a heartbeat is sent, and how long the control plane waits for one before it
    # calls the agent disconnected (ECS: agentConnected false) and places nothing new there.
    agent_heartbeat_s: float = DEFAULT_AGENT_HEARTBEAT_S
    agent_ttl_s: float = DEFAULT_AGENT_TTL_S
    # Log groups with no retention policy keep their events this many days (0: forever, as on AWS).
    log_retention_days: int = DEFAULT_LOG_RETENTION_DAYS
    # After the TTL, how long more until the instance counts as lost: its service tasks are marked
    # STOPPED and replaced elsewhere (core/liveness.py).
    agent_grace_s: float = DEFAULT_AGENT_GRACE_S
    docker_url: str | None = None
    # Where the state is: None is state_dir/portside.db (SQLite); "postgresql://..." is a database
    # several replicas share (docs/replicas.md); "sqlite:PATH" a SQLite file elsewhere.
    store: str | None = None
    # The leader's lease (control/leadership.py): another replica takes over within about this long.
    leader_lease_s: float = 6.0
    # This host's ec2InstanceId; None: derived from /etc/machine-id.
    instance_id: str | None = None
    # Beyond ALB: retry a failed request once on another target when that is safe (docs/load-balancer.md).
    proxy_retries: bool = True
    max_client_connections: int = DEFAULT_MAX_CLIENT_CONNECTIONS
    # The proxy reaches a copy on this host at its bridge address and container port instead of
    # 127.0.0.1:host port, so requests skip the DNAT (or docker-proxy) behind published ports.
    direct_routing: bool = True
    # The metric period of reactive scaling: one datapoint per metric per period (AWS: 60 s).
    scaling_period_s: float = 60.0
    # Tests only: a file in the state directory holding seconds added to the clock scheduled actions
    # run by ($PORTSIDE_TEST_SCHEDULE_CLOCK_FILE; docs/scheduled-scaling.md). None: the real clock.
    schedule_clock_file: Path | None = None
    # How long CloudWatch metric datapoints are kept (AWS keeps 1-minute data 15 days).
    metrics_retention_s: float = DEFAULT_METRICS_RETENTION_S
    # The host firewall portside keeps (core/firewall.py): "guard", "managed" or "off".
    firewall_mode: str = DEFAULT_FIREWALL_MODE
    # Addresses (CIDRs) of load balancers on other machines that may reach copies directly.
    lb_sources: tuple[str, ...] = ()
    # What tasks may ask of the host (privileged, host namespaces, devices, capabilities, host
    # paths); everything refused unless a --allow-* flag says otherwise (core/task_allowances.py).
    allowances: Allowances = Allowances()
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def api_is_loopback(self) -> bool:
        return is_loopback(self.api_host)

    @property
    def target_ip(self) -> str:
        """The address the load balancer uses to reach containers published on this host."""
        return "127.0.0.1" if self.publish_ip in ("0.0.0.0", "::") else self.publish_ip


def parse_retention(text: str, flag: str = "--metrics-retention") -> float:
    """Seconds of a retention written ``<number><s|m|h|d>`` (``15d``, ``36h``), between an hour and 455 days."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if match is None:
        raise ValueError(f"{flag} {text!r}: must be a number followed by s, m, h or d (e.g. 15d, 36h)")
    seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if not MIN_METRICS_RETENTION_S <= seconds <= MAX_METRICS_RETENTION_S:
        raise ValueError(f"{flag} {text}: must be at least 1h and at most 455d (CloudWatch keeps data 15 months)")
    return seconds


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_host_port(text: str, flag: str) -> tuple[str, int]:
    """Parse HOST:PORT (IPv6 as [::1]:PORT); ValueError names the flag and the rule."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{flag} must be HOST:PORT with a port from 1 to 65535, got {text!r}")
    return host.strip("[]"), int(port)


STORE_RULE = "postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE, or sqlite:PATH"


def check_store_url(text: str) -> str:
    """``--store``'s value as given; ValueError naming the flag and the rule when it is neither form."""
    from urllib.parse import urlsplit

    if text.startswith("sqlite:") and len(text) > len("sqlite:"):
        return text
    if text.startswith(("postgresql://", "postgres://")):
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            raise ValueError(f"--store: {exc}; must be {STORE_RULE}") from None
        if parts.path.strip("/") and "/" not in parts.path.strip("/"):
            return text
    shown = text if "@" not in text else text.split("://", 1)[0] + "://...@" + text.rsplit("@", 1)[1]
    raise ValueError(f"--store {shown}: must be {STORE_RULE}")
