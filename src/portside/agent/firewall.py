"""The shell around ``core.firewall``: installs, updates, checks and removes this server's chain.

``HostFirewall`` speaks iptables (whichever backend ``iptables`` is on this host,
the same one Docker uses). ``FirewallKeeper`` follows the agent: whenever the set
of this server's container addresses or bridges changes it replaces the chain,
and every resync it checks that the chain and the jump from DOCKER-USER are
still there (a ``dockerd`` restart or a hand-made flush is repaired).

Lifecycle: the chain is installed before the first task starts; it stays when the
server stops while copies still run (they stay guarded) and is removed when the
server stops with no copies left. After a crash the kernel keeps the last rules
(fail closed) and the next start replaces them with what the store says.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import Awaitable, Callable

from portside.agent.driver import BridgeNetwork
from portside.config import AWSVPC_NETWORK_NAME
from portside.core import firewall
from portside.core.firewall import DOCKER_USER_CHAIN, GuardPlan
from portside.core.task import Task
from portside.errors import DriverError, PortsideError

log = logging.getLogger("portside.firewall")

IPTABLES_WAIT_S = "5"
COMMAND_TIMEOUT_S = 15.0
GUARDED_NETWORKS = ["bridge", AWSVPC_NETWORK_NAME]


class FirewallError(PortsideError):
    code = "FirewallError"


Runner = Callable[[list[str], str | None], subprocess.CompletedProcess[str]]


def run_command(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)


class HostFirewall:
    """One chain in the filter table and its jump from DOCKER-USER."""

    def __init__(self, chain: str, runner: Runner = run_command) -> None:
        self.chain = chain
        self._run = runner

    def _iptables(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = ["iptables-restore", "-w", IPTABLES_WAIT_S, "--noflush"] if stdin is not None else ["iptables", "-w", IPTABLES_WAIT_S, *args]
        try:
            done = self._run(command, stdin)
        except FileNotFoundError:
            raise FirewallError(
                f"{command[0]} is not installed; install Debian's iptables package or run with --firewall off"
            ) from None
        except subprocess.TimeoutExpired:
            raise FirewallError(f"{' '.join(command)} did not finish in {COMMAND_TIMEOUT_S:g} s (xtables lock held?)") from None
        if check and done.returncode != 0:
            raise FirewallError(f"{' '.join(command)} failed: {done.stderr.strip() or done.returncode}")
        return done

    def apply(self, plan: GuardPlan) -> None:
        """Replace the chain's content in one commit and make DOCKER-USER jump to it first."""
        if self._iptables("-S", DOCKER_USER_CHAIN, check=False).returncode != 0:
            raise FirewallError(
                f"the {DOCKER_USER_CHAIN} chain is missing: start dockerd with its iptables integration on "
                "(the default), or run portside with --firewall off and manage the rules yourself"
            )
        self._iptables(stdin=firewall.restore_script(plan))
        self._ensure_jump()

    def _ensure_jump(self) -> None:
        listing = self._iptables("-S", DOCKER_USER_CHAIN).stdout.splitlines()
        jump = f"-A {DOCKER_USER_CHAIN} -j {self.chain}"
        rules = [line.strip() for line in listing if line.startswith("-A ")]
        if rules and rules[0] == jump:
            return
        while self._iptables("-D", DOCKER_USER_CHAIN, "-j", self.chain, check=False).returncode == 0:
            pass  # a jump that is not first: take it out before putting it first
        self._iptables("-I", DOCKER_USER_CHAIN, "1", "-j", self.chain)

    def drift(self, plan: GuardPlan) -> list[str]:
        """What differs between the kernel and the plan; empty when the rules are in place."""
        problems = []
        listing = self._iptables("-S", self.chain, check=False)
        if listing.returncode != 0:
            problems.append(f"chain {self.chain} is missing")
        elif firewall.normalise_listing(listing.stdout.splitlines()) != firewall.expected_listing(plan):
            problems.append(f"chain {self.chain} does not hold the expected rules")
        users = self._iptables("-S", DOCKER_USER_CHAIN, check=False)
        first = [line.strip() for line in users.stdout.splitlines() if line.startswith("-A ")][:1]
        if first != [f"-A {DOCKER_USER_CHAIN} -j {self.chain}"]:
            problems.append(f"{DOCKER_USER_CHAIN} does not jump to {self.chain} first")
        return problems

    def remove(self) -> bool:
        """Take the jump and the chain out; absent pieces are fine. True when there was a chain."""
        while self._iptables("-D", DOCKER_USER_CHAIN, "-j", self.chain, check=False).returncode == 0:
            pass
        if self._iptables("-F", self.chain, check=False).returncode != 0:
            return False
        self._iptables("-X", self.chain)
        return True


