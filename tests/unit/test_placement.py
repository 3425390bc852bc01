"""portside.core.placement: ECS task placement (strategies, constraints, failures).

Table tests pin each strategy, constraint, validation message and service event text.
Hypothesis checks, on random small clusters, that the incremental engine chooses exactly
the instances the brute-force reference chooses (``place_brute_force``: every instance,
every key, every task), and the safety properties whatever the input: never
oversubscribed (CPU, memory, static ports), constraints always honoured, inputs untouched.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portside.core.cluster_query import compile_expression
from portside.core.placement import place
from portside.core.placement_model import (
    DEFAULT_STRATEGIES,
    Instance,
    PlacementConstraint,
    PlacementStrategy,
    TaskAsk,
    parse_constraints,
    parse_strategies,
)
from portside.core.placement_reference import place_brute_force
from portside.errors import InvalidParameterException

AZ = "ecs.availability-zone"
TYPE = "ecs.instance-type"
WEB = TaskAsk(cpu=256, memory=512, group="service:web")
BINPACK_MEM = [{"type": "binpack", "field": "memory"}]
BINPACK_CPU = [{"type": "binpack", "field": "cpu"}]
SPREAD_ID = [{"type": "spread", "field": "instanceId"}]


def arn(name: str) -> str:
    return f"arn:aws:ecs:us-east-1:123456789012:container-instance/prod/{name}"


def inst(name: str, cpu: int = 2048, memory: int = 4096, az: str | None = "a", **kw: Any) -> Instance:
    attributes = {AZ: az} if az else {}
    attributes.update(kw.pop("attributes", {}))
    return Instance(
        arn=arn(name), ec2_instance_id=f"i-{name}", cpu=cpu, memory=memory, attributes=attributes, **kw
    )


def names(placements: list[str]) -> list[str]:
    return [p.rsplit("/", 1)[-1] for p in placements]


def run(
    instances: list[Instance],
    ask: TaskAsk,
    count: int,
    strategies: Any = None,
    constraints: Any = None,
    seed: int = 0,
) -> list[str]:
    result = place(instances, ask, count, strategies, constraints, random.Random(seed))
    assert result == place_brute_force(instances, ask, count, strategies, constraints, random.Random(seed))
    return names(result.placements)


# -- strategies --------------------------------------------------------------------------------


def test_binpack_memory_fills_the_fullest_instance_that_fits() -> None:
    cluster = [inst("big", memory=4096), inst("small", memory=1024), inst("tiny", memory=256)]
    assert run(cluster, WEB, 6, BINPACK_MEM) == ["small", "small", "big", "big", "big", "big"]


def test_binpack_cpu_and_ties_by_arn() -> None:
    cluster = [inst("b", cpu=512), inst("a", cpu=512), inst("c", cpu=1024)]
    assert run(cluster, WEB, 5, BINPACK_CPU) == ["a", "a", "b", "b", "c"]


def test_spread_instance_counts_existing_tasks_of_the_group_only() -> None:
    cluster = [
        inst("a", task_groups={"service:web": 2}),
        inst("b", task_groups={"service:other": 5}),
        inst("c", task_groups={"service:web": 1}),
    ]
    assert run(cluster, WEB, 4, SPREAD_ID) == ["b", "b", "c", "a"]
    assert run(cluster, WEB, 2, [{"type": "spread", "field": "host"}]) == ["b", "b"]


def test_spread_attribute_balances_zones_counting_ineligible_instances() -> None:
    cluster = [
        inst("a1", az="a"), inst("a2", az="a"), inst("b1", az="b"),
        inst("full", cpu=0, az="b", task_groups={"service:web": 3}),  # counts for zone b
        inst("none", az=None),
    ]  # fmt: skip
    spread = [{"type": "spread", "field": f"attribute:{AZ}"}]
    # tasks per zone: missing 0, a 0, b 3 ("full" counts though it is full). Ties go to the
    # missing bucket first, then by zone name; within a zone (no second strategy) by ARN.
    assert run(cluster, WEB, 9, spread) == ["none", "a1", "none", "a1", "none", "a1", "none", "a1", "b1"]


def test_default_is_spread_by_zone_then_instance() -> None:
    assert [s.field for s in DEFAULT_STRATEGIES] == [f"attribute:{AZ}", "instanceId"]
    cluster = [inst("a1", az="a"), inst("a2", az="a"), inst("b1", az="b"), inst("c1", az="c")]
    got = run(cluster, WEB, 8)
    # zones tie -> by zone name; inside a zone the instance with fewest tasks of the group
    assert got == ["a1", "b1", "c1", "a2", "b1", "c1", "a1", "b1"]
    assert run(cluster, WEB, 8, []) == got


def test_later_strategies_break_ties_of_earlier_ones() -> None:
    cluster = [
        inst("a1", az="a", memory=4096),
        inst("a2", az="a", memory=1024),
        inst("b1", az="b", memory=2048),
    ]
    strategies = [{"type": "spread", "field": f"attribute:{AZ}"}, *BINPACK_MEM]
    assert run(cluster, WEB, 4, strategies) == ["a2", "b1", "a2", "b1"]


def test_random_is_seeded_and_uniform_over_the_ties() -> None:
    cluster = [inst(f"n{k}") for k in range(4)]
    first = run(cluster, WEB, 8, [{"type": "random"}], seed=42)
    assert first == run(cluster, WEB, 8, [{"type": "random"}], seed=42)
    counts = Counter(run(cluster, TaskAsk(0, 0, "g"), 4000, [{"type": "random"}], seed=1))
    assert set(counts) == {"n0", "n1", "n2", "n3"} and min(counts.values()) > 900
    # random after binpack only draws among the binpack winners
    cluster = [inst("x", memory=512), inst("y", memory=512), inst("z", memory=4096)]
    assert set(run(cluster, WEB, 2, [*BINPACK_MEM, {"type": "random"}], seed=3)) <= {"x", "y"}


def test_placing_updates_resources_ports_and_counts() -> None:
    ask = TaskAsk(
        cpu=1024, memory=1024, group="service:web", ports_tcp=frozenset({80}), ports_udp=frozenset({53})
    )
    cluster = [inst("a", cpu=4096), inst("b", cpu=4096, ports_udp=frozenset({53})), inst("c", cpu=2048)]
    result = place(cluster, ask, 3, BINPACK_CPU, None, random.Random(0))
    # c (least CPU) first; then c holds tcp/80, b has udp/53 in use, so a; then nothing fits
    assert names(result.placements) == ["c", "a"]
    assert [f.reason for f in result.failures] == ["RESOURCE:PORTS"]
    # closest: b clashes on one of the two ports (udp/53), a and c on both
    assert result.failures[0].arn == arn("b")
    assert result.failures[0].detail.endswith("host port(s) udp/53 already in use")


# -- constraints -------------------------------------------------------------------------------


def test_distinct_instance_counts_tasks_already_there() -> None:
    cluster = [inst("a", task_groups={"service:web": 1}), inst("b"), inst("c")]
    assert run(cluster, WEB, 2, BINPACK_MEM, [{"type": "distinctInstance"}]) == ["b", "c"]
    result = place(cluster, WEB, 3, None, [{"type": "distinctInstance"}], random.Random(0))
    assert len(result.placements) == 2 and result.failures[0].reason == "ATTRIBUTE"
    assert "distinctInstance" in result.failures[0].detail


def test_member_of_filters_and_dynamic_subjects_are_rechecked() -> None:
    cluster = [
        inst("m", attributes={TYPE: "m5.large"}),
        inst("t", attributes={TYPE: "t2.micro"}),
        inst("m2", attributes={TYPE: "m5.xlarge"}, running_tasks_count=1),
    ]
    member = [{"type": "memberOf", "expression": f"attribute:{TYPE} =~ m5.*"}]
    assert set(run(cluster, WEB, 4, None, member)) == {"m", "m2"}
    busy = [{"type": "memberOf", "expression": "runningTasksCount < 2"}]
    assert sorted(run(cluster, WEB, 10, BINPACK_MEM, busy)) == ["m", "m", "m2", "t", "t"]
    anti = [{"type": "memberOf", "expression": "not(task:group == service:web)"}]
    assert sorted(run(cluster, WEB, 5, None, anti)) == ["m", "m2", "t"]


def test_disconnected_agents_get_nothing() -> None:
    cluster = [inst("off", agent_connected=False), inst("on", memory=512)]
    result = place(cluster, WEB, 2, None, None, random.Random(0))
    assert names(result.placements) == ["on"]
    assert result.failures[0].reason == "RESOURCE:MEMORY"  # 'on' (full) is closer than 'off' (AGENT)


# -- failures and their explanation ------------------------------------------------------------

CPU_EVENT = (
    "(service web) was unable to place a task because no container instance met all of its requirements. "
    "The closest matching (container-instance {id}) has insufficient CPU units available. "
    "For more information, see the Troubleshooting section of the Amazon ECS Developer Guide."
)


def test_cpu_failure_reads_like_the_ecs_event() -> None:
    cluster = [inst("small", cpu=100), inst("closer", cpu=200)]
    failure = place(cluster, WEB, 1, None, None, random.Random(0)).failures[0]
    assert failure.reason == "RESOURCE:CPU" and failure.arn == arn("closer")
    assert failure.message == CPU_EVENT.format(id="closer")
    assert failure.service_event("api") == CPU_EVENT.format(id="closer").replace(
        "(service web)", "(service api)"
    )
    assert "needs 256 CPU units, 200 remain" in failure.detail


@pytest.mark.parametrize(
    ("cluster", "ask", "constraints", "reason", "closest", "text"),
    [
        ([inst("a", memory=100)], WEB, None, "RESOURCE:MEMORY", "a", "has insufficient memory available."),
        (
            [inst("a", ports_tcp=frozenset({80}))],
            replace(WEB, ports_tcp=frozenset({80})),
            None,
            "RESOURCE:PORTS",
            "a",
            "is already using a port required by your task.",
        ),
        ([inst("a", agent_connected=False)], WEB, None, "AGENT", "a", 'encountered error "AGENT".'),
        (
            [inst("a")],
            WEB,
            [{"type": "memberOf", "expression": "attribute:stack == prod"}],
            "ATTRIBUTE",
            "a",
            "is missing an attribute required by your task.",
        ),
        # fewest failed checks wins: b fails CPU only, a fails CPU and memory
        ([inst("a", cpu=0, memory=0), inst("b", cpu=0)], WEB, None, "RESOURCE:CPU", "b", "CPU units"),
        # same count: resource failures beat constraint failures (the allowed instance is full)
        (
            [inst("t", attributes={TYPE: "t2"}), inst("m", cpu=0, attributes={TYPE: "m5"})],
            WEB,
            [{"type": "memberOf", "expression": f"attribute:{TYPE} == m5"}],
            "RESOURCE:CPU",
            "m",
            "CPU units",
        ),
        # same checks: the smaller shortfall wins, then the smaller ARN
        ([inst("a", memory=100), inst("b", memory=500)], WEB, None, "RESOURCE:MEMORY", "b", "memory"),
        ([inst("b", memory=100), inst("a", memory=100)], WEB, None, "RESOURCE:MEMORY", "a", "memory"),
    ],
)
def test_failure_reasons_and_closest(
    cluster: list[Instance], ask: TaskAsk, constraints: Any, reason: str, closest: str, text: str
) -> None:
    result = place(cluster, ask, 2, None, constraints, random.Random(0))
    assert result.placements == []
    assert [f.reason for f in result.failures] == [reason, reason]
    assert result.failures[0].arn == arn(closest)
    assert f"(container-instance {closest}) " in result.failures[0].message
    assert text in result.failures[0].message


def test_empty_cluster_and_zero_tasks() -> None:
    result = place([], WEB, 3, None, None, random.Random(0))
    assert result.placements == [] and len(result.failures) == 3
    assert result.failures[0].reason == "MISSING" and result.failures[0].arn is None
    assert result.failures[0].message.endswith("Reason: No Container Instances were found in your cluster.")
    family = place([], TaskAsk(1, 1, "family:db"), 1, None, None, random.Random(0)).failures[0]
    assert family.message.startswith("(task-group family:db) was unable to place a task")
    assert place([inst("a")], WEB, 0, None, None, random.Random(0)) == place(
        [], WEB, 0, None, None, random.Random(0)
    )
    assert place([inst("a")], WEB, 0, None, None, random.Random(0)).placements == []
    with pytest.raises(InvalidParameterException, match="count must be a non-negative integer"):
        place([inst("a")], WEB, -1, None, None, random.Random(0))
    with pytest.raises(ValueError, match="unique"):
        place([inst("a"), inst("a")], WEB, 1, None, None, random.Random(0))


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategies", "message"),
    [
        ([{"type": "random"}] * 6, "placementStrategy may hold at most 5 strategies (got 6)"),
        ([{"type": "pack"}], "placementStrategy[0].type 'pack' is not valid: use binpack, spread or random"),
        (
            [{"type": "binpack"}],
            "placementStrategy[0].field 'None' is not valid for binpack: use cpu or memory",
        ),
        ([{"type": "binpack", "field": "disk"}], "field 'disk' is not valid for binpack"),
        (
            [{"type": "spread", "field": "zone"}],
            "field 'zone' is not valid for spread: use instanceId, host or",
        ),
        ([{"type": "spread", "field": "attribute:"}], "field 'attribute:' is not valid for spread"),
        ([{"type": "random", "field": "cpu"}], "placementStrategy[0]: the random strategy takes no field"),
        ([{"type": "random", "weight": 1}], "placementStrategy[0] has unknown field(s) ['weight']"),
        (["random"], "placementStrategy[0] must be an object"),
    ],
)
def test_bad_strategies(strategies: Any, message: str) -> None:
    with pytest.raises(InvalidParameterException) as caught:
        parse_strategies(strategies)
    assert message in caught.value.message
    with pytest.raises(InvalidParameterException):
        place([inst("a")], WEB, 1, strategies, None, random.Random(0))


@pytest.mark.parametrize(
    ("constraints", "message"),
    [
        (
            [{"type": "distinctInstance"}] * 11,
            "placementConstraints may hold at most 10 constraints (got 11)",
        ),
        (
            [{"type": "distinctInstance", "expression": "runningTasksCount > 1"}],
            "distinctInstance takes no expression",
        ),
        (
            [{"type": "memberOf"}],
            "placementConstraints[0].expression (a string) is required for type memberOf",
        ),
        ([{"type": "sameZone"}], "placementConstraints[0].type 'sameZone' is not valid"),
        ([{"type": "memberOf", "expression": "x", "why": 1}], "unknown field(s) ['why']"),
        (
            [{"type": "distinctInstance"}, {"type": "memberOf", "expression": "attribute:a =="}],
            "placementConstraints[1].expression: Invalid expression at position 14",
        ),
        ([{"type": "memberOf", "expression": "attribute:a == " + "x" * 1990}], "at most 2000 characters"),
    ],
)
def test_bad_constraints(constraints: Any, message: str) -> None:
    with pytest.raises(InvalidParameterException) as caught:
        parse_constraints(constraints)
    assert message in caught.value.message


def test_specs_normalise_and_accept_values() -> None:
    assert parse_strategies(
        [{"type": "binpack", "field": "MEMORY"}, {"type": "spread", "field": "InstanceId"}]
    ) == (
        PlacementStrategy("binpack", "memory"),
        PlacementStrategy("spread", "instanceId"),
    )
    values = (PlacementStrategy("random"), PlacementStrategy("spread", "attribute:x"))
    assert parse_strategies(values) == values
    assert parse_constraints([PlacementConstraint("distinctInstance")]) == (
        PlacementConstraint("distinctInstance"),
    )
    assert parse_strategies(None) == () and parse_constraints([]) == ()


# -- properties against the brute-force reference ----------------------------------------------

STRATEGY_POOL = [
    {"type": "binpack", "field": "cpu"},
    {"type": "binpack", "field": "memory"},
    {"type": "spread", "field": "instanceId"},
    {"type": "spread", "field": "host"},
    {"type": "spread", "field": f"attribute:{AZ}"},
    {"type": "spread", "field": f"attribute:{TYPE}"},
    {"type": "random"},
]
EXPRESSIONS = [
    f"attribute:{TYPE} =~ m5.*",
    f"attribute:{AZ} in [a, b]",
    f"attribute:{AZ} exists",
    "runningTasksCount < 3",
    "not(task:group == family:db)",
    "task:group != service:web",
    "agentConnected == true || runningTasksCount == 0",
]
GROUPS = ["service:web", "family:db"]

instances_st = st.lists(
    st.builds(
        lambda k, cpu, mem, tcp, udp, az, itype, up, running, groups: Instance(
            arn=arn(f"{k:02d}"),
            ec2_instance_id=f"i-{k:02d}",
            cpu=cpu,
            memory=mem,
            ports_tcp=frozenset(tcp),
            ports_udp=frozenset(udp),
            attributes={TYPE: itype, **({AZ: az} if az else {})},
            agent_connected=up,
            running_tasks_count=running,
            task_groups=groups,
        ),
        st.integers(0, 30),
        st.sampled_from([-128, 0, 128, 256, 512, 1024]),
        st.sampled_from([0, 128, 256, 512, 1024]),
        st.sets(st.sampled_from([80, 443, 8080]), max_size=2),
        st.sets(st.just(53), max_size=1),
        st.sampled_from(["a", "b", "c", None]),
        st.sampled_from(["t2.micro", "m5.large", "m5.xlarge"]),
        st.sampled_from([True, True, True, True, False]),
        st.integers(0, 4),
        st.dictionaries(st.sampled_from(GROUPS), st.integers(0, 2)),
    ),
    max_size=9,
    unique_by=lambda i: i.arn,
)
asks_st = st.builds(
    TaskAsk,
    cpu=st.sampled_from([0, 128, 256]),
    memory=st.sampled_from([0, 128, 256]),
    group=st.sampled_from(GROUPS),
    ports_tcp=st.sets(st.sampled_from([80, 8080]), max_size=1).map(frozenset),
    ports_udp=st.sets(st.just(53), max_size=1).map(frozenset),
)
strategies_st = st.lists(st.sampled_from(STRATEGY_POOL), max_size=5)
constraints_st = st.lists(
    st.one_of(
        st.just({"type": "distinctInstance"}),
        st.sampled_from(EXPRESSIONS).map(lambda e: {"type": "memberOf", "expression": e}),
    ),
    max_size=3,
)


@settings(max_examples=600, deadline=None)
@given(instances_st, asks_st, st.integers(0, 14), strategies_st, constraints_st, st.integers(0, 2**32))
def test_engine_chooses_exactly_what_brute_force_chooses(
    instances: list[Instance], ask: TaskAsk, count: int, strategies: Any, constraints: Any, seed: int
) -> None:
    fast = place(instances, ask, count, strategies, constraints, random.Random(seed))
    slow = place_brute_force(instances, ask, count, strategies, constraints, random.Random(seed))
    assert fast == slow
    assert len(fast.placements) + len(fast.failures) == count


@settings(max_examples=400, deadline=None)
@given(instances_st, asks_st, st.integers(0, 14), strategies_st, constraints_st, st.integers(0, 2**32))
def test_never_oversubscribed_and_constraints_always_hold(
    instances: list[Instance], ask: TaskAsk, count: int, strategies: Any, constraints: Any, seed: int
) -> None:
    before = list(instances)
    result = place(instances, ask, count, strategies, constraints, random.Random(seed))
    assert instances == before  # inputs untouched
    state = {i.arn: i for i in instances}
    predicates = [compile_expression(c["expression"]) for c in constraints if c["type"] == "memberOf"]
    distinct = any(c["type"] == "distinctInstance" for c in constraints)
    for chosen in result.placements:  # replay: each choice was allowed at the moment it was made
        i = state[chosen]
        assert i.agent_connected and i.cpu >= ask.cpu and i.memory >= ask.memory
        assert not (i.ports_tcp & ask.ports_tcp) and not (i.ports_udp & ask.ports_udp)
        assert all(p(i) for p in predicates)
        assert not (distinct and i.task_groups.get(ask.group, 0))
        state[chosen] = replace(
            i,
            cpu=i.cpu - ask.cpu,
            memory=i.memory - ask.memory,
            ports_tcp=i.ports_tcp | ask.ports_tcp,
            ports_udp=i.ports_udp | ask.ports_udp,
            running_tasks_count=i.running_tasks_count + 1,
            task_groups={**i.task_groups, ask.group: i.task_groups.get(ask.group, 0) + 1},
        )
    for original in instances:
        used = Counter(result.placements)[original.arn]
        if used:
            assert used * ask.cpu <= original.cpu and used * ask.memory <= original.memory
            assert used == 1 or not (ask.ports_tcp or ask.ports_udp)
    if result.failures:  # nothing was left that could take one more task
        assert all(
            f.reason in {"AGENT", "RESOURCE:CPU", "RESOURCE:MEMORY", "RESOURCE:PORTS", "ATTRIBUTE", "MISSING"}
            for f in result.failures
        )
        assert (result.failures[0].reason == "MISSING") == (not instances)
        assert result.failures[0].arn in state or not instances


@settings(max_examples=50, deadline=None)
@given(asks_st, st.integers(1, 5), strategies_st, constraints_st)
def test_empty_cluster_always_explains(ask: TaskAsk, count: int, strategies: Any, constraints: Any) -> None:
    result = place([], ask, count, strategies, constraints, random.Random(0))
    assert result.placements == [] and [f.reason for f in result.failures] == ["MISSING"] * count
    assert "No Container Instances were found in your cluster." in result.failures[0].message
