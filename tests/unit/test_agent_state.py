"""What an agent keeps on its host (agent/state.py): a round trip through a real file, readable by its
owner only whatever the umask, replaced atomically, and an unreadable file named in the error."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from portside.agent.state import STATE_FILE, AgentState

ARN = "arn:aws:ecs:us-east-1:000000000000:container-instance/default/" + "a" * 32


@pytest.fixture
def loose_umask() -> Iterator[None]:
    previous = os.umask(0o000)  # a umask that would leave a plain open() world-readable and writable
    try:
        yield
    finally:
        os.umask(previous)


def full_state(state_dir: Path) -> AgentState:
    state = AgentState.load(state_dir)
    state.instance_arn = ARN
    state.revision = 41
    state.ports = {
        "range": [49153, 65535],
        "held": {"49162": "task-1"},
        "quarantine": {"49170": 1_700_000_000.0},
    }
    state.tasks = {"arn:task/1": {"id": "1", "containers": [{"name": "web"}]}}
    state.definitions = {"arn:td/web:1": {"family": "web", "revision": 1}}
    state.stopped = {"arn:task/0": {"at": 1_700_000_000.0, "task": {"id": "0"}}}
    return state


def test_a_missing_file_is_a_fresh_agent(tmp_path: Path) -> None:
    state = AgentState.load(tmp_path / "never")
    assert (
        state.instance_arn,
        state.revision,
        state.ports,
        state.tasks,
        state.definitions,
        state.stopped,
    ) == (None, 0, None, {}, {}, {})
    assert state.path == tmp_path / "never" / STATE_FILE


def test_save_then_load_gives_back_everything(tmp_path: Path) -> None:
    state = full_state(tmp_path / "agent")
    state.save()
    assert AgentState.load(tmp_path / "agent") == state


def test_the_file_is_its_owners_only_whatever_the_umask(tmp_path: Path, loose_umask: None) -> None:
    state_dir = tmp_path / "agent"
    full_state(state_dir).save()
    assert stat.S_IMODE((state_dir / STATE_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE(state_dir.stat().st_mode) & 0o077 == 0  # the directory it made is not open to others


def test_a_file_left_loose_becomes_the_owners_only_on_the_next_save(
    tmp_path: Path, loose_umask: None
) -> None:
    state_dir = tmp_path / "agent"
    state_dir.mkdir()
    (state_dir / STATE_FILE).write_text("{}")
    (state_dir / "agent.tmp").write_text("half a write")  # a crash between write and rename
    os.chmod(state_dir / "agent.tmp", 0o666)
    full_state(state_dir).save()
    assert stat.S_IMODE((state_dir / STATE_FILE).stat().st_mode) == 0o600


def test_save_replaces_the_file_atomically_and_leaves_no_temporary(tmp_path: Path) -> None:
    state_dir = tmp_path / "agent"
    state = full_state(state_dir)
    state.save()
    first = (state_dir / STATE_FILE).stat().st_ino
    state.revision = 42
    state.save()
    assert sorted(p.name for p in state_dir.iterdir()) == [STATE_FILE]
    assert (
        state_dir / STATE_FILE
    ).stat().st_ino != first  # a new file renamed over the old, never rewritten in place
    assert AgentState.load(state_dir).revision == 42


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b""])
def test_an_unreadable_file_is_a_value_error_naming_the_path(tmp_path: Path, content: bytes) -> None:
    (tmp_path / STATE_FILE).write_bytes(content)
    with pytest.raises(ValueError, match=f"agent state {tmp_path / STATE_FILE} cannot be read"):
        AgentState.load(tmp_path)


def test_a_state_path_that_is_a_directory_is_a_value_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).mkdir()
    with pytest.raises(ValueError, match=f"agent state {tmp_path / STATE_FILE} cannot be read"):
        AgentState.load(tmp_path)


@pytest.mark.parametrize("content", ["[]", "null", "41", '{"revision": "forty-one"}', '{"tasks": [1, 2, 3]}'])
def test_json_that_is_not_an_agent_state_is_a_value_error_naming_the_path(
    tmp_path: Path, content: str
) -> None:
    (tmp_path / STATE_FILE).write_text(content)
    with pytest.raises(ValueError, match=f"agent state {tmp_path / STATE_FILE} cannot be read"):
        AgentState.load(tmp_path)
