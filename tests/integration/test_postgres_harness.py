"""The throwaway PostgreSQL that every PostgreSQL test uses (tests/support/postgres.py, issue 12):
real servers, real connections with psycopg, real processes looked up in /proc."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from tests.support import postgres
from tests.support.postgres import (
    PostgresMissing,
    PostgresServer,
    cluster_pids,
    find_bin_dir,
    free_loopback_port,
    process_alive,
)
from tests.support.waiting import eventually

REPO = Path(__file__).resolve().parents[2]


def _count(url: str) -> int:
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("SELECT count(*) FROM marks").fetchone()
        assert row is not None
        return int(row[0])


def _mark(url: str, rows: int = 3) -> None:
    with psycopg.connect(url, connect_timeout=5) as conn:
        conn.execute("CREATE TABLE marks (n integer PRIMARY KEY)")
        conn.cursor().executemany("INSERT INTO marks VALUES (%s)", [(n,) for n in range(rows)])


def _processes_naming(path: Path) -> list[int]:
    """Processes whose command line names ``path`` (its data dir, or the cluster name in it)."""
    return cluster_pids(path.name)


def test_url_connects_as_portside_to_a_new_empty_database(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    assert postgres_url.startswith(f"postgresql://portside@127.0.0.1:{postgres_server.port}/test_")
    with psycopg.connect(postgres_url, connect_timeout=5) as conn:
        who = conn.execute("SELECT current_user, current_database(), host(inet_server_addr())").fetchone()
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert who == ("portside", postgres_url.rsplit("/", 1)[1], "127.0.0.1")
    assert tables == (0,)


def test_listens_only_on_127_0_0_1_with_its_socket_in_its_own_folder(postgres_server: PostgresServer) -> None:
    with socket.create_connection(("127.0.0.1", postgres_server.port), timeout=5):
        pass
    # 127.0.0.2 is loopback too: a server listening on every address would answer there, and
    # one listening on "localhost" (PostgreSQL's default) on ::1.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", postgres_server.port), timeout=5).close()
    with pytest.raises(OSError):  # refused, or no IPv6 loopback at all
        socket.create_connection(("::1", postgres_server.port), timeout=5).close()
    # (Where /etc/hosts maps localhost to 127.0.0.1 alone, "localhost" passes the above: ask.)
    with psycopg.connect(postgres_server.url(), connect_timeout=5) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
    assert (postgres_server.socket_dir / f".s.PGSQL.{postgres_server.port}").is_socket()
    assert not Path(f"/var/run/postgresql/.s.PGSQL.{postgres_server.port}").exists()


def test_only_tcp_from_127_0_0_1_is_trusted(postgres_server: PostgresServer) -> None:
    with pytest.raises(psycopg.OperationalError, match="no pg_hba.conf entry"):
        psycopg.connect(host=str(postgres_server.socket_dir), port=postgres_server.port, user="portside",
                        dbname="postgres", connect_timeout=5).close()


def test_databases_of_one_test_are_isolated(make_postgres_url: Callable[[], str]) -> None:
    first, second = make_postgres_url(), make_postgres_url()
    assert first != second
    _mark(first)
    with psycopg.connect(second, connect_timeout=5) as conn:
        assert conn.execute("SELECT to_regclass('marks')").fetchone() == (None,)
    _mark(second, rows=1)
    assert (_count(first), _count(second)) == (3, 1)


def test_restart_keeps_port_and_data(own_postgres_server: PostgresServer) -> None:
    url = own_postgres_server.create_database("kept")
    _mark(url)
    before = own_postgres_server.postmaster_pid()
    own_postgres_server.restart()
    assert own_postgres_server.postmaster_pid() not in (None, before)
    assert url == own_postgres_server.url("kept")
    assert _count(url) == 3


def test_stopped_server_refuses_then_start_serves_the_same_data(own_postgres_server: PostgresServer) -> None:
    url = own_postgres_server.create_database("paused")
    _mark(url)
    own_postgres_server.stop()
    assert not own_postgres_server.is_running() and _processes_naming(own_postgres_server.directory) == []
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=5).close()
    own_postgres_server.start()
    assert _count(url) == 3


def test_kill_then_start_recovers_committed_rows(own_postgres_server: PostgresServer) -> None:
    url = own_postgres_server.create_database("crashed")
    _mark(url)
    survivor = psycopg.connect(url, connect_timeout=5)
    try:
        postmaster = own_postgres_server.postmaster_pid()
        assert postmaster is not None
        own_postgres_server.kill()
        assert not process_alive(postmaster)
        assert (own_postgres_server.data_dir / "postmaster.pid").exists()  # a crash leaves its pid file behind
        eventually(lambda: _processes_naming(own_postgres_server.directory) == [], timeout=15,
                   what="the killed postmaster's children to exit")
        with pytest.raises(psycopg.OperationalError):
            survivor.execute("SELECT 1")
    finally:
        survivor.close()
    own_postgres_server.start()
    assert _count(url) == 3


def test_drop_database_ends_its_sessions(own_postgres_server: PostgresServer) -> None:
    url = own_postgres_server.create_database("busy")
    holder = psycopg.connect(url, connect_timeout=5)
    try:
        own_postgres_server.drop_database("busy")
        with pytest.raises(psycopg.OperationalError):
            holder.execute("SELECT 1")
    finally:
        holder.close()
    with psycopg.connect(own_postgres_server.url(), connect_timeout=5) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'busy'").fetchone() == (0,)


def test_bad_database_name_is_refused_and_creates_nothing(own_postgres_server: PostgresServer) -> None:
    with pytest.raises(ValueError, match="database name 'Bad-Name' must be a lower-case SQL identifier"):
        own_postgres_server.create_database("Bad-Name")
    with psycopg.connect(own_postgres_server.url(), connect_timeout=5) as conn:
        names = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
    assert names == {"postgres", "template0", "template1"}


def test_close_leaves_no_process_and_no_folder() -> None:
    server = PostgresServer(free_loopback_port())
    session = None
    try:
        server.start()
        session = psycopg.connect(server.create_database("left_open"), connect_timeout=5)  # still open
        assert server.directory.name.startswith(f"portside-pg-{os.getpid()}-")
        assert len(_processes_naming(server.directory)) >= 3  # postmaster, checkpointer, the session...
    finally:
        server.close()
        if session is not None:
            session.close()
    assert _processes_naming(server.directory) == []
    assert not server.directory.exists()
    server.close()  # again: a no-op (finalizer and atexit both call it)


def test_close_after_kill_leaves_nothing() -> None:
    server = PostgresServer(free_loopback_port())
    try:
        server.start()
        server.kill()
    finally:
        server.close()
    assert _processes_naming(server.directory) == [] and not server.directory.exists()


def test_missing_binaries_raise_instead_of_skipping(tmp_path: Path) -> None:
    (tmp_path / "15" / "bin").mkdir(parents=True)  # a machine without the server package
    with pytest.raises(PostgresMissing, match=r"initdb, pg_ctl\) are not under .*run ./scripts/setup"):
        find_bin_dir(tmp_path)


def test_newest_complete_version_wins(tmp_path: Path) -> None:
    for version in ("9.6", "15", "16"):
        bin_dir = tmp_path / version / "bin"
        bin_dir.mkdir(parents=True)
        if version != "16":  # 16 is incomplete: no pg_ctl
            (bin_dir / "pg_ctl").touch()
        (bin_dir / "initdb").touch()
    assert find_bin_dir(tmp_path) == tmp_path / "15" / "bin"


SESSION_TESTS = """
    import os
    from pathlib import Path

    import psycopg

    RECORD = Path(os.environ["RECORD"])

    def test_one(postgres_url, postgres_server):
        with psycopg.connect(postgres_url) as conn:
            conn.execute("CREATE TABLE t (n int)")
        RECORD.write_text(f"{postgres_server.directory}\\n{postgres_url.rsplit('/', 1)[1]}\\n")
        postgres_server.stop()  # left down: its own teardown must still drop the database

    def test_two(postgres_server):
        first = RECORD.read_text().split()[1]
        with psycopg.connect(postgres_server.url()) as conn:
            names = [row[0] for row in conn.execute("SELECT datname FROM pg_database")]
        assert first not in names  # test_one's database was dropped when it ended
        postgres_server.kill()  # left down, by a test that asked for no database

    def test_three(postgres_url):
        with psycopg.connect(postgres_url) as conn:  # the server was started again for it
            conn.execute("SELECT 1")

    def test_four():
        if os.environ.get("DIE"):
            os.kill(os.getpid(), 9)  # a crashed session: no finalizer, no atexit
        assert False, "fails on purpose: the server must stop all the same"
