"""The doctor inside a running server: facts from the server and this host, findings from core.doctor.

``HostDoctor.report`` answers ``Portside.Doctor`` (what ``portside doctor`` prints);
``HostDoctor.check_service`` runs when a service with dynamic host ports is created or
scaled and records every failing finding as a service event.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from portside import open_file_limit
from portside.agent import netfacts
from portside.agent.agent import HostAgent
from portside.agent.driver import Driver
from portside.agent.engine import userland_proxy_enabled
from portside.agent.firewall import FirewallKeeper
from portside.control import services as svc
from portside.control import task_definitions
from portside.control.plane import ControlPlane
from portside.core import doctor
from portside.core.firewall_advice import advice
from portside.core.task import Task
from portside.core.taskdef_ports import parse_port_range
from portside.errors import PortsideError

log = logging.getLogger("portside.doctor")


def dynamic_ports_per_task(definition: dict[str, Any]) -> int:
    """Host ports a copy takes from the dynamic range (bridge mode mappings without a fixed hostPort)."""
    if definition.get("networkMode", "bridge") != "bridge":
        return 0
    return sum(
        _range_size(m["containerPortRange"]) if m.get("containerPortRange") else 1
        for c in definition.get("containerDefinitions", [])
        for m in c.get("portMappings") or []
        if not m.get("hostPort")
    )


def _range_size(text: str) -> int:
    first, last = parse_port_range(text, "containerPortRange")  # stored definitions were validated
    return last - first + 1


def copies_of(tasks: list[Task]) -> tuple[doctor.Copy, ...]:
    found = []
    for task in tasks:
        if task.is_stopped:
            continue
        for container in task.containers:
            for binding in container.network_bindings:
                if "hostPort" not in binding:  # a port range binding: its ports are in hostPortRange
                    continue
                found.append(doctor.Copy(
                    task=task.id, container=container.name, protocol=binding.get("protocol", "tcp"),
                    host_ip=binding.get("bindIP", ""), host_port=int(binding["hostPort"]),
                    container_ip=container.bridge_ip or task.private_ip, container_port=int(binding["containerPort"]),
                ))
    return tuple(found)


class HostDoctor:
    def __init__(self, plane: ControlPlane, driver: Driver, keeper: FirewallKeeper | None, agent: HostAgent) -> None:
        self.plane = plane
        self.agent = agent  # this host's agent: the doctor examines this host
        self.driver = driver
        self.keeper = keeper
        self._work: set[asyncio.Task[None]] = set()

    def demands(self) -> tuple[doctor.Demand, ...]:
        plane = self.plane
        found = []
        for body in plane.store.list_services(status="ACTIVE"):
            try:
                definition = task_definitions.resolve(plane, body["_region"], body["taskDefinition"], "gone")
            except PortsideError:
                continue  # its task definition is gone: the service controller reports that
            per_task = dynamic_ports_per_task(definition)
            if per_task:
                maximum = body.get("deploymentConfiguration", {}).get("maximumPercent", 200)
                found.append(doctor.Demand(body["serviceName"], body["desiredCount"], maximum, per_task))
        return tuple(found)

    def listeners(self) -> tuple[doctor.Listening, ...]:
        found = []
        for listener, lb in self.plane.store.listeners_with_load_balancers():
            name = f"load balancer {lb['LoadBalancerName']}, {listener['Protocol']} :{listener['Port']}"
            found.append(doctor.Listening(name, int(listener["Port"]), lb.get("Scheme") != "internal"))
        return tuple(found)

    def own_ports(self, listeners: tuple[doctor.Listening, ...]) -> dict[int, str]:
        ports = {self.plane.config.api_port: "API"}
        for listener in listeners:
            ports.setdefault(listener.port, "listener")
        return ports

    async def facts(self) -> doctor.Facts:
        config, agent = self.plane.config, self.agent
        unreadable: list[str] = []
        try:
            bridges = await self.driver.bridge_networks(["bridge"])
        except Exception as exc:  # Docker away or answering oddly: a finding, never a failed request
            log.warning("doctor: cannot inspect Docker's bridge network: %s", exc)
            bridges, unreadable = [], [f"Docker's bridge network ({exc})"]
        copies = copies_of(agent.live_tasks())
        listeners = self.listeners()
        own = self.own_ports(listeners)
        ours = {c.host_port for c in copies} | set(own)

        def read_host() -> dict[str, Any]:  # in a thread: iptables, nft and /proc reads can take a while
            read = netfacts.read_firewall()
            problems: tuple[str, ...] = ()
            if self.keeper is not None and self.keeper.plan is not None:
                problems = tuple(self.keeper.firewall.drift(self.keeper.plan))
            if self.keeper is not None and self.keeper.last_error:
                problems += (self.keeper.last_error,)
            interface, address = netfacts.outward_interface()
            return {
                "rulesets": read.rulesets, "ruleset_errors": read.errors, "guard_problems": problems,
                "outward_interface": interface, "outward_address": address, "userland_proxy": userland_proxy_enabled(),
                "kernel_range": netfacts.kernel_ephemeral_range(),
                "ports_taken_by_others": netfacts.ports_taken_by_others(agent.port_range, ours),
            }

        host_facts = await asyncio.to_thread(read_host)
        if bridges:
            bridge = bridges[0]
            gateway = bridge.gateway or doctor.bridge_gateway(
                "", await asyncio.to_thread(netfacts.interface_address, bridge.interface), bridge.subnet)
            if not gateway:
                unreadable.append(f"the address of bridge {bridge.interface} (Docker lists no Gateway, the interface "
                                  f"has no IPv4 address and the subnet {bridge.subnet!r} has no host)")
            host_facts.update(bridge_interface=bridge.interface, bridge_gateway=gateway)
        return doctor.Facts(
            port_range=agent.port_range, reserved_tcp=tuple(config.reserved_ports_tcp), own_ports=own,
            publish_ip=config.publish_ip, firewall_mode=config.firewall_mode, lb_sources=config.lb_sources,
            direct_routing=config.direct_routing, copies=copies, demands=self.demands(), listeners=listeners,
            unreadable=tuple(unreadable), open_files=_open_files(), **host_facts,
        )

    async def report(self) -> dict[str, Any]:
        facts = await self.facts()
        return render_report(facts, doctor.diagnose(facts))

    # -- the service preflight

    def service_changed(self, service_arn: str) -> None:
        """Called by the services API on create and scale; the check runs in the background."""
        work = asyncio.ensure_future(self.check_service(service_arn))
        self._work.add(work)
        work.add_done_callback(self._work.discard)

    async def check_service(self, service_arn: str) -> list[doctor.Finding]:
        body = self.plane.store.get_service(service_arn)
        if body is None or not any(d.service == body["serviceName"] for d in self.demands()):
            return []
        try:
            findings = doctor.diagnose(await self.facts())
        except Exception:
            log.exception("preflight of %s failed", service_arn)
            return []
        failing = [f for f in findings if f.severity == "error" or (f.severity == "warning" and f.check == "range.capacity")]
        body = self.plane.store.get_service(service_arn)  # re-read: nothing awaited from here on
        if body is None or not failing:
            return failing
        for finding in failing:
            svc.add_event(self.plane, body, f"(service {body['serviceName']}) preflight {finding.severity}: "
                                            f"{finding.summary}. Fix: {finding.fix}")
        with self.plane.store.transaction():
            self.plane.store.put_service(body["_region"], body)
        return failing

    async def close(self) -> None:
        for work in list(self._work):
            work.cancel()


def _open_files() -> tuple[int, int]:
    limit = open_file_limit.current()
    return limit.soft, limit.hard


def render_report(facts: doctor.Facts, findings: list[doctor.Finding]) -> dict[str, Any]:
    return {
        "ok": not doctor.failed(findings),
        "findings": [f.as_dict() for f in findings],
        "portRange": {"start": facts.port_range.start, "end": facts.port_range.end, "source": facts.port_range.source},
        "rules": advice(facts.port_range, facts.lb_sources),
    }
