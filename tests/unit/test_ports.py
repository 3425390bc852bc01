"""portside.core.ports: range parsing, the ECS round-robin allocator, persistence.

Table tests pin the algorithm case by case; the Hypothesis state machine checks, over random
sequences of assign/hold/release/release_port/restart, that every choice equals a one-line
reference reading of the rule and that the safety invariants hold.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from portside.core import ports
from portside.core.ports import (
    DEFAULT_RESERVED_TCP,
    FALLBACK_WARNING,
    PortAllocator,
    PortRange,
    parse_range_flag,
    range_from_kernel,
)
from portside.errors import PortsExhausted

RANGE = PortRange(100, 109, "flag")


def always_free(protocol: str, port: int) -> bool:
    return True


def busy(*taken: int) -> ports.PortProbe:
    return lambda protocol, port: port not in taken


def make(
    *,
    last: int = 0,
    held: Iterable[tuple[str, int, str]] = (),
    quarantine: Iterable[tuple[str, int, float]] = (),
    reserved_tcp: Iterable[int] = (),
    reserved_udp: Iterable[int] = (),
    quarantine_s: float = 10.0,
    port_range: PortRange = RANGE,
) -> PortAllocator:
    state = {
        "version": 1,
        "last_assigned": last,
        "held": [list(h) for h in held],
        "quarantine": [list(q) for q in quarantine],
    }
    return PortAllocator.from_dict(
        state, port_range, reserved_tcp=reserved_tcp, reserved_udp=reserved_udp, quarantine_s=quarantine_s
    )


def tcp_held(*port_numbers: int, owner: str = "other") -> list[tuple[str, int, str]]:
    return [("tcp", p, owner) for p in port_numbers]


# --- the algorithm, case by case ----------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    setup: dict[str, Any]  # make() keyword arguments
    expect: list[int] | str  # the ports, or the PortsExhausted message
    last: int = 0  # last_assigned afterwards (when ports are expected)
    protocol: str = "tcp"
    count: int = 1
    now: float = 0.0
    taken: tuple[int, ...] = ()  # ports the bind probe rejects


UNAVAILABLE = "a host port is unavailable"
Q5 = [("tcp", 100, 5.0)]  # port 100 released at t=5 (quarantine 10 s)

ASSIGN_CASES = [
    Case("fresh allocator starts at range start", {}, [100], last=100),
    Case("round robin: next after last", {"last": 100}, [101], last=101),
    Case("taking the range end resets to start-1", {"last": 108}, [109], last=99),
    Case("after start-1 the search starts at start", {"last": 99}, [100], last=100),
    Case(
        "wrap-around when the tail is held", {"last": 105, "held": tcp_held(106, 107, 108, 109)}, [100], 100
    ),
    Case("held ports are skipped", {"held": tcp_held(100, 101)}, [102], last=102),
    Case("own holdings are skipped too", {"held": tcp_held(100, owner="me")}, [101], last=101),
    Case("reserved ports are skipped", {"reserved_tcp": (100, 101)}, [102], last=102),
    Case("quarantined port is skipped", {"quarantine": Q5}, [101], last=101, now=14.9),
    Case("quarantine is over at exactly quarantine_s", {"quarantine": Q5}, [100], last=100, now=15.0),
    Case("probe-rejected ports are skipped", {}, [102], last=102, taken=(100, 101)),
    Case("contiguous run skips a held port", {"held": tcp_held(102)}, [103, 104, 105], last=105, count=3),
    Case("contiguous run may end at range end", {"last": 106}, [107, 108, 109], last=99, count=3),
    Case("contiguous run never wraps past end", {"last": 107}, [100, 101, 102], last=102, count=3),
    Case(
        "wrap pass finds a run straddling last_assigned",
        {"last": 104, "held": tcp_held(100, 101, 102, 106, 107, 108, 109)},
        [103, 104, 105],
        last=105,
        count=3,
    ),
    Case("probe failure breaks a run", {}, [102, 103], last=103, count=2, taken=(101,)),
    Case("reserved port breaks a run", {"reserved_tcp": (101,)}, [102, 103], last=103, count=2),
    Case("last_assigned outside a changed range", {"last": 500}, [100], last=100),
    Case("udp shares the tcp tracker", {"last": 104}, [105], last=105, protocol="udp"),
    Case("tcp reservation does not bind udp", {"reserved_tcp": (100,)}, [100], last=100, protocol="udp"),
    Case("tcp holding does not bind udp", {"held": tcp_held(100)}, [100], last=100, protocol="udp"),
    Case("udp reservations apply to udp", {"reserved_udp": (100,)}, [101], last=101, protocol="udp"),
    Case("whole range as one run", {}, list(range(100, 110)), last=99, count=10),
    # failures: ECS's messages, and nothing changes
    Case("every port held", {"held": tcp_held(*range(100, 110))}, UNAVAILABLE),
    Case("every port rejected by the probe", {"last": 103}, UNAVAILABLE, taken=tuple(range(100, 110))),
    Case("every port reserved", {"reserved_tcp": range(100, 110)}, UNAVAILABLE),
    Case(
        "every free port quarantined",
        {"held": tcp_held(*range(100, 108)), "quarantine": [("tcp", 108, 1.0), ("tcp", 109, 2.0)]},
        UNAVAILABLE,
        now=5.0,
    ),
    Case(
        "quarantine expired but the probe says no",
        {"last": 105, "held": tcp_held(*range(101, 110)), "quarantine": [("tcp", 100, 0.0)]},
        UNAVAILABLE,
        now=50.0,
        taken=(100,),
    ),
    Case(
        "only gaps of two",
        {"last": 102, "held": tcp_held(102, 105, 108)},
        "3 contiguous host ports are unavailable",
        count=3,
    ),
    Case("more ports than the range", {}, "11 contiguous host ports are unavailable", count=11),
]


@pytest.mark.parametrize("case", ASSIGN_CASES, ids=[case.name for case in ASSIGN_CASES])
def test_assign(case: Case) -> None:
    alloc = make(**case.setup)
    before = alloc.to_dict()
    probe = busy(*case.taken)
    if isinstance(case.expect, str):
        with pytest.raises(PortsExhausted) as info:
            alloc.assign("me", case.protocol, case.count, case.now, probe)
        assert str(info.value) == case.expect
        assert alloc.to_dict() == before
        # the private index survived too: it chooses exactly as one restored from the same state
        restored = make(**case.setup)
        assert _next_choice(alloc, case.count, case.now) == _next_choice(restored, case.count, case.now)
    else:
        assert alloc.assign("me", case.protocol, case.count, case.now, probe) == case.expect
        assert alloc.last_assigned == case.last
        assert [alloc.owner_of(case.protocol, p) for p in case.expect] == ["me"] * case.count


def _next_choice(alloc: PortAllocator, count: int, now: float) -> list[int] | str:
    try:
        return alloc.assign("probe", "tcp", count, now, always_free)
    except PortsExhausted as exc:
        return str(exc)


def test_probe_runs_only_on_cheap_candidates_and_once_per_port() -> None:
    alloc = make(
        last=104,
        held=tcp_held(100, 107, 108, 109),
        reserved_tcp=(101,),
        quarantine=[("tcp", 102, 0.0)],
    )
    calls: list[tuple[str, int]] = []

    def probe(protocol: str, port: int) -> bool:
        calls.append((protocol, port))
        return port not in (103, 106)

    # first pass: 105-106 fails on 106; wrap: 103-104 fails on 103; 104-105 wins (105 not re-probed)
    assert alloc.assign("me", "tcp", 2, 1.0, probe) == [104, 105]
    assert calls == [("tcp", 105), ("tcp", 106), ("tcp", 103), ("tcp", 104)]


def test_probe_exception_leaves_state_unchanged() -> None:
    alloc = make(quarantine=[("tcp", 100, 0.0)])
    before = alloc.to_dict()

    def probe(protocol: str, port: int) -> bool:
        raise OSError("probe broke")

    with pytest.raises(OSError):
        alloc.assign("me", "tcp", 1, 100.0, probe)
    assert alloc.to_dict() == before


def test_expired_quarantine_is_pruned_by_a_successful_assign() -> None:
    alloc = make(quarantine=[("tcp", 105, 0.0)])
    assert alloc.assign("me", "tcp", 1, 10.0, always_free) == [100]
    assert dict(alloc.quarantine) == {}


def test_release_quarantines_every_port_of_owner() -> None:
    alloc = make()
    alloc.assign("a", "tcp", 2, 0.0, always_free)
    alloc.assign("a", "udp", 1, 0.0, always_free)
    alloc.assign("b", "tcp", 1, 0.0, always_free)
    assert alloc.release("a", 3.0) == [("tcp", 100), ("tcp", 101), ("udp", 102)]
    assert alloc.holdings("a") == []
    assert alloc.holdings("b") == [("tcp", 103)]
    assert dict(alloc.quarantine) == {("tcp", 100): 3.0, ("tcp", 101): 3.0, ("udp", 102): 3.0}
    assert alloc.release("a", 4.0) == []
    assert alloc.release("nobody", 4.0) == []


def test_released_port_comes_back_only_after_quarantine() -> None:
    alloc = make(port_range=PortRange(100, 101, "flag"), quarantine_s=10.0)
    assert alloc.assign("a", "tcp", 1, 0.0, always_free) == [100]
    assert alloc.assign("b", "tcp", 1, 0.0, always_free) == [101]
    alloc.release("a", 1.0)
    with pytest.raises(PortsExhausted):
        alloc.assign("c", "tcp", 1, 10.9, always_free)
    assert alloc.assign("c", "tcp", 1, 11.0, always_free) == [100]


def test_release_port_after_docker_bind_failure_moves_on() -> None:
    alloc = make()
    assert alloc.assign("t", "tcp", 1, 0.0, always_free) == [100]
    assert alloc.release_port("tcp", 100, 0.0) == "t"
    assert alloc.holdings("t") == []
    assert alloc.assign("t", "tcp", 1, 0.0, always_free) == [101]
    assert ("tcp", 100) in alloc.quarantine


def test_release_port_of_an_unheld_port_quarantines_it() -> None:
    alloc = make()
    assert alloc.release_port("tcp", 100, 0.0) is None
    assert alloc.assign("t", "tcp", 1, 0.0, always_free) == [101]
    assert alloc.assign("t", "tcp", 1, 10.0, always_free) == [102]  # round robin, not the freed 100


def test_release_port_never_shortens_a_quarantine() -> None:
    alloc = make()
    alloc.release_port("tcp", 100, 5.0)
    alloc.release_port("tcp", 100, 1.0)
    assert alloc.quarantine[("tcp", 100)] == 5.0


def test_hold_records_static_and_restored_ports() -> None:
    alloc = make(quarantine=[("tcp", 101, 0.0)])
    alloc.hold("web", "tcp", 80)  # static, outside the range
    alloc.hold("web", "tcp", 101)  # restored: ends the quarantine
    alloc.hold("web", "tcp", 101)  # idempotent
    assert alloc.holdings("web") == [("tcp", 80), ("tcp", 101)]
    assert alloc.owner_of("tcp", 101) == "web"
    assert alloc.owner_of("udp", 101) is None
    assert ("tcp", 101) not in alloc.quarantine
    assert alloc.assign("t", "tcp", 2, 0.0, always_free) == [102, 103]


def test_hold_by_another_owner_raises_and_changes_nothing() -> None:
    alloc = make(held=tcp_held(100, owner="a"))
    before = alloc.to_dict()
    with pytest.raises(ValueError, match=r"tcp port 100 is held by 'a'; cannot hold it for 'b'"):
        alloc.hold("b", "tcp", 100)
    assert alloc.to_dict() == before


@pytest.mark.parametrize(
    "call",
    [
        lambda a: a.assign("x", "sctp", 1, 0.0, always_free),
        lambda a: a.assign("x", "tcp", 0, 0.0, always_free),
        lambda a: a.hold("x", "TCP", 100),
        lambda a: a.hold("x", "tcp", 0),
        lambda a: a.hold("x", "tcp", 65536),
        lambda a: a.release_port("icmp", 100, 0.0),
    ],
    ids=[
        "assign protocol",
        "assign count",
        "hold protocol",
        "hold port 0",
        "hold port 65536",
        "release protocol",
    ],
)
def test_bad_arguments_raise_value_error(call: Any) -> None:
    alloc = make()
    before = alloc.to_dict()
    with pytest.raises(ValueError):
        call(alloc)
    assert alloc.to_dict() == before


# --- persistence --------------------------------------------------------------------------


def test_round_trip_through_json_is_exact() -> None:
    alloc = PortAllocator(RANGE, quarantine_s=10.0)
    alloc.assign("a", "tcp", 2, 0.0, always_free)
    alloc.assign("b", "udp", 1, 1.0, always_free)
    alloc.hold("c", "tcp", 8080)
    alloc.release("a", 2)
    state = json.loads(json.dumps(alloc.to_dict()))
    restored = PortAllocator.from_dict(state, RANGE, quarantine_s=10.0)
    assert restored.to_dict() == alloc.to_dict() == state
    assert restored.last_assigned == 102
    for now in (3.0, 3.0, 12.0, 12.0):
        assert _next_choice(restored, 1, now) == _next_choice(alloc, 1, now)


@pytest.mark.parametrize(
    "state, message",
    [
        ({"version": 2, "last_assigned": 0, "held": [], "quarantine": []}, "version"),
        ({"version": 1, "last_assigned": -1, "held": [], "quarantine": []}, "last_assigned"),
        (
            {
                "version": 1,
                "last_assigned": 0,
                "held": [["tcp", 100, "a"], ["tcp", 100, "b"]],
                "quarantine": [],
            },
            "listed twice",
        ),
        (
            {
                "version": 1,
                "last_assigned": 0,
                "held": [["tcp", 100, "a"]],
                "quarantine": [["tcp", 100, 1.0]],
            },
            "both held and quarantined",
        ),
    ],
)
def test_from_dict_rejects_inconsistent_state(state: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PortAllocator.from_dict(state, RANGE)


# --- ranges -------------------------------------------------------------------------------


def test_port_range_value() -> None:
    r = PortRange(32768, 60999, "kernel")
    assert r.size == 28232
    assert 32768 in r and 60999 in r
    assert 32767 not in r and 61000 not in r and "32768" not in r
    assert str(r) == "32768-60999"
    assert PortRange(5, 5, "flag").size == 1


@pytest.mark.parametrize(
    "start, end, source", [(0, 10, "flag"), (10, 5, "flag"), (1, 65536, "flag"), (1, 10, "env")]
)
def test_port_range_rejects_invalid(start: int, end: int, source: str) -> None:
    with pytest.raises(ValueError):
        PortRange(start, end, source)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("32768-60999", (32768, 60999)),
        (" 100-200\n", (100, 200)),
        ("5-5", (5, 5)),
        ("1-65535", (1, 65535)),
        ("30000 - 32767", (30000, 32767)),
    ],
)
def test_parse_range_flag(text: str, expected: tuple[int, int]) -> None:
    assert parse_range_flag(text) == PortRange(*expected, "flag")


@pytest.mark.parametrize(
    "text",
    ["", "100", "100-", "-100", "200-100", "0-10", "1-65536", "a-b", "1.5-3", "100-200-300", "+1-5", "١-٥"],
)
def test_parse_range_flag_errors_name_the_flag_and_rule(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_range_flag(text)
    assert str(info.value) == (
        f"--dynamic-port-range has value {text!r}; expected START-END with integers 1 <= START <= END <= 65535"
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ("32768\t60999\n", (32768, 60999)),
        ("1025 65000", (1025, 65000)),
        ("  32768 \t  60999  ", (32768, 60999)),
    ],
)
def test_range_from_kernel(text: str, expected: tuple[int, int]) -> None:
    assert range_from_kernel(text) == (PortRange(*expected, "kernel"), None)


@pytest.mark.parametrize(
    "text", [None, "", "garbage", "32768", "60999\t32768", "0\t100", "32768\t70000", "1 2 3", "-1\t5", "a\tb"]
)
def test_range_from_kernel_falls_back(text: str | None) -> None:
    assert range_from_kernel(text) == (PortRange(49153, 65535, "fallback"), FALLBACK_WARNING)


def test_ecs_constants_verbatim() -> None:
    assert FALLBACK_WARNING == (
        "Unable to read the ephemeral host port range, falling back to the default range: 49153-65535"
    )
    assert DEFAULT_RESERVED_TCP == (22, 2375, 2376, 51678, 51679)
    assert PortAllocator(RANGE).reserved == {"tcp": frozenset(DEFAULT_RESERVED_TCP), "udp": frozenset()}


def test_public_names() -> None:
    assert sorted(ports.__all__) == [
        "DEFAULT_PORT_QUARANTINE_S",
        "DEFAULT_RESERVED_TCP",
        "DEFAULT_RESERVED_UDP",
        "DYNAMIC_PORT_RANGE_FLAG",
        "FALLBACK_RANGE",
        "FALLBACK_WARNING",
        "LINUX_DEFAULT_EPHEMERAL_RANGE",
        "PROTOCOLS",
        "PortAllocator",
        "PortProbe",
        "PortRange",
        "parse_range_flag",
        "range_from_kernel",
    ]


# --- properties ---------------------------------------------------------------------------

P_RANGE = PortRange(1000, 1015, "flag")
P_RESERVED_TCP = (1003, 1010)
P_RESERVED_UDP = (1012,)
P_QUARANTINE_S = 4.0
owners = st.sampled_from(["t1", "t2", "t3", "t4", "t5"])
protocols = st.sampled_from(["tcp", "udp"])
any_port = st.integers(995, 1020)  # a little outside the range on both sides


def reference_choice(
    alloc: PortAllocator, protocol: str, count: int, now: float, taken: frozenset[int]
) -> int | None:
    """The rule, read literally: first start in rotated order whose whole run is usable."""
    r = alloc.range

    def usable(port: int) -> bool:
        key = (protocol, port)
        return (
            port in r
            and port not in alloc.reserved[protocol]
            and key not in alloc.held
            and not (key in alloc.quarantine and now - alloc.quarantine[key] < alloc.quarantine_s)
            and port not in taken
        )

    first = alloc.last_assigned + 1 if r.start <= alloc.last_assigned + 1 <= r.end else r.start
    for start in itertools.chain(range(first, r.end + 1), range(r.start, first)):
        if all(usable(p) for p in range(start, start + count)):
            return start
    return None


class AllocatorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.alloc = self._new()
        self.now = 0.0

    @staticmethod
    def _new() -> PortAllocator:
        return PortAllocator(
            P_RANGE, reserved_tcp=P_RESERVED_TCP, reserved_udp=P_RESERVED_UDP, quarantine_s=P_QUARANTINE_S
        )

    def _restore(self, state: dict[str, Any]) -> PortAllocator:
        return PortAllocator.from_dict(
            state,
            P_RANGE,
            reserved_tcp=P_RESERVED_TCP,
            reserved_udp=P_RESERVED_UDP,
            quarantine_s=P_QUARANTINE_S,
        )

    @rule(
        owner=owners,
        protocol=protocols,
        count=st.integers(1, 4),
        dt=st.integers(0, 3),
        taken=st.frozensets(any_port, max_size=5),
    )
    def assign(self, owner: str, protocol: str, count: int, dt: int, taken: frozenset[int]) -> None:
        self.now += dt
        before = self.alloc.to_dict()
        held_before = dict(self.alloc.held)
        quarantine_before = dict(self.alloc.quarantine)
        expected = reference_choice(self.alloc, protocol, count, self.now, taken)
        calls: list[int] = []

        def probe(proto: str, port: int) -> bool:
            assert proto == protocol
            calls.append(port)
            return port not in taken

        try:
            got = self.alloc.assign(owner, protocol, count, self.now, probe)
        except PortsExhausted:
            assert expected is None
            assert self.alloc.to_dict() == before
        else:
            assert expected is not None
            assert got == list(range(expected, expected + count))
            for port in got:
                key = (protocol, port)
                assert port in P_RANGE
                assert port not in self.alloc.reserved[protocol]
                assert key not in held_before  # never one another owner (or anyone) held
                assert not (key in quarantine_before and self.now - quarantine_before[key] < P_QUARANTINE_S)
                assert self.alloc.owner_of(protocol, port) == owner
        assert len(calls) == len(set(calls)), "probed a port twice"
        for port in calls:  # only candidates that passed the cheap checks reach the probe
            key = (protocol, port)
            assert port in P_RANGE and port not in self.alloc.reserved[protocol] and key not in held_before
            assert not (key in quarantine_before and self.now - quarantine_before[key] < P_QUARANTINE_S)

    @rule(owner=owners, protocol=protocols, port=any_port)
    def hold(self, owner: str, protocol: str, port: int) -> None:
        current = self.alloc.owner_of(protocol, port)
        before = self.alloc.to_dict()
        if current not in (None, owner):
            with pytest.raises(ValueError):
                self.alloc.hold(owner, protocol, port)
            assert self.alloc.to_dict() == before
        else:
            self.alloc.hold(owner, protocol, port)
            assert self.alloc.owner_of(protocol, port) == owner
            assert (protocol, port) not in self.alloc.quarantine

    @rule(owner=owners, dt=st.integers(0, 3))
    def release(self, owner: str, dt: int) -> None:
        self.now += dt
        expected = self.alloc.holdings(owner)
        assert self.alloc.release(owner, self.now) == expected
        for protocol, port in expected:
            assert self.alloc.owner_of(protocol, port) is None
            assert self.alloc.quarantine[(protocol, port)] == self.now

    @rule(protocol=protocols, port=any_port)
    def release_port(self, protocol: str, port: int) -> None:
        owner = self.alloc.owner_of(protocol, port)
        assert self.alloc.release_port(protocol, port, self.now) == owner
        assert self.alloc.owner_of(protocol, port) is None
        assert (protocol, port) in self.alloc.quarantine

    @rule(owner=owners, protocol=protocols, count=st.integers(1, 3), dt=st.integers(0, 5))
    def restart(self, owner: str, protocol: str, count: int, dt: int) -> None:
        """A restored allocator has the same state and makes the same next choice; keep it."""
        state = json.loads(json.dumps(self.alloc.to_dict()))
        restored = self._restore(state)
        assert restored.to_dict() == self.alloc.to_dict()
        self.now += dt
        outcomes: list[list[int] | str] = []
        for alloc in (self.alloc, restored):
            try:
                outcomes.append(alloc.assign(owner, protocol, count, self.now, always_free))
            except PortsExhausted as exc:
                outcomes.append(str(exc))
        assert outcomes[0] == outcomes[1]
        assert restored.to_dict() == self.alloc.to_dict()
        self.alloc = restored

    @invariant()
    def one_owner_per_port_and_consistent_indexes(self) -> None:
        held = self.alloc.held
        by_owner: dict[str, list[tuple[str, int]]] = {}
        for key, owner in sorted(held.items()):
            by_owner.setdefault(owner, []).append(key)
        for owner in ["t1", "t2", "t3", "t4", "t5"]:
            assert self.alloc.holdings(owner) == by_owner.get(owner, [])
        assert not set(held) & set(self.alloc.quarantine)

    @invariant()
    def last_assigned_in_range(self) -> None:
        assert self.alloc.last_assigned == 0 or P_RANGE.start - 1 <= self.alloc.last_assigned <= P_RANGE.end


TestAllocatorMachine = AllocatorMachine.TestCase
TestAllocatorMachine.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
