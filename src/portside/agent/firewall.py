"""The shell around ``core.firewall``: installs, updates, checks and removes this server's chain.

``HostFirewall`` speaks iptables (whichever backend ``iptables`` is on this host,
the same one Docker uses). ``FirewallKeeper`` renders the chain from the *stored*
live tasks and Docker's bridges, so a restarted server installs exactly what the
last one left; it rewrites the chain when that content changes, and every resync
checks that the chain and the jump from DOCKER-USER are still there (a ``dockerd``
restart or a hand-made flush is repaired). A sync that fails is retried with
backoff and counted (``sync_failures``, ``in_step``: /metrics), not only logged.

Lifecycle: the chain is installed before the first task starts, and the agent asks
``ensure_in_step`` before each ``docker start``, so no copy starts while the chain is
out of step. It stays when the server stops, or fails to start, while the store
still holds live tasks (their copies stay guarded) and is removed only when the
store holds none. After a crash the kernel keeps the last rules (fail closed) and
the next start installs the same content again.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import threading
from collections.abc import Awaitable, Callable
from dataclasses import replace

from portside.agent.driver import BridgeNetwork, Driver
from portside.config import AWSVPC_NETWORK_NAME, ServerConfig
from portside.core.ports import PortRange
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
        # apply and remove run in threads (asyncio.to_thread): cancelling the coroutine that awaits an
        # apply does not stop it, so a remove started meanwhile would see the jump come back and leave
        # an empty chain behind. One at a time.
        self._lock = threading.Lock()

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
        with self._lock:
            self._apply(plan)

    def _apply(self, plan: GuardPlan) -> None:
        if self._iptables("-S", DOCKER_USER_CHAIN, check=False).returncode != 0:
            raise FirewallError(
                f"the {DOCKER_USER_CHAIN} chain is missing: start dockerd with its iptables integration on "
                "(the default), or run portside with --firewall off and manage the rules yourself"
            )
        self._iptables(stdin=firewall.restore_script(plan))
        self._ensure_jump()

    def _docker_user_rules(self, check: bool = True) -> list[str]:
        listing = self._iptables("-S", DOCKER_USER_CHAIN, check=check).stdout.splitlines()
        return [line.strip() for line in listing if line.startswith("-A ")]

    def _ensure_jump(self) -> None:
        rules = self._docker_user_rules()
        if not firewall.jump_in_place(rules, self.chain):
            jump = f"-A {DOCKER_USER_CHAIN} -j {self.chain}"
            self._iptables(stdin=firewall.jump_script(self.chain, rules.count(jump)))

    def drift(self, plan: GuardPlan) -> list[str]:
        """What differs between the kernel and the plan; empty when the rules are in place."""
        problems = []
        listing = self._iptables("-S", self.chain, check=False)
        if listing.returncode != 0:
            problems.append(f"chain {self.chain} is missing")
        else:
            held, expected = firewall.normalise_listing(listing.stdout.splitlines()), firewall.expected_listing(plan)
            if held != expected:
                missing = [rule for rule in expected if rule not in held]
                unexpected = [rule for rule in held if rule not in expected]
                detail = "; ".join(
                    [f"missing {missing}"] * bool(missing) + [f"unexpected {unexpected}"] * bool(unexpected)
                ) or "in another order"
                problems.append(f"chain {self.chain} does not hold the expected rules ({detail})")
        if not firewall.jump_in_place(self._docker_user_rules(check=False), self.chain):
            problems.append(f"{DOCKER_USER_CHAIN} does not jump to {self.chain} once, ahead of any other rule")
        return problems

    def remove(self) -> bool:
        """Take the jump and the chain out; absent pieces are fine. True when there was a chain."""
        with self._lock:
            return self._remove()

    def _remove(self) -> bool:
        while self._iptables("-D", DOCKER_USER_CHAIN, "-j", self.chain, check=False).returncode == 0:
            pass
        if self._iptables("-F", self.chain, check=False).returncode != 0:
            return False
        self._iptables("-X", self.chain)
        return True


class FirewallKeeper:
    """Keeps ``HostFirewall`` in step with the stored live tasks and Docker's bridges."""

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
        self._configured_sources = base.lb_sources
        self._tasks = tasks  # the store's live tasks: the same answer before and after a restart
        self._bridges = bridges
        self.interval_s = interval_s
        self.plan: GuardPlan | None = None  # the content last written
        self.in_step = False  # the last sync left the kernel holding ``plan`` (metrics)
        self._dirty = asyncio.Event()
        self._syncing = asyncio.Lock()  # the follow loop and starts that wait for the chain
        self._runner: asyncio.Task[None] | None = None
        self.last_error: str | None = None
        self.repairs = 0  # drift found and restored (metrics)
        self.sync_failures = 0  # syncs that raised FirewallError (metrics)
        self._failed_in_row = 0  # sets how soon the follow loop retries

    async def _current_plan(self) -> GuardPlan:
        try:
            networks = await self._bridges()
            interfaces = tuple(sorted({n.interface for n in networks} | {"docker0"}))
        except DriverError as exc:  # Docker is away: keep the bridges last seen
            log.warning("firewall: cannot list Docker's bridges (%s); keeping the last known", exc.message)
            interfaces = self.plan.bridges if self.plan is not None else ("docker0",)
        return replace(self.base, bridges=interfaces, host_ports=firewall.copies_host_ports(self._tasks()))

    async def install(self) -> None:
        """Put the chain in place before any copy starts; raises FirewallError when it cannot."""
        plan = await self._current_plan()
        await asyncio.to_thread(self.firewall.apply, plan)
        self.plan, self.in_step = plan, True
        log.info("firewall: chain %s in place (%s mode, bridges %s, %d guarded host ports)",
                 plan.chain, plan.mode, ", ".join(plan.bridges), len(plan.host_ports))

    def start(self) -> None:
        self._runner = asyncio.ensure_future(self._follow())

    def admit_sources(self, sources: tuple[str, ...]) -> None:
        """Load balancers the control plane names, admitted beside the configured ``--lb-source`` ones."""
        wanted = tuple(sorted(set(self._configured_sources) | set(sources)))
        if wanted != self.base.lb_sources:
            log.info("firewall: load balancer sources now %s", ", ".join(wanted) or "none")
            self.base = replace(self.base, lb_sources=wanted)
            self._dirty.set()

    def changed(self, _task: Task | None = None) -> None:
        """Called on every task change; the chain is rewritten only when its content would differ."""
        self._dirty.set()

    async def ensure_in_step(self) -> None:
        """Bring the chain in step with the stored tasks now; FirewallError when it cannot (a start waits on this)."""
        if not await self.sync():
            raise FirewallError(f"the host firewall chain {self.base.chain} is not in step: {self.last_error}")

    async def sync(self, verify: bool = False) -> bool:
        """One attempt to bring the chain in step; False (counted, logged once per message) when it failed."""
        async with self._syncing:
            try:
                plan = await self._current_plan()
            except Exception as exc:  # noqa: BLE001 - the store could not be read: the same as a failed sync
                return self._failed(f"cannot read the stored tasks: {exc}")
            try:
                if plan != self.plan or not self.in_step:
                    # A rewrite also restores what was changed from outside since the last one: count it.
                    drifted = self.plan is not None and bool(await asyncio.to_thread(self.firewall.drift, self.plan))
                    if drifted:
                        log.warning("firewall: chain %s was changed from outside; rewriting it", plan.chain)
                    await asyncio.to_thread(self.firewall.apply, plan)
                    self.plan = plan
                    self.repairs += drifted
                elif verify:
                    problems = await asyncio.to_thread(self.firewall.drift, plan)
                    if problems:
                        log.warning("firewall: %s; restoring it", "; ".join(problems))
                        await asyncio.to_thread(self.firewall.apply, plan)
                        self.repairs += 1
            except FirewallError as exc:
                return self._failed(exc.message)
            if self.last_error is not None:
                log.info("firewall: chain %s in step again", plan.chain)
            self.in_step, self.last_error, self._failed_in_row = True, None, 0
            return True

    def _failed(self, message: str) -> bool:
        self.in_step = False
        self.sync_failures += 1
        self._failed_in_row += 1
        if message != self.last_error:
            log.error("firewall: %s (retrying)", message)
        self.last_error = message
        return False

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        verified_at = loop.time()
        while True:
            wait_s = firewall.retry_delay_s(self._failed_in_row, self.interval_s) if self._failed_in_row else self.interval_s
            try:
                await asyncio.wait_for(self._dirty.wait(), timeout=wait_s)
            except TimeoutError:
                pass
            self._dirty.clear()
            verify = loop.time() - verified_at >= self.interval_s  # also under constant churn
            if verify:
                verified_at = loop.time()
            try:
                await self.sync(verify=verify)
            except Exception:  # not FirewallError (sync counts those): log, and keep following
                log.exception("firewall: sync failed")

    def copies_remain(self) -> bool:
        """Whether the store holds live tasks; when it cannot be read, assume it does (fail closed)."""
        try:
            return bool(self._tasks())
        except Exception:
            log.exception("firewall: cannot read the stored tasks; keeping the chain")
            return True

    async def close(self) -> None:
        """Stop following; remove the chain only when the store holds no live task, else leave it in step."""
        if self._runner is not None:
            self._runner.cancel()
            try:
                await self._runner
            except asyncio.CancelledError:
                pass
        if not self.copies_remain():
            await asyncio.to_thread(self.firewall.remove)
            log.info("firewall: chain %s removed (no copies left)", self.base.chain)
        elif not await self.sync():
            log.error("firewall: chain %s left as it is while copies run: %s", self.base.chain, self.last_error)


def host_keeper(config: ServerConfig, driver: Driver, port_range: PortRange, tasks: Callable[[], list[Task]]) -> FirewallKeeper:
    """The keeper of this host's chain, over the tasks its agent looks after.

    The agent's tasks come from its state file, so they are known before it recovers.
    """
    base = GuardPlan(
        chain=firewall.chain_name(driver.owner), mode=config.firewall_mode, port_range=port_range,
        lb_sources=config.lb_sources, publish_ip=config.publish_ip,
    )
    return FirewallKeeper(
        HostFirewall(base.chain), base, tasks, lambda: driver.bridge_networks(GUARDED_NETWORKS), config.resync_interval_s,
    )
