"""The ``portside`` command. Every verb but ``server``, ``agent`` and ``lb`` talks only to the API."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from portside import config as cfg
from portside.cli.calls import call as _call
from portside.cli.calls import cluster_option, endpoint_option
from portside.cli.calls import fail as _fail
from portside.cli.client import endpoint_from_env, make_client
from portside.cli.events import events
from portside.cli.exec import exec_command
from portside.cli.scale import scale
from portside.cli.logs import logs
from portside.cli.store import store
from portside.cli.tables import render_tasks
from portside.core.firewall import DEFAULT_FIREWALL_MODE, FIREWALL_MODES


@click.group()
@click.version_option(package_name="portside")
def main() -> None:
    """portside: ECS-style dynamic port mapping and a built-in load balancer, on machines you own."""


main.add_command(store)
main.add_command(events)
main.add_command(scale)
main.add_command(exec_command, name="exec")
main.add_command(logs)


@main.command()
@click.option("--api", "api", default=cfg.DEFAULT_API_ADDRESS, show_default=True, help="HOST:PORT of the AWS-compatible API.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=cfg.DEFAULT_STATE_DIR, show_default=True)
@click.option("--region", default=cfg.DEFAULT_REGION, show_default=True, help="The region this host is a container instance in.")
@click.option("--account-id", default=cfg.DEFAULT_ACCOUNT_ID, show_default=True)
@click.option("--cluster", default=cfg.DEFAULT_CLUSTER, show_default=True, help="The cluster this host registers in.")
@click.option("--dynamic-port-range", default=None, help="START-END; default: the kernel's ip_local_port_range.")
@click.option("--publish-ip", default=cfg.DEFAULT_PUBLISH_IP, show_default=True, help="Address container ports are published on.")
@click.option("--credentials", "credentials", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="AWS credentials file; required when --api is not a loopback address.")
@click.option("--auth", "auth_mode", type=click.Choice(["loopback", "always"]), default="loopback", show_default=True,
              help="loopback: callers on loopback may sign with any key; always: only keys in --credentials.")
@click.option("--api-host", "api_hosts", multiple=True, metavar="NAME",
              help="A name clients reach the API by, accepted in the Host header (repeatable).")
@click.option("--api-tls", "api_tls", nargs=2, type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              metavar="CERT KEY", help="Serve the API over HTTPS with this PEM certificate (chain) and private key.")
@click.option("--secrets-key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The key that seals SSM SecureString and Secrets Manager values (owner-only file); "
                   "default: secrets.key in --state-dir, created at the first start. Back it up.")
@click.option("--reserved-memory", type=click.IntRange(min=0), default=cfg.DEFAULT_RESERVED_MEMORY_MIB, show_default=True,
              help="MiB kept back from the registered MEMORY.")
@click.option("--stop-timeout", type=click.IntRange(min=0), default=cfg.DEFAULT_STOP_TIMEOUT_S, show_default=True,
              help="Seconds from SIGTERM to SIGKILL when a container sets no stopTimeout.")
@click.option("--image-pull-behavior", type=click.Choice(cfg.IMAGE_PULL_BEHAVIORS), default=cfg.DEFAULT_IMAGE_PULL_BEHAVIOR, show_default=True)
@click.option("--image-pull-timeout", type=click.FloatRange(min=0.1), default=cfg.DEFAULT_IMAGE_PULL_TIMEOUT_S, show_default=True)
@click.option("--port-quarantine", type=click.FloatRange(min=0), default=cfg.DEFAULT_PORT_QUARANTINE_S, show_default=True,
              help="Seconds a freed host port rests before reuse.")
@click.option("--orphan-grace", type=click.FloatRange(min=0), default=cfg.DEFAULT_ORPHAN_GRACE_S, show_default=True,
              help="Seconds before a labelled container no task owns is removed.")
@click.option("--task-cleanup-wait", type=click.FloatRange(min=0), default=cfg.DEFAULT_TASK_CLEANUP_WAIT_S, show_default=True,
              help="Seconds a stopped task's containers are kept.")
@click.option("--resync-interval", type=click.FloatRange(min=0.1), default=cfg.DEFAULT_RESYNC_INTERVAL_S, show_default=True)
@click.option("--min-health-check-interval", type=click.IntRange(1, 300), default=5, show_default=True,
              help="Lowest HealthCheckIntervalSeconds target groups may use (AWS: 5); lower for local use and tests.")
@click.option("--proxy-retries/--no-proxy-retries", default=True, show_default=True,
              help="Retry a failed request once on another target when that is safe (beyond ALB).")
@click.option("--max-client-connections", type=click.IntRange(1, 1_000_000), default=cfg.DEFAULT_MAX_CLIENT_CONNECTIONS,
              show_default=True, help="Client connections per listener; at the limit idle ones are closed first, then new ones refused.")
@click.option("--direct-routing/--no-direct-routing", default=True, show_default=True,
              help="Reach copies on this host at their bridge address and container port (skips the host port's DNAT).")
@click.option("--scaling-period", type=click.FloatRange(min=0.5), default=60.0, show_default=True,
              help="Seconds per metric datapoint for Application Auto Scaling (AWS: 60); shorter for local use.")
@click.option("--metrics-retention", default=cfg.DEFAULT_METRICS_RETENTION, show_default=True, metavar="DURATION",
              help="How long CloudWatch metric datapoints are kept, e.g. 15d or 36h (1h to 455d; AWS: 15d for 1-minute data).")
@click.option("--firewall", "firewall_mode", type=click.Choice(FIREWALL_MODES), default=DEFAULT_FIREWALL_MODE, show_default=True,
              help="guard: drop forwarded traffic to copies unless it comes from a bridge or --lb-source; "
                   "managed: also admit the dynamic range only from --lb-source; off: leave the firewall to you.")
@click.option("--lb-source", "lb_sources", multiple=True, metavar="CIDR",
              help="Address or CIDR of a load balancer on another machine that may reach copies (repeatable).")
@click.option("--allow-privileged", is_flag=True,
              help="Run tasks that ask for privileged or for dockerSecurityOptions other than no-new-privileges.")
@click.option("--allow-host-namespaces", is_flag=True, help="Run tasks with networkMode, pidMode or ipcMode host.")
@click.option("--allow-devices", is_flag=True, help="Run tasks with linuxParameters.devices.")
@click.option("--allow-capabilities", is_flag=True, help="Run tasks that add Linux capabilities (linuxParameters.capabilities.add).")
@click.option("--allow-host-path", "allow_host_paths", multiple=True, metavar="PREFIX",
              help="Let tasks bind-mount host paths at or below PREFIX (repeatable; default: none).")
@click.option("--agent-ttl", type=click.FloatRange(min=1), default=cfg.DEFAULT_AGENT_TTL_S, show_default=True,
              help="Seconds without a call from an agent before its instance is agentConnected false.")
@click.option("--agent-grace", type=click.FloatRange(min=0), default=cfg.DEFAULT_AGENT_GRACE_S, show_default=True,
              help="Seconds after --agent-ttl before a silent instance's service tasks are replaced elsewhere.")
@click.option("--log-retention-days", type=click.IntRange(min=0), default=cfg.DEFAULT_LOG_RETENTION_DAYS,
              show_default=True, help="Days log groups without a retention policy keep events (0: forever, as AWS).")
@click.option("--store", default=None, metavar="URL",
              help="postgresql://USER@HOST/DB: state shared by several replicas of the server (docs/replicas.md); "
                   "default: SQLite in --state-dir.")
@click.option("--leader-lease", type=click.FloatRange(min=1, max=300), default=6.0, show_default=True,
              help="Seconds the leader's lease lasts: another replica takes over within about this long.")
@click.option("--instance-id", default=None, help="ec2InstanceId this host registers as; default: from /etc/machine-id.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True)
def server(api: str, state_dir: Path, region: str, account_id: str, cluster: str, dynamic_port_range: str | None,
           publish_ip: str, credentials: Path | None, auth_mode: str, api_hosts: tuple[str, ...],
           api_tls: tuple[Path, Path] | None, secrets_key_file: Path | None, reserved_memory: int, stop_timeout: int,
           image_pull_behavior: str, image_pull_timeout: float, port_quarantine: float, orphan_grace: float,
           task_cleanup_wait: float, resync_interval: float, min_health_check_interval: int, proxy_retries: bool,
           max_client_connections: int, direct_routing: bool, scaling_period: float, metrics_retention: str, firewall_mode: str, lb_sources: tuple[str, ...],
           allow_privileged: bool, allow_host_namespaces: bool, allow_devices: bool, allow_capabilities: bool,
           allow_host_paths: tuple[str, ...], agent_ttl: float, agent_grace: float, log_retention_days: int,
           store: str | None,
           leader_lease: float, instance_id: str | None, log_level: str) -> None:
    """Run the control plane and this host's agent in the foreground."""
    from portside.agent.ports import choose_range
    from portside.config import check_store_url
    from portside.core.api_boundary import check_api_host
    from portside.core.firewall import parse_sources
    from portside.core.instance_id import RULE as instance_id_rule
    from portside.core.instance_id import is_instance_id
    from portside.core.task_allowances import Allowances
    from portside.errors import PortsideError
    from portside.server import run as run_server

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        api_host, api_port = cfg.parse_host_port(api, "--api")
        api_hosts = tuple(check_api_host(name) for name in api_hosts)
        if dynamic_port_range:
            choose_range(dynamic_port_range, None)
        sources = parse_sources(lb_sources)
        retention_s = cfg.parse_retention(metrics_retention)
        if store is not None:
            check_store_url(store)
        if instance_id is not None and not is_instance_id(instance_id):
            raise ValueError(f"--instance-id {instance_id}: must be {instance_id_rule}")
        allowances = Allowances(
            privileged=allow_privileged, host_namespaces=allow_host_namespaces, devices=allow_devices,
            capabilities=allow_capabilities, host_paths=_host_path_prefixes(allow_host_paths),
        )
    except ValueError as exc:
        _fail(str(exc))
    config = cfg.ServerConfig(
        api_host=api_host, api_port=api_port, state_dir=state_dir, region=region, account_id=account_id,
        dynamic_port_range=dynamic_port_range, publish_ip=publish_ip, credentials_file=credentials,
        auth_mode=auth_mode, api_hosts=api_hosts, api_tls=(api_tls[0], api_tls[1]) if api_tls else None,
        secrets_key_file=secrets_key_file,
        reserved_memory_mib=reserved_memory, stop_timeout_s=stop_timeout, image_pull_behavior=image_pull_behavior,
        image_pull_timeout_s=image_pull_timeout, port_quarantine_s=port_quarantine, orphan_grace_s=orphan_grace,
        task_cleanup_wait_s=task_cleanup_wait, resync_interval_s=resync_interval, proxy_retries=proxy_retries,
        max_client_connections=max_client_connections, direct_routing=direct_routing, scaling_period_s=scaling_period,
        metrics_retention_s=retention_s, firewall_mode=firewall_mode, lb_sources=sources, allowances=allowances,
        agent_ttl_s=agent_ttl, agent_grace_s=agent_grace, store=store, leader_lease_s=leader_lease,
        instance_id=instance_id, schedule_clock_file=_schedule_clock_file(), log_retention_days=log_retention_days,
        extra={"cluster": cluster, "min_health_check_interval": str(min_health_check_interval)},
    )
    try:
        run_server(config)
    except PortsideError as exc:
        _fail(exc.message)
    except OSError as exc:
        _fail(f"cannot start: {exc}")


