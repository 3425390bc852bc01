"""portside.core.cluster_query: the ECS cluster query language compiled to predicates.

Table tests pin each subject, operator and error message; Hypothesis builds random boolean
trees of comparisons, renders them as text, and checks the compiled predicate equals the
same tree evaluated in Python (precedence, parentheses, ``not``), and that every negative
operator is exactly the negation of its positive twin.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portside.core.cluster_query import MAX_EXPRESSION_LENGTH, compile_expression
from portside.errors import InvalidParameterException

REGISTERED = datetime(2018, 6, 18, 22, 28, 28, tzinfo=UTC).timestamp()


@dataclass
class View:
    agent_connected: bool = True
    agent_version: str = "1.70.0"
    attributes: dict[str, str] = field(
        default_factory=lambda: {
            "ecs.instance-type": "t2.micro",
            "ecs.availability-zone": "us-east-1a",
            "stack": "prod",
            "weight": "10",
        }
    )
    ec2_instance_id: str = "i-0abc"
    registered_at: float = REGISTERED
    running_tasks_count: int = 1
    task_groups: dict[str, int] = field(default_factory=lambda: {"service:production": 1, "family:db": 0})


V = View()


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # ECS documentation examples (cluster-query-language.md)
        ("attribute:ecs.instance-type == t2.micro", True),
        ("attribute:ecs.availability-zone in [us-east-1a, us-east-1b]", True),
        ("attribute:ecs.instance-type =~ g2.* and attribute:ecs.availability-zone != us-east-1d", False),
        ("task:group == service:production", True),
        ("not(task:group == database)", True),
        ("runningTasksCount == 1", True),
        ("agentVersion < 1.14.5", False),
        ("registeredAt < 2018-02-13", False),
        ("ec2InstanceId in ['i-abcd1234', 'i-0abc']", True),
        # word operators and keywords, any case
        ("attribute:stack equals prod AND runningTasksCount less_than_equal 1", True),
        ("attribute:stack NOT_EQUALS prod or agentVersion greater_than 1.9", True),
        ("attribute:stack matches pr.d && attribute:stack not_matches x.*", True),
        ("attribute:nope not_exists", True),
        ("attribute:stack not_in [dev, test]", True),
        ("runningTasksCount greater_than_equal 2", False),
        # wildcards on == / != / in (ECS: attribute:ecs.instance-type == t2.*)
        ("attribute:ecs.instance-type == t2.*", True),
        ("attribute:ecs.instance-type == *.micro", True),
        ("attribute:ecs.instance-type != t2.*", False),
        ("attribute:ecs.instance-type in [m5.*, t2.*]", True),
        ("attribute:ecs.instance-type == t2.", False),
        ("attribute:ecs.instance-type == t2?micro", False),  # only * is special
        # regex: full match, ASCII classes, quoted when it holds parentheses
        ("attribute:ecs.instance-type =~ t2", False),
        ("attribute:ecs.instance-type =~ t2\\.\\w+", True),
        ("attribute:ecs.instance-type =~ '(t2|m5)\\..*'", True),
        ("attribute:ecs.instance-type !~ '(t2|m5)\\..*'", False),
        # missing attribute: positives false, negatives true
        ("attribute:nope == x", False),
        ("attribute:nope != x", True),
        ("attribute:nope in [x]", False),
        ("attribute:nope !in [x]", True),
        ("attribute:nope =~ .*", False),
        ("attribute:nope !~ .*", True),
        ("attribute:nope > 1", False),
        ("attribute:stack exists", True),
        # ordering on attributes: numbers as numbers, else strings
        ("attribute:weight > 9", True),
        ("attribute:weight < 9", False),
        ("attribute:stack > pre", True),
        # task:group is multi-valued; zero counts do not count
        ("task:group == family:db", False),
        ("task:group != family:db", True),
        ("task:group != service:production", False),
        ("task:group in [family:db, service:*]", True),
        ("task:group =~ service:.*", True),
        ("task:group exists", True),
        # agentConnected, agentVersion, registeredAt
        ("agentConnected == true", True),
        ("agentConnected == FALSE", False),
        ("agentConnected in [false]", False),
        ("agentConnected =~ t.*", True),
        ("agentVersion > 1.9.0", True),  # 70 > 9 as numbers, not as strings
        ("agentVersion == 1.70.*", True),
        ("agentVersion <= 1.70.0", True),
        ("registeredAt == 2018-06-18T22:28:28Z", True),
        ("registeredAt == 2018-06-18T22:28:28+00:00", True),
        ("registeredAt == 2018-06-18T22:28:28", True),
        ("registeredAt > 2018-06-18", True),
        ("registeredAt < 2018-06-19", True),
        (f"registeredAt >= {REGISTERED}", True),
        ("ec2InstanceId =~ i-0.*", True),
        # precedence: && binds tighter than ||; ! binds tightest
        ("runningTasksCount == 0 || runningTasksCount == 1 && attribute:stack == prod", True),
        ("(runningTasksCount == 0 || runningTasksCount == 1) && attribute:stack == dev", False),
        ("!runningTasksCount == 0 && !(attribute:stack == dev)", True),
        ("not not runningTasksCount == 1", True),
        ("runningTasksCount==1&&attribute:stack==prod", True),
        ("  ( ( runningTasksCount == 1 ) )  ", True),
    ],
)
def test_expressions(expression: str, expected: bool) -> None:
    assert compile_expression(expression)(V) is expected


def test_disconnected_agent_and_other_values() -> None:
    view = View(agent_connected=False, running_tasks_count=0, task_groups={})
    assert compile_expression("agentConnected == false")(view)
    assert compile_expression("agentConnected != true")(view)
    assert compile_expression("task:group !exists")(view)
    assert not compile_expression("task:group == service:production")(view)
    assert compile_expression("runningTasksCount == 0")(view)


@pytest.mark.parametrize(
    ("expression", "position", "fragment"),
    [
        ("", 0, "the expression is empty"),
        ("   ", 3, "the expression is empty"),
        ("foo == 1", 0, "expected a subject"),
        ("attribute: == 1", 9, "expected an attribute name after 'attribute:'"),
        ("attribute == 1", 9, "expected an attribute name"),
        ("attribute:x", 11, "expected an operator"),
        ("attribute:x ~= 1", 12, "expected an operator"),
        ("attribute:x == ", 15, "expected a value"),
        ("attribute:x == 1 junk", 17, "expected '&&', '||' or the end"),
        ("attribute:x == 1 &&", 19, "expected a subject"),
        ("(attribute:x == 1", 17, "expected ')' to close the '(' at position 0"),
        ("attribute:x == 1)", 16, "expected '&&', '||' or the end"),
        ("attribute:x in [a, b", 20, "expected ',' or ']'"),
        ("attribute:x in [a,, b]", 18, "expected a value"),
        ("attribute:x == 'open", 15, "unterminated quoted value"),
        ("attribute:x =~ '['", 15, "invalid regular expression '['"),
        ("runningTasksCount == many", 21, "runningTasksCount compares with an integer (got 'many')"),
        ("runningTasksCount in [1]", 18, "operator 'in' is not valid for subject 'runningTasksCount'"),
        ("agentConnected > 1", 15, "operator '>' is not valid for subject 'agentConnected'"),
        ("agentConnected == yes", 18, "agentConnected compares with true or false"),
        ("ec2InstanceId exists", 14, "operator 'exists' is not valid"),
        ("registeredAt < yesterday", 15, "registeredAt compares with a date"),
        ("task:group > a", 11, "operator '>' is not valid for subject 'task:group'"),
        ("attribute:x !inx [a]", 12, "expected an operator"),
    ],
)
def test_parse_errors_name_the_position(expression: str, position: int, fragment: str) -> None:
    with pytest.raises(InvalidParameterException) as caught:
        compile_expression(expression)
    assert f"at position {position} " in caught.value.message
    assert fragment in caught.value.message


def test_length_limit() -> None:
    base = "attribute:x == "
    ok = base + "a" * (MAX_EXPRESSION_LENGTH - len(base))
    assert compile_expression(ok)(View(attributes={"x": "a" * (MAX_EXPRESSION_LENGTH - len(base))}))
    with pytest.raises(InvalidParameterException, match="at most 2000 characters"):
        compile_expression(ok + "a")


def test_predicate_reports_subjects_and_dynamic() -> None:
    p = compile_expression("attribute:stack == prod && (runningTasksCount < 3 || ec2InstanceId == i-1)")
    assert p.subjects == {"attribute:stack", "runningTasksCount", "ec2InstanceId"}
    assert p.dynamic
    assert not compile_expression("attribute:ecs.instance-type =~ m5.*").dynamic
    assert compile_expression("not(task:group == database)").dynamic
    assert p.text.startswith("attribute:stack")


# -- properties --------------------------------------------------------------------------------

ATOMS = [
    ("attribute:stack == prod", lambda v: v.attributes.get("stack") == "prod"),
    ("attribute:zone in [a, b]", lambda v: v.attributes.get("zone") in ("a", "b")),
    ("attribute:stack exists", lambda v: "stack" in v.attributes),
    ("runningTasksCount > 1", lambda v: v.running_tasks_count > 1),
    ("task:group == service:web", lambda v: v.task_groups.get("service:web", 0) > 0),
    ("agentConnected == true", lambda v: v.agent_connected),
]

views = st.builds(
    View,
    agent_connected=st.booleans(),
    attributes=st.fixed_dictionaries(
        {}, optional={"stack": st.sampled_from(["prod", "dev"]), "zone": st.sampled_from("abc")}
    ),
    running_tasks_count=st.integers(0, 3),
    task_groups=st.dictionaries(st.sampled_from(["service:web", "family:db"]), st.integers(0, 2)),
)

trees = st.recursive(
    st.integers(0, len(ATOMS) - 1),
    lambda inner: st.one_of(
        st.tuples(st.sampled_from(["!", "not "]), inner),
        st.tuples(inner, st.sampled_from(["&&", "and", "||", "OR"]), inner),
    ),
    max_leaves=8,
)


def render(tree: object) -> str:
    if isinstance(tree, int):
        return ATOMS[tree][0]
    if len(tree) == 2:  # type: ignore[arg-type]
        neg, inner = tree  # type: ignore[misc]
        return f"{neg}({render(inner)})"
    left, op, right = tree  # type: ignore[misc]
    return f"({render(left)}) {op} ({render(right)})"


def evaluate(tree: object, view: View) -> bool:
    if isinstance(tree, int):
        return bool(ATOMS[tree][1](view))
    if len(tree) == 2:  # type: ignore[arg-type]
        return not evaluate(tree[1], view)  # type: ignore[index]
    left, op, right = tree  # type: ignore[misc]
    if op.lower() in ("&&", "and"):
        return evaluate(left, view) and evaluate(right, view)
    return evaluate(left, view) or evaluate(right, view)


@given(trees, views)
def test_boolean_structure_matches_python(tree: object, view: View) -> None:
    assert compile_expression(render(tree))(view) is evaluate(tree, view)


@given(st.lists(st.sampled_from([i for i, _ in enumerate(ATOMS)]), min_size=2, max_size=5), views)
def test_and_binds_tighter_than_or(atoms: list[int], view: View) -> None:
    # a || b && c || d ... without parentheses == any of the &&-groups, as in C and ECS
    text = " || ".join(f"{ATOMS[a][0]} && {ATOMS[b][0]}" for a, b in itertools.pairwise(atoms))
    expected = any(ATOMS[a][1](view) and ATOMS[b][1](view) for a, b in itertools.pairwise(atoms))
    assert compile_expression(text)(view) is expected


@given(
    st.sampled_from(["attribute:stack", "attribute:zone", "task:group", "ec2InstanceId"]),
    st.sampled_from([("==", "!="), ("in", "!in"), ("=~", "!~"), ("exists", "!exists")]),
    st.sampled_from(["prod", "a", "service:web", "i-0abc", ".*", "pr.*", "[a, prod]"]),
    views,
)
def test_negative_operator_is_not_positive(
    subject: str, pair: tuple[str, str], value: str, view: View
) -> None:
    positive, negative = pair
    if subject == "ec2InstanceId" and positive == "exists":
        return
    argument = "" if positive == "exists" else value
    if positive == "in" and not argument.startswith("["):
        argument = f"[{argument}]"
    if positive != "in" and argument.startswith("["):
        argument = "prod"
    pos = compile_expression(f"{subject} {positive} {argument}")
    neg = compile_expression(f"{subject} {negative} {argument}")
    assert neg(view) is (not pos(view))
