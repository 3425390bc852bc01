"""Container output as CloudWatch Logs events: splitting, cleaning, keys, cursors and batches."""

from __future__ import annotations

from portside.core import awslogs
from portside.core.log_events import (
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_MESSAGE_BYTES,
    Cursor,
    Event,
    EventReader,
    advance,
    batch_problem,
    batches,
    clean,
    split_message,
)


def test_invalid_utf8_and_nul_become_replacement_characters_and_control_chars_stay() -> None:
    assert clean(b"ok \xff\xfe bad\x00nul \x1b[31m\n") == "ok \ufffd\ufffd bad\ufffdnul \x1b[31m"


def test_long_lines_split_at_the_event_limit_between_characters() -> None:
    text = "é" * MAX_MESSAGE_BYTES  # two bytes each: a cut at the limit would fall inside one
    pieces = split_message(text)
    assert "".join(pieces) == text
    assert all(len(p.encode()) <= MAX_MESSAGE_BYTES for p in pieces) and len(pieces) == 2
    assert split_message("short") == ["short"]


def test_reading_again_from_a_cursor_skips_exactly_what_was_shipped() -> None:
    lines = [(10, b"a"), (10, b"b"), (11, b"c"), (12, b"x" * (MAX_MESSAGE_BYTES + 5)), (13, b"d")]
    first = EventReader(Cursor())
    everything = [e for ts, raw in lines for e in first.events(ts, raw)]
    assert [e.key for e in everything] == ["10:0", "10:1", "11:0", "12:0", "12:1", "13:0"]
    for shipped in range(len(everything) + 1):
        cursor = advance(Cursor(), everything[:shipped])
        again = EventReader(cursor)
        rest = [e for ts, raw in lines for e in again.events(ts, raw)]
        assert rest == everything[shipped:], shipped


def test_a_cursor_never_moves_back_over_events_read_again() -> None:
    cursor = Cursor(200, 2)
    again = [Event("150:0", 150, "old"), Event("200:0", 200, "x"), Event("200:1", 200, "y")]
    assert advance(cursor, again) == Cursor(200, 2)
    assert advance(cursor, [*again, Event("200:2", 200, "z")]) == Cursor(200, 3)
    assert advance(cursor, [Event("250:0", 250, "new")]) == Cursor(250, 1)


def test_batches_are_bounded_as_put_log_events() -> None:
    many = [Event(f"1:{i}", 1, "x") for i in range(MAX_BATCH_EVENTS + 1)]
    assert [len(b) for b in batches(many)] == [MAX_BATCH_EVENTS, 1]
    big = [Event(f"1:{i}", 1, "y" * MAX_MESSAGE_BYTES) for i in range(5)]
    sized = list(batches(big))
    assert all(sum(e.size for e in b) <= MAX_BATCH_BYTES for b in sized) and sum(map(len, sized)) == 5
    assert batch_problem(["x"] * (MAX_BATCH_EVENTS + 1)) is not None
    assert batch_problem(["y" * MAX_MESSAGE_BYTES] * 5) is not None
    assert batch_problem(["fine"]) is None


def test_stream_names_as_ecs_forms_them() -> None:
    definition = {"logConfiguration": {"logDriver": "awslogs", "options": {
        "awslogs-group": "/ecs/web", "awslogs-stream-prefix": "ecs", "awslogs-create-group": "true"}}}
    settings = awslogs.awslogs_of(definition, "us-east-1")
    assert settings == awslogs.AwsLogs("/ecs/web", "us-east-1", "ecs", True)
    assert awslogs.stream_name(settings, "app", "0123abcd", "f00d") == "ecs/app/0123abcd"
    bare = awslogs.awslogs_of({"logConfiguration": {"logDriver": "awslogs", "options": {
        "awslogs-group": "g", "awslogs-region": "eu-west-1"}}}, "us-east-1")
    assert bare is not None and bare.region == "eu-west-1" and not bare.create_group
    assert awslogs.stream_name(bare, "app", "0123abcd", "f00d") == "f00d"  # Docker's default: the container id
    assert awslogs.awslogs_of({"logConfiguration": {"logDriver": "json-file"}}, "us-east-1") is None