def guarded_addresses(tasks: list[Task]) -> tuple[str, ...]:
    """Addresses of this server's live copies on Docker bridges (bridge and awsvpc modes)."""
    addresses: set[str] = set()
    for task in tasks:
        if task.is_stopped:
            continue
        if task.private_ip:
            addresses.add(task.private_ip)
        for container in task.containers:
            if container.bridge_ip:
                addresses.add(container.bridge_ip)
    return tuple(sorted(addresses))


class FirewallKeeper:
    """Keeps ``HostFirewall`` in step with the agent's tasks and Docker's bridges."""

    def __init__(
        self,
        host_firewall: HostFirewall,
        base: GuardPlan,
        tasks: Callable[[], list[Task]],
        bridges: Callable[[], Awaitable[list[BridgeNetwork]]],
        interval_s: float,
    ) -> None:
        self.firewall = host_firewall
        self.base = base
        self._tasks = tasks
        self._bridges = bridges
        self.interval_s = interval_s
        self.plan: GuardPlan | None = None
        self._dirty = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self.last_error: str | None = None
        self.repairs = 0  # drift found and restored (metrics)

    async def _current_plan(self) -> GuardPlan:
        try:
            networks = await self._bridges()
            interfaces = tuple(sorted({n.interface for n in networks} | {"docker0"}))
        except DriverError as exc:  # Docker is away: keep the bridges last seen
            log.warning("firewall: cannot list Docker's bridges (%s); keeping the last known", exc.message)
            interfaces = self.plan.bridges if self.plan is not None else ("docker0",)
        return GuardPlan(
            chain=self.base.chain, mode=self.base.mode, port_range=self.base.port_range,
            lb_sources=self.base.lb_sources, bridges=interfaces, container_ips=guarded_addresses(self._tasks()),
        )

    async def install(self) -> None:
        """Put the chain in place before any copy starts; raises FirewallError when it cannot."""
        plan = await self._current_plan()
        await asyncio.to_thread(self.firewall.apply, plan)
        self.plan = plan
        log.info("firewall: chain %s in place (%s mode, %d container addresses)", plan.chain, plan.mode, len(plan.container_ips))

    def start(self) -> None:
        self._runner = asyncio.ensure_future(self._follow())

    def changed(self, _task: Task | None = None) -> None:
        """Called on every task change; the chain is rewritten only when its content would differ."""
        self._dirty.set()

    async def sync(self, verify: bool = False) -> None:
        plan = await self._current_plan()
        try:
            if plan != self.plan:
                # A rewrite also restores what was changed from outside since the last one: count it.
                if self.plan is not None and await asyncio.to_thread(self.firewall.drift, self.plan):
                    log.warning("firewall: chain %s was changed from outside; rewriting it", plan.chain)
                    self.repairs += 1
                await asyncio.to_thread(self.firewall.apply, plan)
                self.plan = plan
            elif verify:
                problems = await asyncio.to_thread(self.firewall.drift, plan)
                if problems:
                    log.warning("firewall: %s; restoring it", "; ".join(problems))
                    await asyncio.to_thread(self.firewall.apply, plan)
                    self.repairs += 1
            self.last_error = None
        except FirewallError as exc:
            if exc.message != self.last_error:
                log.error("firewall: %s", exc.message)
            self.last_error = exc.message

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        verified_at = loop.time()
        while True:
            try:
                await asyncio.wait_for(self._dirty.wait(), timeout=self.interval_s)
            except TimeoutError:
                pass
            self._dirty.clear()
            verify = loop.time() - verified_at >= self.interval_s  # also under constant churn
            if verify:
                verified_at = loop.time()
            try:
                await self.sync(verify=verify)
            except Exception:
                log.exception("firewall: sync failed")

    async def close(self, remove: bool) -> None:
        if self._runner is not None:
            self._runner.cancel()
            try:
                await self._runner
            except asyncio.CancelledError:
                pass
        if remove:
            await asyncio.to_thread(self.firewall.remove)
            log.info("firewall: chain %s removed (no copies left)", self.base.chain)
        elif self.plan is not None:
            try:
                await self.sync()
            except Exception:
                log.exception("firewall: final sync failed")
