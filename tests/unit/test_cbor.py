"""portside's CBOR codec (api/cbor.py): botocore's own encoder and decoder agree with it, and
hostile bodies are refused without allocating what they claim."""

from __future__ import annotations

import math
import struct
import tracemalloc
from datetime import UTC, datetime

import botocore.parsers
import botocore.serialize
import botocore.session
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portside.api import cbor

MODEL = botocore.session.get_session().get_service_model("cloudwatch")


def test_what_botocore_sends_decodes_to_its_parameters() -> None:
    op = MODEL.operation_model("PutMetricData")
    params = {"Namespace": "Shop", "MetricData": [{
        "MetricName": "Latency", "Dimensions": [{"Name": "Host", "Value": "å"}], "Timestamp": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "Values": [1.5, -2.25, 1e300], "Counts": [1.0, 2.0, 3.0], "Unit": "Seconds", "StorageResolution": 60,
    }]}
    body = botocore.serialize.create_serializer("smithy-rpc-v2-cbor").serialize_to_request(params, op)["body"]
    decoded = cbor.decode(body)
    assert decoded == params


def test_what_we_send_botocore_parses() -> None:
    op = MODEL.operation_model("GetMetricStatistics")
    result = {"Label": "Latency", "Datapoints": [
        {"Timestamp": datetime(2026, 1, 2, 3, 4, tzinfo=UTC), "Sum": 3.5, "SampleCount": 2.0, "Unit": "Seconds"}]}
    parser = botocore.parsers.create_parser("smithy-rpc-v2-cbor")
    parsed = parser.parse({"body": cbor.encode(result), "headers": {}, "status_code": 200}, op.output_shape)
    assert parsed["Label"] == "Latency"
    assert parsed["Datapoints"][0]["Timestamp"].timestamp() == datetime(2026, 1, 2, 3, 4, tzinfo=UTC).timestamp()
    assert parsed["Datapoints"][0]["Sum"] == 3.5


def test_every_width_of_integer_and_float_and_indefinite_items() -> None:
    assert cbor.decode(b"\x17") == 23 and cbor.decode(b"\x18\x18") == 24 and cbor.decode(b"\x19\x01\x00") == 256
    assert cbor.decode(b"\x1a\x00\x01\x00\x00") == 65536 and cbor.decode(b"\x1b" + (2**40).to_bytes(8, "big")) == 2**40
    assert cbor.decode(b"\x38\x63") == -100
    assert cbor.decode(b"\xf9\x3c\x00") == 1.0  # half
    assert cbor.decode(b"\xfa" + struct.pack(">f", 0.5)) == 0.5
    assert math.isinf(cbor.decode(b"\xf9\x7c\x00"))
    assert cbor.decode(b"\x7f\x62ab\x61c\xff") == "abc"  # indefinite text in chunks
    assert cbor.decode(b"\x5f\x41\x01\x41\x02\xff") == b"\x01\x02"
    assert cbor.decode(b"\x9f\x01\x02\xff") == [1, 2]
    assert cbor.decode(b"\xbf\x61a\x01\xff") == {"a": 1}
    assert cbor.decode(b"\xf4") is False and cbor.decode(b"\xf5") is True
    assert cbor.decode(b"\xf6") is None and cbor.decode(b"\xf7") is None
    assert cbor.decode(b"\xc1\x1a\x00\x00\x00\x3c") == datetime.fromtimestamp(60, tz=UTC)


@pytest.mark.parametrize(("body", "says"), [
    (b"", "truncated"),
    (b"\x62a", "truncated"),  # a 2-byte string with 1 byte
    (b"\xa1\x61", "longer than the body"),
    (b"\xa1\x61a", "truncated"),
    (b"\x9f\x01", "no break"),
    (b"\x01\x02", "unexpected bytes"),
    (b"\x1c", "reserved"),
    (b"\xff", "break"),
    (b"\xc2\x41\x01", "tag 2"),  # bignum: not used by AWS
    (b"\xc1\x61a", "finite number"),
    (b"\xc1\xfb" + struct.pack(">d", math.inf), "finite number"),
    (b"\xc1\x1b" + (2**62).to_bytes(8, "big"), "out of range"),
    (b"\xa1\x01\x01", "not a text string"),
    (b"\xa2\x61a\x01\x61a\x02", "repeated"),
    (b"\x62\xff\xfe", "not UTF-8"),
    (b"\x7f\x41a\xff", "chunk"),  # a byte-string chunk inside a text string
    (b"\x7f\x7f\xff\xff", "chunk"),  # nested indefinite chunk
    (b"\xf8\x20", "simple value"),
])
def test_malformed_bodies_are_refused_saying_why(body: bytes, says: str) -> None:
    with pytest.raises(cbor.CborError, match=says):
        cbor.decode(body)


@pytest.mark.parametrize("body", [
    b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff",  # an array of 2**64-1 items
    b"\xbb\x7f\xff\xff\xff\xff\xff\xff\xff",  # a map of 2**63-1 pairs
    b"\x5b\x00\x00\x00\x01\x00\x00\x00\x00",  # a 4 GiB byte string
    b"\x7b\xff\xff\xff\xff\xff\xff\xff\xff\x61",  # a 16 EiB text string
])
def test_huge_declared_lengths_do_not_allocate(body: bytes) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(cbor.CborError, match="longer than the body|truncated"):
            cbor.decode(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


@pytest.mark.parametrize("opener", [b"\x81", b"\x9f", b"\xa1\x61a", b"\xc1"])
def test_deep_nesting_is_refused(opener: bytes) -> None:
    with pytest.raises(cbor.CborError, match="nest"):
        cbor.decode(opener * 10_000 + b"\x00")
    cbor.decode(b"\x81" * (cbor.MAX_DEPTH - 1) + b"\x00")  # as deep as allowed is fine


json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1) | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_like)
def test_encode_then_decode_is_the_identity(value: object) -> None:
    assert cbor.decode(cbor.encode(value)) == value


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_cbor_error_only(data: bytes) -> None:
    try:
        cbor.decode(data)
    except cbor.CborError:
        pass


def test_encoding_refuses_what_cbor_cannot_say() -> None:
    with pytest.raises(ValueError):
        cbor.encode(2**64)
    with pytest.raises(ValueError):
        cbor.encode({1: "a"})
    with pytest.raises(ValueError):
        cbor.encode(object())
