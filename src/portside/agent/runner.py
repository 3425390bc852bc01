"""``portside agent``: this host's agent, run on its own against a control plane on another host.

Wires the Docker driver, the host's port range, the agent's state directory, the host firewall
and the HTTP link (SigV4, the credentials file's profile) into one ``HostAgent`` and runs it
until SIGINT or SIGTERM. Stopping the agent leaves the copies running, as a restart of ECS's
agent does; the next agent on this state directory adopts them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from portside import process
from portside.agent import host
from portside.agent.agent import HostAgent
from portside.agent.docker_driver import DockerDriver
from portside.agent.firewall import FirewallError, FirewallKeeper, host_keeper
from portside.agent.http_link import HttpLink, profile_credentials
from portside.agent.ports import choose_range
from portside.agent.registration import registration
from portside.agent.state import AgentState
from portside.config import ServerConfig
from portside.errors import PortsideError

log = logging.getLogger("portside.agent")


@dataclass(frozen=True)
class AgentOptions:
    servers: list[str]
    credentials_file: str
    profile: str
    address: str
    zone: str | None
    attributes: dict[str, str]
    instance_id: str | None
    config: ServerConfig


async def serve(options: AgentOptions) -> None:
    """Run the agent until SIGINT or SIGTERM."""
    config = options.config
    stop = process.stop_on_signals()
    try:
        credentials = profile_credentials(options.credentials_file, options.profile)
    except ValueError as exc:
        raise PortsideError(str(exc)) from exc
    port_range, warning = choose_range(config.dynamic_port_range, host.read_kernel_port_range())
    if warning:
        log.warning(warning)
    state_dir = Path(config.state_dir)
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        state = AgentState.load(state_dir)  # before Docker: a state file that does not read stops nothing
    except ValueError as exc:
        raise PortsideError(str(exc)) from exc
    driver = DockerDriver(host.owner_id(state_dir), config.docker_url)
    link = HttpLink(options.servers, credentials, config.region)
    keeper: FirewallKeeper | None = None
    agent: HostAgent | None = None
    try:
        registered = registration(
            cluster=config.extra.get("cluster", "default"), region=config.region,
            instance_id=options.instance_id or host.host_instance_id(), address=options.address, zone=options.zone,
            docker_version=driver.engine_version, cpu_units=host.cpu_units(),
            memory_mib=max(host.memory_mib() - config.reserved_memory_mib, 0),
            reserved_tcp=list(config.reserved_ports_tcp), reserved_udp=list(config.reserved_ports_udp),
            attributes=options.attributes, awsvpc=False,
        )
        agent = HostAgent(config, link, driver, port_range, state, registered)
        if config.firewall_mode != "off":
            keeper = host_keeper(config, driver, port_range, agent.live_tasks)
            await keeper.install()
            agent.on_change.append(keeper.changed)
            agent.on_lb_sources.append(keeper.admit_sources)
            agent.before_start = keeper.ensure_in_step
        await agent.start()
        if keeper is not None:
            keeper.changed()
            keeper.start()
        log.info("agent for %s running; control plane %s", options.address, ", ".join(options.servers))
        await stop.wait()
    finally:
        if agent is not None:
            await agent.close()
        if keeper is not None:
            try:
                await keeper.close()
            except FirewallError as exc:
                log.error("firewall: %s", exc.message)
        await link.close()
        driver.close()


def run(options: AgentOptions) -> None:
    process.run(serve(options))
