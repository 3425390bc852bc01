"""No input makes the API answer 500: property-based requests to a real server, every operation.

Inputs are generated from botocore's own input shapes for every operation portside serves
(ECS and Application Auto Scaling over JSON 1.1, ELBv2 over the query protocol): structures
mostly with their required members (to get past validation) and any optional ones, lists and maps of a few items, enum values and arbitrary text,
lone surrogates included (``"\\ud800"``, which JSON can carry and UTF-8 cannot), numbers at and
beyond their bounds and, for JSON, now and then a value of the wrong type. Each request is
serialised as botocore would (JSON body; the query serializer's form), signed with SigV4 and sent
over a real socket to a real ``portside server`` process. The property: the answer is never a
5xx, and always a well-formed AWS answer.

Bounded: MAX_EXAMPLES per operation keeps the whole module well under a minute (about 12 s here
for 56 operations). Against the code before lone surrogates were refused at the edge, 30
examples per operation already found 500s (DeleteCluster and RunTask with "\\ud800").
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import botocore.session
import pytest
from botocore.model import OperationModel, Shape
from botocore.serialize import create_serializer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portside.api import autoscaling, ecs, elbv2
from tests.integration.conftest import remove_server_containers
from tests.support.server import PortsideProcess
from tests.support.signing import FORM_CONTENT_TYPE, JSON_CONTENT_TYPE, signed_post

pytestmark = pytest.mark.docker

MAX_EXAMPLES = 40
MAX_DEPTH = 5  # deeper structures are sent empty: the models nest (rule conditions) but input rarely does

SESSION = botocore.session.get_session()
# (botocore service name, X-Amz-Target prefix or None for query, the operations portside serves)
APIS = [
    ("ecs", ecs.TARGET_PREFIX, sorted(ecs.OPERATIONS)),
    ("application-autoscaling", autoscaling.TARGET_PREFIX, sorted(autoscaling.OPERATIONS)),
    ("elbv2", None, sorted(elbv2.OPERATIONS)),
]
CASES = [(service, prefix, op) for service, prefix, ops in APIS for op in ops]

# Strings that reach deeper than random text: real names and ARNs, edges, and what UTF-8 cannot hold.
INTERESTING = [
    "", " ", "default", "0", "-1", "a" * 300, "\ud800", "x\udfffy", "\x00", "é", "☃", "HTTP", "ip", "instance",
    "arn:aws:ecs:us-east-1:000000000000:cluster/default",
    "arn:aws:ecs:us-east-1:000000000000:task-definition/none:1",
    "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/none/0123456789abcdef",
    "arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/none/0123456789abcdef",
    "service/default/none", "ecs:service:DesiredCount", "ecs",
]
TEXT = st.one_of(
    st.sampled_from(INTERESTING),
    st.text(st.characters(exclude_categories=()), max_size=12),  # any code point, surrogates included
    st.text(string.ascii_letters + string.digits + "-_:/.", max_size=24),
)
JUNK = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=3), st.lists(st.integers(), max_size=2), st.just({}))


def _strategy(shape: Shape, depth: int, junk: bool) -> st.SearchStrategy[Any]:
    """Values for one botocore shape; ``junk``: sometimes a value of another type (JSON only)."""
    kind = shape.type_name
    if kind == "structure":
        if depth >= MAX_DEPTH:
            strategy: st.SearchStrategy[Any] = st.just({})
        else:
            members = {name: _strategy(member, depth + 1, junk) for name, member in shape.members.items()}
            required = {name: members[name] for name in shape.required_members if name in members}
            optional = {name: s for name, s in members.items() if name not in required}
            # Mostly with every required member (to get past validation into the operation), sometimes any subset.
            strategy = st.one_of(
                st.fixed_dictionaries(required, optional=optional),
                st.fixed_dictionaries(required, optional=optional),
                st.fixed_dictionaries({}, optional=members),
            )
    elif kind == "list":
        strategy = st.just([]) if depth >= MAX_DEPTH else st.lists(_strategy(shape.member, depth + 1, junk), max_size=3)
    elif kind == "map":
        strategy = st.just({}) if depth >= MAX_DEPTH else st.dictionaries(
            _strategy(shape.key, depth + 1, False), _strategy(shape.value, depth + 1, junk), max_size=2
        )
    elif kind == "string":
        enum = shape.enum
        strategy = st.one_of(st.sampled_from(enum), TEXT) if enum else TEXT
    elif kind in ("integer", "long"):
        low, high = (-(2**31), 2**31 - 1) if kind == "integer" else (-(2**63), 2**63 - 1)
        strategy = st.one_of(st.integers(-2, 70000), st.integers(low, high), st.sampled_from([low, high, 0, 1]))
    elif kind == "boolean":
        strategy = st.booleans()
    elif kind in ("double", "float"):
        strategy = st.floats(allow_nan=False, allow_infinity=False, width=64)
    elif kind == "timestamp":
        strategy = st.integers(0, 2**33)
    else:  # blob and anything newer: text is what a client would send
        strategy = TEXT
    if junk and kind not in ("structure",):
        return st.one_of(strategy, JUNK) if depth else strategy
    return strategy


def _request(service: str, prefix: str | None, operation: OperationModel, params: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """Body and headers as botocore would put them on the wire (unsigned)."""
    if prefix is not None:
        body = json.dumps(params).encode()  # ensure_ascii: a lone surrogate travels as \\ud800
        return body, {"Content-Type": JSON_CONTENT_TYPE, "X-Amz-Target": prefix + operation.name}
    form = create_serializer("query", include_validation=False).serialize_to_request(params, operation)["body"]
    # What a client that does not validate sends for a lone surrogate: its UTF-8-ish bytes, percent-encoded.
    return urlencode(form, encoding="utf-8", errors="surrogatepass").encode(), {"Content-Type": FORM_CONTENT_TYPE}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[PortsideProcess]:
    process = PortsideProcess(tmp_path_factory.mktemp("fuzz"))
    process.start()
    try:
        yield process
    finally:
        process.stop()
        remove_server_containers(docker_client, process)  # should the input ever have started one


@pytest.mark.parametrize(("service", "prefix", "name"), CASES, ids=[f"{s}.{n}" for s, _, n in CASES])
def test_no_input_is_a_server_error(server: PortsideProcess, service: str, prefix: str | None, name: str) -> None:
    operation = SESSION.get_service_model(service).operation_model(name)
    inputs = _strategy(operation.input_shape, 0, junk=prefix is not None) if operation.input_shape else st.just({})

    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(params=inputs)
    def check(params: dict[str, Any]) -> None:
        body, headers = _request(service, prefix, operation, params)
        reply = signed_post(server.endpoint, body, headers)
        assert reply.status < 500, f"{name} {body[:2000]!r} -> {reply.status} {reply.body[:500]}"
        if reply.status >= 400:
            if prefix is not None:
                assert json.loads(reply.body)["__type"], reply.body
            else:
                assert "<Code>" in reply.body, reply.body

    check()
