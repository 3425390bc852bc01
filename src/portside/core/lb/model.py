"""The load balancer's configuration as the data plane sees it: immutable values.

The ELBv2 API (``control/elbv2``) stores AWS-shaped records and builds one
``LbConfig`` from them after every change; the proxy (``proxy/``) compiles an
``LbConfig`` into its routing snapshot and swaps it in atomically. Nothing here
does I/O. Field names follow ELBv2, units are in the names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# AWS defaults (spec alb.md §1.2, §1.3, §2.5)
DEFAULT_HEALTH_CHECK_PATH = "/"
DEFAULT_HEALTH_CHECK_INTERVAL_S = 30
DEFAULT_HEALTH_CHECK_TIMEOUT_S = 5
DEFAULT_HEALTHY_THRESHOLD = 5
DEFAULT_UNHEALTHY_THRESHOLD = 2
DEFAULT_MATCHER = "200"
DEFAULT_DEREGISTRATION_DELAY_S = 300
DEFAULT_STICKINESS_DURATION_S = 86400
DEFAULT_IDLE_TIMEOUT_S = 60
# What CreateListener uses when an HTTPS listener names no SslPolicy (the API's default; see core/lb/ssl_policies.py)
DEFAULT_SSL_POLICY = "ELBSecurityPolicy-2016-08"


@dataclass(frozen=True)
class HealthCheck:
    protocol: str = "HTTP"  # HTTP | HTTPS
    port: str = "traffic-port"  # "traffic-port" or a port number as text
    path: str = DEFAULT_HEALTH_CHECK_PATH
    interval_s: int = DEFAULT_HEALTH_CHECK_INTERVAL_S
    timeout_s: int = DEFAULT_HEALTH_CHECK_TIMEOUT_S
    healthy_threshold: int = DEFAULT_HEALTHY_THRESHOLD
    unhealthy_threshold: int = DEFAULT_UNHEALTHY_THRESHOLD
    matcher: str = DEFAULT_MATCHER  # "200", "200,202", "200-299"
    enabled: bool = True


@dataclass(frozen=True)
class TargetGroupAttributes:
    deregistration_delay_s: int = DEFAULT_DEREGISTRATION_DELAY_S
    slow_start_s: int = 0
    algorithm: str = "round_robin"  # round_robin | least_outstanding_requests
    stickiness_enabled: bool = False
    stickiness_type: str = "lb_cookie"
    stickiness_duration_s: int = DEFAULT_STICKINESS_DURATION_S


@dataclass(frozen=True)
class Target:
    """A registered target: the identity ELBv2 shows (id, port) and where the proxy connects."""

    id: str
    port: int
    address: str  # resolved: an instance id becomes that host's address; an ip target is itself
    # Where the proxy actually connects when it differs from (address, port): a copy on this host is
    # reached at its bridge address and container port, skipping the host port's DNAT.
    connect_address: str | None = None
    connect_port: int | None = None
    draining: bool = False
    # wall-clock time the deregistration delay ends (only when draining)
    drain_deadline: float | None = None


@dataclass(frozen=True)
class TargetGroup:
    arn: str
    name: str
    protocol: str  # HTTP | HTTPS
    port: int
    target_type: str  # instance | ip
    health_check: HealthCheck
    attributes: TargetGroupAttributes
    targets: tuple[Target, ...] = ()


@dataclass(frozen=True)
class WeightedTargetGroup:
    arn: str
    weight: int = 1


@dataclass(frozen=True)
class Action:
    type: str  # forward | redirect | fixed-response
    order: int = 1
    target_groups: tuple[WeightedTargetGroup, ...] = ()
    stickiness_enabled: bool = False  # group-level stickiness across weighted target groups
    stickiness_duration_s: int = 0
    # redirect
    redirect_protocol: str = "#{protocol}"
    redirect_host: str = "#{host}"
    redirect_port: str = "#{port}"
    redirect_path: str = "/#{path}"
    redirect_query: str = "#{query}"
    redirect_status: int = 301
    # fixed-response
    fixed_status: int = 200
    fixed_content_type: str | None = None
    fixed_body: str = ""


@dataclass(frozen=True)
class Condition:
    field: str  # host-header | path-pattern | http-header | http-request-method | query-string | source-ip
    values: tuple[str, ...] = ()
    header_name: str | None = None  # http-header only
    query_pairs: tuple[tuple[str | None, str], ...] = ()  # query-string only: (key or None, value)


@dataclass(frozen=True)
class Rule:
    arn: str
    priority: int  # the default rule has priority 50001, after every numbered one
    conditions: tuple[Condition, ...]
    actions: tuple[Action, ...]
    is_default: bool = False


DEFAULT_RULE_PRIORITY = 50001


@dataclass(frozen=True)
class Certificate:
    arn: str
    cert_path: str
    key_path: str


@dataclass(frozen=True)
class Listener:
    arn: str
    load_balancer_arn: str
    protocol: str  # HTTP | HTTPS
    port: int
    bind_host: str  # 127.0.0.1 for Scheme=internal, 0.0.0.0 for internet-facing
    rules: tuple[Rule, ...]  # sorted by priority, default rule last
    certificates: tuple[Certificate, ...] = ()  # first is the default; the rest are served by SNI
    idle_timeout_s: int = DEFAULT_IDLE_TIMEOUT_S
    ssl_policy: str = DEFAULT_SSL_POLICY  # HTTPS only: protocols and ciphers (core/lb/ssl_policies.py)
    server_header: bool = True  # routing.http.response.server.enabled: a Server header on the proxy's own answers


@dataclass(frozen=True)
class LbConfig:
    listeners: tuple[Listener, ...] = ()
    target_groups: dict[str, TargetGroup] = field(default_factory=dict)
