"""agent.firewall: how HostFirewall drives iptables and how the keeper copes when iptables fails.

The iptables binary is replaced by a recording stand-in (the runner seam): these tests are about
which commands run and what a failure says, not about the kernel (tests/integration/test_firewall.py).
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import Callable

import pytest

from portside.agent.driver import BridgeNetwork
from portside.agent.firewall import FirewallError, FirewallKeeper, HostFirewall
from portside.core.firewall import GuardPlan, expected_listing
from portside.core.ports import PortRange
from portside.core.task import Task

PLAN = GuardPlan("PORTSIDE-abc", "guard", PortRange(49153, 65535, "fallback"), (), ("docker0",), "0.0.0.0", (("tcp", 50000),))


class FakeIptables:
    """Answers like iptables would for a DOCKER-USER chain and one chain of ours; records every call."""

    def __init__(self, docker_user: list[str] | None = None, fail: dict[str, str] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.restores: list[str] = []
        self.docker_user = docker_user if docker_user is not None else ["-A DOCKER-USER -j RETURN"]
        self.chain: list[str] | None = None
        self.fail = fail or {}

    def __call__(self, argv: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
        self.calls.append(argv)
        key = argv[0] if argv[0] == "iptables-restore" else " ".join(argv[3:5])
        if key in self.fail:
            return subprocess.CompletedProcess(argv, 1, "", self.fail[key])
        if argv[0] == "iptables-restore":
            assert stdin is not None
            self.restores.append(stdin)
            if f":{PLAN.chain} - [0:0]" in stdin:
                self.chain = [f"-N {PLAN.chain}"] + [line for line in stdin.splitlines() if line.startswith("-A ")]
            for line in stdin.splitlines():  # the jump's move, in one commit
                if line.startswith("-D DOCKER-USER "):
                    self.docker_user.remove("-A" + line[2:])
                elif line.startswith("-I DOCKER-USER 1 "):
                    self.docker_user.insert(0, "-A DOCKER-USER " + line[len("-I DOCKER-USER 1 "):])
            return subprocess.CompletedProcess(argv, 0, "", "")
        action, chain = argv[3], argv[4]
        if action == "-S" and chain == "DOCKER-USER":
            return subprocess.CompletedProcess(argv, 0, "\n".join(["-N DOCKER-USER", *self.docker_user]) + "\n", "")
        if action == "-S":
            ok = self.chain is not None
            return subprocess.CompletedProcess(argv, 0 if ok else 1, "\n".join(self.chain or []) + "\n", "")
        if action == "-D":
            jump = f"-A DOCKER-USER {' '.join(argv[5:])}"
            if jump in self.docker_user:
                self.docker_user.remove(jump)
                return subprocess.CompletedProcess(argv, 0, "", "")
            return subprocess.CompletedProcess(argv, 1, "", "Bad rule")
        if action == "-I":
            self.docker_user.insert(0, f"-A DOCKER-USER {' '.join(argv[6:])}")
        return subprocess.CompletedProcess(argv, 0, "", "")


def test_apply_replaces_the_chain_and_moves_the_jump_ahead_of_other_rules_in_one_commit() -> None:
    fake = FakeIptables(docker_user=["-A DOCKER-USER -j OTHER", "-A DOCKER-USER -j PORTSIDE-abc", "-A DOCKER-USER -j RETURN"])
    HostFirewall(PLAN.chain, fake).apply(PLAN)
    assert fake.docker_user == ["-A DOCKER-USER -j PORTSIDE-abc", "-A DOCKER-USER -j OTHER", "-A DOCKER-USER -j RETURN"]
    # Taking the old jump out and putting the new one in is one transaction: no moment without a jump.
    assert fake.restores[-1] == "*filter\n-D DOCKER-USER -j PORTSIDE-abc\n-I DOCKER-USER 1 -j PORTSIDE-abc\nCOMMIT\n"
    assert not any(call[3:4] in (["-D"], ["-I"]) for call in fake.calls if call[0] == "iptables")
    assert fake.chain == expected_listing(PLAN)
    assert all(call[:3] == ["iptables", "-w", "5"] or call[0] == "iptables-restore" for call in fake.calls)
    assert HostFirewall(PLAN.chain, fake).drift(PLAN) == []


def test_another_servers_chain_ahead_of_ours_is_no_drift_so_two_servers_never_fight() -> None:
    fake = FakeIptables(docker_user=["-A DOCKER-USER -j PORTSIDE-other", "-A DOCKER-USER -j RETURN"])
    firewall = HostFirewall(PLAN.chain, fake)
    firewall.apply(PLAN)
    fake.docker_user.insert(0, "-A DOCKER-USER -j PORTSIDE-third")  # a third server starts after us
    restores = len(fake.restores)
    assert firewall.drift(PLAN) == []
    firewall.apply(PLAN)
    assert len(fake.restores) == restores + 1  # the chain's content only: the jump stays where it is
    assert fake.docker_user[:3] == ["-A DOCKER-USER -j PORTSIDE-third", "-A DOCKER-USER -j PORTSIDE-abc",
                                    "-A DOCKER-USER -j PORTSIDE-other"]


def test_drift_names_what_is_missing() -> None:
    fake = FakeIptables()
    firewall = HostFirewall(PLAN.chain, fake)
    assert firewall.drift(PLAN) == [
        "chain PORTSIDE-abc is missing", "DOCKER-USER does not jump to PORTSIDE-abc once, ahead of any other rule"]
    firewall.apply(PLAN)
    other = GuardPlan(PLAN.chain, "managed", PLAN.port_range, (), ("docker0",))
    [problem] = firewall.drift(other)
    assert problem.startswith("chain PORTSIDE-abc does not hold the expected rules (missing [")  # names the rules


def test_a_failing_restore_and_a_missing_docker_user_chain_say_what_to_do() -> None:
    with pytest.raises(FirewallError, match="iptables-restore -w 5 --noflush failed: line 3 failed"):
        HostFirewall(PLAN.chain, FakeIptables(fail={"iptables-restore": "line 3 failed"})).apply(PLAN)
    with pytest.raises(FirewallError, match="DOCKER-USER chain is missing.*--firewall off"):
        HostFirewall(PLAN.chain, FakeIptables(fail={"-S DOCKER-USER": "No chain"})).apply(PLAN)


def test_no_iptables_and_a_held_lock_are_errors_not_crashes() -> None:
    def missing(argv: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError(argv[0])

    def stuck(argv: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(argv, 15)

    with pytest.raises(FirewallError, match="iptables is not installed.*--firewall off"):
        HostFirewall(PLAN.chain, missing).apply(PLAN)
    with pytest.raises(FirewallError, match="did not finish in 15 s"):
        HostFirewall(PLAN.chain, stuck).apply(PLAN)


def test_remove_takes_every_jump_and_the_chain_and_says_whether_there_was_one() -> None:
    fake = FakeIptables()
    firewall = HostFirewall(PLAN.chain, fake)
    firewall.apply(PLAN)
    fake.docker_user.append("-A DOCKER-USER -j PORTSIDE-abc")  # a duplicate left by hand
    assert firewall.remove() is True
    assert "-A DOCKER-USER -j PORTSIDE-abc" not in fake.docker_user
    assert [c[3:5] for c in fake.calls[-2:]] == [["-F", PLAN.chain], ["-X", PLAN.chain]]
    assert HostFirewall(PLAN.chain, FakeIptables(fail={f"-F {PLAN.chain}": "No chain"})).remove() is False


def test_the_keeper_counts_a_failing_sync_retries_it_and_recovers() -> None:
    async def scenario() -> None:
        fake = FakeIptables()

        async def bridges() -> list[BridgeNetwork]:
            return [BridgeNetwork("bridge", "docker0", "172.17.0.0/16", "172.17.0.1")]

        keeper = FirewallKeeper(HostFirewall(PLAN.chain, fake), PLAN, lambda: [], bridges, interval_s=60)
        await keeper.install()
        assert keeper.in_step and keeper.sync_failures == 0
        fake.fail["iptables-restore"] = "Resource temporarily unavailable"
        keeper.base = GuardPlan(PLAN.chain, "managed", PLAN.port_range)  # content changes: a rewrite is due
        assert await keeper.sync() is False
        assert keeper.last_error is not None and "Resource temporarily unavailable" in keeper.last_error
        assert not keeper.in_step and keeper.sync_failures == 1
        with pytest.raises(FirewallError, match="chain PORTSIDE-abc is not in step: .*Resource temporarily"):
            await keeper.ensure_in_step()  # a start waiting on the chain is refused, and that counts too
        assert keeper.sync_failures == 2
        # The follow loop retries on its own, long before the 60 s resync interval.
        keeper.start()
        await asyncio.sleep(0.2)
        del fake.fail["iptables-restore"]
        for _ in range(40):
            if keeper.in_step:
                break
            await asyncio.sleep(0.1)
        assert keeper.in_step and keeper.last_error is None and keeper.plan is not None and keeper.plan.mode == "managed"
        await keeper.close()  # no live tasks: the chain goes
        assert fake.chain is not None and [c[3:5] for c in fake.calls[-2:]] == [["-F", PLAN.chain], ["-X", PLAN.chain]]

    asyncio.run(scenario())


def test_a_flushed_chain_that_cannot_be_restored_stays_out_of_step_until_a_retry_restores_it() -> None:
    async def scenario() -> None:
        fake = FakeIptables()

        async def bridges() -> list[BridgeNetwork]:
            return []

        keeper = FirewallKeeper(HostFirewall(PLAN.chain, fake), PLAN, lambda: [], bridges, interval_s=60)
        await keeper.install()
        fake.chain = [f"-N {PLAN.chain}"]  # flushed from outside
        fake.fail["iptables-restore"] = "Could not fetch rule set generation id"
        assert await keeper.sync(verify=True) is False and not keeper.in_step
        del fake.fail["iptables-restore"]
        assert await keeper.sync() is True  # no verify asked: out of step is enough to retry the rewrite
        assert keeper.in_step and keeper.repairs == 1 and fake.chain == expected_listing(keeper.plan)

    asyncio.run(scenario())


def test_the_keeper_keeps_the_chain_while_the_store_holds_live_tasks_or_cannot_be_read() -> None:
    live = Task(arn="a", id="a", region="r", cluster="c", cluster_arn="cc", task_definition_arn="td", family="f",
                revision=1, network_mode="bridge", container_instance_arn="ci", containers=[], cpu=0, memory=16,
                created_at=0.0)

    async def scenario(tasks: Callable[[], list[Task]]) -> FakeIptables:
        fake = FakeIptables()

        async def bridges() -> list[BridgeNetwork]:
            return []

        keeper = FirewallKeeper(HostFirewall(PLAN.chain, fake), PLAN, tasks, bridges, interval_s=60)
        await keeper.install()
        await keeper.close()
        return fake

    reads: list[int] = []

    def unreadable_at_close() -> list[Task]:
        reads.append(1)
        if len(reads) > 1:
            raise OSError("database is locked")
        return []

    for tasks in (lambda: [live], unreadable_at_close):
        fake = asyncio.run(scenario(tasks))
        assert not any(call[3:4] in (["-F"], ["-X"]) for call in fake.calls if call[0] == "iptables")
        assert fake.chain is not None and "-A DOCKER-USER -j PORTSIDE-abc" in fake.docker_user


def test_a_remove_waits_for_an_apply_still_running_in_its_thread() -> None:
    """Cancelling the coroutine that awaits an apply does not stop its thread: a remove started then
    must not interleave with it, or the apply puts the jump back and the chain is left behind, empty."""
    fake = FakeIptables()
    entered, release = threading.Event(), threading.Event()

    def slow_restore(argv: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
        if argv[0] == "iptables-restore" and f":{PLAN.chain} - [0:0]" in (stdin or ""):
            entered.set()
            release.wait(5)
        return fake(argv, stdin)

    firewall = HostFirewall(PLAN.chain, slow_restore)
    applying = threading.Thread(target=firewall.apply, args=(PLAN,))
    applying.start()
    assert entered.wait(5)
    removing = threading.Thread(target=firewall.remove)
    removing.start()
    removing.join(0.3)
    assert removing.is_alive()  # waits for the apply
    release.set()
    applying.join(5)
    removing.join(5)
    assert fake.docker_user == ["-A DOCKER-USER -j RETURN"]  # the jump is gone, and so is the chain
    assert [c[3:5] for c in fake.calls[-2:]] == [["-F", PLAN.chain], ["-X", PLAN.chain]]