def _schedule_clock_file() -> Path | None:
    """$PORTSIDE_TEST_SCHEDULE_CLOCK_FILE: tests move the clock of scheduled actions (docs/scheduled-scaling.md)."""
    value = os.environ.get("PORTSIDE_TEST_SCHEDULE_CLOCK_FILE")
    return Path(value) if value else None


@main.command()
@click.option("--server", "servers", required=True, metavar="URL[,URL...]",
              help="The control plane's API; several URLs: the next one is tried when one cannot be reached.")
@click.option("--credentials", "credentials", required=True, type=click.Path(exists=True, dir_okay=False),
              help="AWS shared-credentials file with the key this agent signs with.")
@click.option("--profile", default="default", show_default=True, help="The section of --credentials to use.")
@click.option("--address", required=True, help="This host's address: where load balancers reach its copies.")
@click.option("--zone", default=None, help="Availability zone (attribute ecs.availability-zone); default: REGIONa.")
@click.option("--attribute", "attributes", multiple=True, metavar="NAME=VALUE", help="A custom attribute (repeatable).")
@click.option("--instance-id", default=None, help="ec2InstanceId to register as; default: from /etc/machine-id.")
@click.option("--docker-host", default=None, help="Docker Engine URL, e.g. unix:///run/docker.sock; default: $DOCKER_HOST.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("/var/lib/portside-agent"),
              show_default=True, help="Where the agent keeps its tasks and port holdings.")
