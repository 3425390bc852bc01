"""Docker's ``logs --timestamps`` frames back into lines (agent/docker_log_frames.py)."""

from __future__ import annotations

from portside.agent.docker_log_frames import DOCKER_MESSAGE_BYTES, frame_lines, raw_lines

T1 = b"2026-12-06T20:42:57.126543589Z "
T2 = b"2026-12-06T20:42:57.127004302Z "
NS1 = 1796589777126543589


def test_whole_messages_and_a_long_line_in_pieces() -> None:
    piece = b"a" * DOCKER_MESSAGE_BYTES
    frames = [T1 + b"short\n", T1 + piece, T1 + piece, T1 + b"tail", T2 + b"next\n"]
    assert list(frame_lines(frames)) == [
        (NS1, b"short"), (NS1, piece + piece + b"tail"), (NS1 + 460713, b"next")]


def test_a_line_of_exactly_whole_pieces_ends_at_the_next_message() -> None:
    piece = b"b" * DOCKER_MESSAGE_BYTES
    assert list(frame_lines([T1 + piece, T2 + b"after\n"])) == [(NS1, piece), (NS1 + 460713, b"after")]
    assert list(frame_lines([T1 + piece])) == [(NS1, piece)]  # the stream ended: what is pending is a line


def test_a_tty_stream_is_split_on_newlines_wherever_chunks_break() -> None:
    data = T1 + b"one\r\n" + T2 + b"two\r\n"
    chunks = [data[:10], data[10:40], data[40:]]
    assert list(raw_lines(chunks)) == [(NS1, b"one"), (NS1 + 460713, b"two")]


def test_an_endless_line_is_handed_on_in_bounded_parts() -> None:
    from portside.agent.docker_log_frames import MAX_LINE_BYTES

    piece = b"c" * DOCKER_MESSAGE_BYTES
    count = MAX_LINE_BYTES // DOCKER_MESSAGE_BYTES * 3 + 1
    lines = list(frame_lines([T1 + piece] * count + [T1 + b"end"]))
    assert all(len(line) <= MAX_LINE_BYTES for _, line in lines)
    assert b"".join(line for _, line in lines) == piece * count + b"end"
    raw = list(raw_lines([T1 + b"d" * (3 * MAX_LINE_BYTES)]))
    assert len(raw) >= 2 and sum(len(line) for _, line in raw) >= 3 * MAX_LINE_BYTES - 200