"""
SESSION_OUTCOME = re.compile(r"^1 failed, 3 passed in ", re.MULTILINE)


def _run_session(tmp_path: Path, die: bool) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run SESSION_TESTS in a pytest session of its own (with this repository's fixtures);
    returns the run and the folder of that session's server."""
    tests_dir = tmp_path / ("dying" if die else "failing")
    tests_dir.mkdir()
    (tests_dir / "conftest.py").write_text("from tests.conftest import *  # noqa: F401,F403\n")
    (tests_dir / "test_session.py").write_text(textwrap.dedent(SESSION_TESTS))
    record = tests_dir / "record"
    env = {**os.environ, "RECORD": str(record), "PYTHONPATH": str(REPO), "DIE": "1" if die else ""}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tests_dir),
         str(tests_dir)],
        cwd=tests_dir, env=env, capture_output=True, text=True, timeout=180,
    )
    return run, Path(record.read_text().split()[0])


def test_a_failing_session_drops_each_tests_database_and_stops_its_server(tmp_path: Path) -> None:
    run, folder = _run_session(tmp_path, die=False)
    assert run.returncode == 1 and SESSION_OUTCOME.search(run.stdout), run.stdout + run.stderr
    assert _processes_naming(folder) == [] and not folder.exists()


def _sweep_by_the_next_session(tmp_path: Path) -> None:
    run, _ = _run_session(tmp_path, die=False)  # its postgres_server fixture sweeps first
    assert SESSION_OUTCOME.search(run.stdout), run.stdout + run.stderr


def _sweep_as_ci_does(tmp_path: Path) -> None:
    subprocess.run([str(REPO / "scripts" / "pg-stop-leftovers"), "/tmp"], check=True, timeout=60)


@pytest.mark.parametrize(
    "sweep", [_sweep_by_the_next_session, _sweep_as_ci_does], ids=["next-session", "ci-exit-trap"]
)
def test_a_crashed_sessions_server_is_swept(
    sweep: Callable[[Path], None], tmp_path: Path, postgres_server: PostgresServer
) -> None:
    run, folder = _run_session(tmp_path, die=True)
    assert run.returncode == -signal.SIGKILL, run.stdout + run.stderr
    try:
        assert _processes_naming(folder) and folder.exists()  # what a crash leaves
        sweep(tmp_path)
        assert _processes_naming(folder) == [] and not folder.exists()
        # ... and this live session's server (another run on the machine, to the sweeper) stays.
        assert postgres_server.is_running() and postgres_server.directory.exists()
    finally:
        postgres._kill_and_wait(folder.name)
        subprocess.run(["rm", "-rf", str(folder)], check=False)