@click.option("--region", default=cfg.DEFAULT_REGION, show_default=True)
@click.option("--cluster", default=cfg.DEFAULT_CLUSTER, show_default=True)
@click.option("--dynamic-port-range", default=None, help="START-END; default: the kernel's ip_local_port_range.")
@click.option("--publish-ip", default=None, help="Address container ports are published on; default: --address.")
@click.option("--firewall", "firewall_mode", type=click.Choice(FIREWALL_MODES), default=DEFAULT_FIREWALL_MODE, show_default=True)
@click.option("--lb-source", "lb_sources", multiple=True, metavar="CIDR",
              help="Addresses of load balancers that may reach this host's copies (repeatable).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True)
def agent(servers: str, credentials: str, profile: str, address: str, zone: str | None, attributes: tuple[str, ...],
          instance_id: str | None, docker_host: str | None, state_dir: Path, region: str, cluster: str,
          dynamic_port_range: str | None, publish_ip: str | None, firewall_mode: str, lb_sources: tuple[str, ...],
          log_level: str) -> None:
    """Run this host's agent against a control plane on another host (docs/agent-protocol.md)."""
    import ipaddress

    from portside.agent.ports import choose_range
    from portside.agent.runner import AgentOptions
    from portside.agent.runner import run as run_agent
    from portside.core.firewall import parse_sources
    from portside.core.instance_id import RULE as instance_id_rule
    from portside.core.instance_id import is_instance_id
    from portside.errors import PortsideError

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        urls = _server_urls(servers)
        ipaddress.ip_address(address)
        custom = dict(_attribute(a) for a in attributes)
        if instance_id is not None and not is_instance_id(instance_id):
            raise ValueError(f"--instance-id {instance_id}: must be {instance_id_rule}")
        if dynamic_port_range:
            choose_range(dynamic_port_range, None)
        sources = parse_sources(lb_sources)
    except ValueError as exc:
        _fail(str(exc) if "--" in str(exc) else f"--address {address}: {exc}")
    config = cfg.ServerConfig(
        state_dir=state_dir, region=region, dynamic_port_range=dynamic_port_range, publish_ip=publish_ip or address,
        docker_url=docker_host, firewall_mode=firewall_mode, lb_sources=sources, extra={"cluster": cluster},
    )
    options = AgentOptions(urls, credentials, profile, address, zone, custom, instance_id, config)
    try:
        run_agent(options)
    except PortsideError as exc:
        _fail(exc.message)
    except OSError as exc:
        _fail(f"cannot start: {exc}")


@main.command()
@click.option("--server", "servers", required=True, metavar="URL[,URL...]",
              help="The control plane's API; several URLs: the next one is tried when one cannot be reached.")
@click.option("--credentials", "credentials", required=True, type=click.Path(exists=True, dir_okay=False),
              help="AWS shared-credentials file with the key this node signs with.")
@click.option("--profile", default="default", show_default=True, help="The section of --credentials to use.")
@click.option("--bind-address", default=None, metavar="ADDR",
              help="Address every listener binds on this node; default: the scheme's (internal 127.0.0.1, internet-facing 0.0.0.0).")
@click.option("--address", "source_address", default=None, metavar="IP",
              help="The address this node reaches copies from: agents' firewalls admit it (kept in step by the control plane).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("/var/lib/portside-lb"),
              show_default=True, help="Where the node keeps its last snapshot and certificates.")
@click.option("--region", default=cfg.DEFAULT_REGION, show_default=True, help="The region requests are signed for.")
@click.option("--proxy-retries/--no-proxy-retries", default=True, show_default=True,
              help="Retry a failed request once on another target when that is safe (beyond ALB).")
@click.option("--max-client-connections", type=click.IntRange(1, 1_000_000), default=cfg.DEFAULT_MAX_CLIENT_CONNECTIONS,
              show_default=True, help="Client connections per listener.")
@click.option("--metrics-period", type=click.FloatRange(1, 3600), default=60.0, show_default=True,
              help="Seconds per CloudWatch metrics report to the control plane (what this node's listeners served).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True)
def lb(servers: str, credentials: str, profile: str, bind_address: str | None, source_address: str | None,
       state_dir: Path, region: str, proxy_retries: bool, max_client_connections: int, metrics_period: float,
       log_level: str) -> None:
    """Run a load-balancer node: serve every listener of the control plane's load balancers here."""
    import ipaddress

    from portside.errors import PortsideError
    from portside.lb_node import LbNodeOptions
    from portside.lb_node import run as run_node

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        urls = _server_urls(servers)
        if bind_address is not None:
            try:
                ipaddress.ip_address(bind_address)
            except ValueError:
                raise ValueError(f"--bind-address {bind_address}: must be an IP address") from None
        if source_address is not None:
            try:
                ipaddress.ip_address(source_address)
            except ValueError:
                raise ValueError(f"--address {source_address}: must be an IP address") from None
    except ValueError as exc:
        _fail(str(exc))
    options = LbNodeOptions(
        servers=urls, credentials_file=credentials, profile=profile, region=region, state_dir=state_dir,
        bind_address=bind_address, proxy_retries=proxy_retries, max_client_connections=max_client_connections,
        source_address=source_address, metrics_period_s=metrics_period,
    )
    try:
        run_node(options)
    except PortsideError as exc:
        _fail(exc.message)
    except OSError as exc:
        _fail(f"cannot start: {exc}")


def _server_urls(servers: str) -> list[str]:
    urls = [u.strip() for u in servers.split(",") if u.strip()]
    if not urls:
        raise ValueError("--server: give at least one URL")
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"--server {url}: must be an http:// or https:// URL")
    return urls


def _attribute(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or name.startswith(("ecs.", "com.amazonaws.ecs.")):
        raise ValueError(f"--attribute {text}: must be NAME=VALUE, NAME not starting with ecs.")
    return name, value


def _host_path_prefixes(given: tuple[str, ...]) -> tuple[str, ...]:
    """--allow-host-path values as given (normalised) and where they lead (links followed), once each."""
    from portside.core.task_allowances import parse_host_path_prefix

    prefixes: list[str] = []
    for text in given:
        prefix = parse_host_path_prefix(text)
        for path in (prefix, parse_host_path_prefix(os.path.realpath(prefix))):
            if path not in prefixes:
                prefixes.append(path)
    return tuple(prefixes)


@main.command()
@click.argument("file", type=click.File("r"))
@click.option("--count", type=click.IntRange(1, 10), default=1, show_default=True)
@click.option("--started-by", default=None)
@endpoint_option
@cluster_option
@click.option("--json", "as_json", is_flag=True, help="Print the API's answer as JSON.")
def run(file: Any, count: int, started_by: str | None, endpoint: str, cluster: str, as_json: bool) -> None:
    """Register the task definition in FILE (ECS JSON) and run COUNT copies of it."""
    try:
        definition = json.load(file)
    except ValueError as exc:
        _fail(f"{file.name} is not valid JSON: {exc}")
    if not isinstance(definition, dict):
        _fail(f"{file.name} must hold a JSON object (a task definition)")
    client = make_client("ecs", endpoint)
    registered = _call(client, "register_task_definition", **definition)["taskDefinition"]
    params: dict[str, Any] = {"cluster": cluster, "taskDefinition": registered["taskDefinitionArn"], "count": count}
    if started_by:
        params["startedBy"] = started_by
    result = _call(client, "run_task", **params)
    if as_json:
        click.echo(json.dumps(result, default=str, indent=2))
    else:
        for task in result["tasks"]:
            click.echo(f"started {task['taskArn'].rsplit('/', 1)[-1]} ({registered['family']}:{registered['revision']})")
        for failure in result["failures"]:
            click.echo(f"not placed: {failure.get('reason')} {failure.get('detail', '')}".rstrip(), err=True)
    if result["failures"] and not result["tasks"]:
        sys.exit(1)


@main.command()
@endpoint_option
@cluster_option
@click.option("--all", "show_all", is_flag=True, help="Include stopped tasks.")
@click.option("--json", "as_json", is_flag=True)
def ps(endpoint: str, cluster: str, show_all: bool, as_json: bool) -> None:
    """List tasks: status, containers, host port -> container port, health."""
    client = make_client("ecs", endpoint)
    arns: list[str] = []
    for status in ("RUNNING", "STOPPED") if show_all else ("RUNNING",):
        token = None
        while True:
            page = _call(client, "list_tasks", cluster=cluster, desiredStatus=status, **({"nextToken": token} if token else {}))
            arns.extend(page["taskArns"])
            token = page.get("nextToken")
            if not token:
                break
    tasks: list[dict[str, Any]] = []
    for i in range(0, len(arns), 100):
        tasks.extend(_call(client, "describe_tasks", cluster=cluster, tasks=arns[i : i + 100])["tasks"])
    if as_json:
        click.echo(json.dumps(tasks, default=str, indent=2))
    else:
        click.echo(render_tasks(tasks))


@main.command()
@click.argument("tasks", nargs=-1, required=True)
@click.option("--reason", default=None)
@endpoint_option
@cluster_option
def stop(tasks: tuple[str, ...], reason: str | None, endpoint: str, cluster: str) -> None:
    """Stop TASKS (ids or ARNs)."""
    client = make_client("ecs", endpoint)
    for task in tasks:
        params: dict[str, Any] = {"cluster": cluster, "task": task}
        if reason:
            params["reason"] = reason
        stopped = _call(client, "stop_task", **params)["task"]
        click.echo(f"stopping {stopped['taskArn'].rsplit('/', 1)[-1]}")


@main.group()
def cert() -> None:
    """Server certificates for HTTPS listeners."""


@cert.command("import")
@click.argument("name")
@click.argument("certificate", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@endpoint_option
@click.option("--region", default=None, help="Region of the certificate; default: $AWS_DEFAULT_REGION or us-east-1.")
def cert_import(name: str, certificate: Path, key: Path, endpoint: str, region: str | None) -> None:
    """Import the PEM CERTIFICATE (chain) and its private KEY as NAME; prints the certificate ARN.

    The ARN goes in an HTTPS listener's Certificates. Importing again under the same NAME keeps
    the ARN and replaces the pair (listeners using it switch at once).
    """
    from portside.cli.client import PortsideCallError, portside_call

    try:
        params = {"Name": name, "Certificate": certificate.read_text(), "PrivateKey": key.read_text()}
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read the certificate or key: {exc}")
    try:
        result = portside_call(endpoint, "ImportCertificate", params, region)
    except PortsideCallError as exc:
        _fail(f"{exc.code}: {exc.message}")
    except OSError as exc:
        _fail(f"cannot reach the portside API: {exc}")
    click.echo(result["CertificateArn"])


@main.command()
@click.option("--endpoint", default=None, help="Ask the server at this URL. Default: $PORTSIDE_ENDPOINT or "
              "http://127.0.0.1:7070, and when nothing answers there, check this host with the flags below.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--dynamic-port-range", default=None, help="Without a server: the range the server would use.")
@click.option("--publish-ip", default=cfg.DEFAULT_PUBLISH_IP, show_default=True, help="Without a server: as for `server`.")
@click.option("--firewall", "firewall_mode", type=click.Choice(FIREWALL_MODES), default=DEFAULT_FIREWALL_MODE,
              show_default=True, help="Without a server: as for `server`.")
@click.option("--lb-source", "lb_sources", multiple=True, metavar="CIDR", help="Without a server: as for `server`.")
def doctor(endpoint: str | None, as_json: bool, dynamic_port_range: str | None, publish_ip: str, firewall_mode: str,
           lb_sources: tuple[str, ...]) -> None:
    """Check this host for what stands between load balancers and copies, and what else reaches copies.

    Exits 1 when a check finds an error, 0 otherwise (warnings included).
    """
    from portside.agent.ports import choose_range
    from portside.cli.client import PortsideCallError, portside_call
    from portside.cli.doctor import emit, local_report
    from portside.core.firewall import parse_sources

    explicit = endpoint is not None
    url = endpoint or endpoint_from_env()
    try:
        report = portside_call(url, "Doctor", {})
        source = f"the server at {url}"
    except PortsideCallError as exc:
        _fail(f"{exc.code}: {exc.message}")
    except OSError as exc:
        if explicit:
            _fail(f"cannot reach the portside API at {url}: {exc}")
        try:
            if dynamic_port_range:
                choose_range(dynamic_port_range, None)
            sources = parse_sources(lb_sources)
        except ValueError as err:
            _fail(str(err))
        config = cfg.ServerConfig(dynamic_port_range=dynamic_port_range, publish_ip=publish_ip,
                                  firewall_mode=firewall_mode, lb_sources=sources)
        report = local_report(config)
        source = f"this host, before a server starts (nothing answers at {url})"
    emit(report, source, as_json)
    sys.exit(0 if report["ok"] else 1)


@main.command()
@endpoint_option
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".portside-demo"),
              show_default=True, help="State directory of the server the demo starts (when none runs).")
@click.option("--copies", type=click.IntRange(1, 10), default=3, show_default=True)
def demo(endpoint: str, state_dir: Path, copies: int) -> None:
    """Run several copies of a demo web service on dynamic host ports; Ctrl-C removes them."""
    from portside.cli.demo import exit_after_from_env, run_demo
    from portside.errors import PortsideError

    try:
        status = run_demo(endpoint, state_dir, copies, exit_after_from_env(), os.environ.get("PORTSIDE_DEMO_CHECK") == "1")
    except PortsideError as exc:
        _fail(exc.message)
    sys.exit(status)


if __name__ == "__main__":
    main()
