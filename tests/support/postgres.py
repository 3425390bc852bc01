"""A real, throwaway PostgreSQL server for tests (issue 12): Debian's own binaries, a cluster of our own.

``PostgresServer(port)`` makes a new folder ``/tmp/portside-pg-<pid>-<random>/`` (``<pid>`` is the
process that made it, so a sweep can tell a crashed run's folders from a live one's), owned by the
unprivileged ``postgres`` user (initdb refuses root; tests run as root, hence ``runuser``)::

    /tmp/portside-pg-<pid>-<random>/
        data/            initdb's cluster; cluster_name is the folder's name, so every process of
                         the cluster (postmaster and children) names it in its command line
        socket/          the unix socket (never PostgreSQL's shared /var/run/postgresql)
        postgres.log     the server's log (pg_ctl -l), quoted in every start failure

The server listens on 127.0.0.1:<port> only, trusts connections from 127.0.0.1 and refuses all
others (pg_hba.conf has that one line), and runs with ``fsync=off``: a test database needs no
durability across a machine crash, only across a server crash (``kill()``), which the WAL written
at each commit still gives.
The bootstrap superuser is the role ``portside``, so a database URL is
``postgresql://portside@127.0.0.1:<port>/<name>``.

Missing binaries raise ``PostgresMissing`` (never a skip): a machine that ``./scripts/setup`` did
not finish setting up must fail the PostgreSQL tests, not pass them by skipping.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

POSTGRES_LIB = Path("/usr/lib/postgresql")
TEMP_ROOT = Path("/tmp")  # fixed, not $TMPDIR: .ci/run's last-resort cleanup looks for /tmp/portside-pg-*
DIR_PREFIX = "portside-pg-"
DIR_PATTERN = re.compile(rf"^{DIR_PREFIX}(\d+)-")
PORT_FLOOR = 20000
OS_USER = "postgres"  # the Debian package creates it
ROLE = "portside"
DATABASE_NAME_RULE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60
EXIT_TIMEOUT_S = 15.0
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    # synchronous_commit stays on: with it off, a commit returns before its WAL is written, and
    # kill() loses the last ~200 ms of "committed" rows; crash tests would then test nothing.
    "full_page_writes": "off",
    "shared_buffers": "32MB",  # two cores, several helpers' tests at once: keep it light
    "max_connections": "100",
}


class PostgresMissing(RuntimeError):
    """PostgreSQL's server binaries (or its ``postgres`` user) are not on this machine."""


class PostgresError(RuntimeError):
    """initdb, pg_ctl or the server failed; the message quotes their output and the server log."""


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def find_bin_dir(lib: Path = POSTGRES_LIB) -> Path:
    """The newest ``<lib>/<version>/bin`` holding initdb and pg_ctl (Debian's layout).

    Raises:
        PostgresMissing: none does, or the ``postgres`` user is missing.
    """
    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))

    candidates = sorted(lib.glob("*/bin"), key=version)
    complete = [path for path in candidates if (path / "initdb").is_file() and (path / "pg_ctl").is_file()]
    if not complete:
        raise PostgresMissing(
            f"PostgreSQL's server binaries (initdb, pg_ctl) are not under {lib}/*/bin: "
            "run ./scripts/setup, which installs Debian's postgresql package"
        )
    try:
        import pwd

        pwd.getpwnam(OS_USER)
    except KeyError:
        raise PostgresMissing(
            f"the user {OS_USER!r} (created by Debian's postgresql package) does not exist: "
            "run ./scripts/setup"
        ) from None
    return complete[-1]


def free_loopback_port(rng: random.Random | None = None) -> int:
    """A TCP port nothing listens on at 127.0.0.1, below the kernel's ephemeral range: the kernel
    hands ephemeral ports to outgoing connections, and portside hands them out as dynamic host
    ports, so one of those could take the port while ``restart()`` has the server down."""
    rng = rng or random.Random()
    try:
        ephemeral_start = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_start = 32768
    low = min(PORT_FLOOR, ephemeral_start - 1000)
    for _ in range(200):
        port = rng.randrange(low, ephemeral_start)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise PostgresError(f"no free port on 127.0.0.1 in {low}-{ephemeral_start - 1} after 200 tries")


def cluster_pids(tag: str) -> list[int]:
    """Every process whose command line names ``tag`` (a server folder's name): the postmaster
    (``-D /tmp/<tag>/data``) and its children (``postgres: <tag>: checkpointer``, ...)."""
    return [
        int(entry) for entry in os.listdir("/proc")
        if entry.isdigit() and int(entry) != os.getpid() and tag in _cmdline(int(entry))
    ]


def _kill_and_wait(tag: str, timeout: float = EXIT_TIMEOUT_S) -> list[int]:
    """SIGKILL every process of the cluster ``tag``; the pids still there after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while (pids := cluster_pids(tag)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    return cluster_pids(tag)


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs: a zombie (dead, not yet reaped by a busy init) counts as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def sweep_dead_servers(root: Path = TEMP_ROOT) -> list[Path]:
    """Kill the clusters and remove the folders that crashed runs left (their maker's pid is gone);
    never touches a live process's server. Returns the folders removed."""
    removed = []
    for folder in sorted(root.glob(f"{DIR_PREFIX}*")):
        match = DIR_PATTERN.match(folder.name)
        if not match or process_alive(int(match.group(1))):
            continue
        if _kill_and_wait(folder.name):
            continue  # unkillable for now: leave it for the next sweep
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


class PostgresServer:
    """One throwaway PostgreSQL cluster on 127.0.0.1:``port`` (see the module docstring).

    ``start()`` (initdb the first time), ``stop()`` (fast shutdown), ``kill()`` (SIGKILL the
    postmaster, as a crash), ``restart()`` (same port, same data), ``create_database(name)`` and
    ``drop_database(name)``, and ``close()``, which always stops everything and removes the folder.
    """

    def __init__(self, port: int) -> None:
        self.bin_dir = find_bin_dir()
        self.port = port
        self.directory = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-", dir=TEMP_ROOT))
        self.data_dir = self.directory / "data"
        self.socket_dir = self.directory / "socket"
        self.log_file = self.directory / "postgres.log"
        self._closed = False
        self.socket_dir.mkdir()
        if os.geteuid() == 0:  # initdb and the server then run as OS_USER (see _run)
            for path in (self.directory, self.socket_dir):
                shutil.chown(path, OS_USER, OS_USER)

    @property
    def tag(self) -> str:
        """The folder's name: the cluster_name every process of this cluster shows."""
        return self.directory.name

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{database}"

    def postmaster_pid(self) -> int | None:
        """The running postmaster's pid, from postmaster.pid; None when none runs."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return pid if self.tag in _cmdline(pid) else None

    def is_running(self) -> bool:
        return self.postmaster_pid() is not None

    def pids(self) -> list[int]:
        """Every process of this cluster (postmaster and children)."""
        return cluster_pids(self.tag)

    def start(self) -> None:
        """Start the server (running initdb first when the cluster does not exist yet); returns once
        it accepts connections. A no-op when it runs already.

        Raises:
            PostgresError: initdb or pg_ctl failed or timed out (with the server log's tail).
        """
        if self._closed:
            raise PostgresError(f"server {self.tag} is closed")
        if self.is_running():
            return
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        # After kill(), the dead postmaster's children may still hold its shared memory, and a new
        # postmaster refuses to start until they are gone: end them, as an operator would. Its lock
        # files stay too (postmaster.pid, the socket's .lock), and while the dead postmaster is a
        # zombie that init has not reaped yet (seconds, on some machines), PostgreSQL takes them
        # for a live server's: with no process of ours left, they are stale, so remove them.
        if leftover := _kill_and_wait(self.tag):
            raise PostgresError(f"processes {leftover} of the killed server {self.tag} do not exit")
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        for stale in self.socket_dir.iterdir():
            stale.unlink()
        self._pg_ctl("start", "-w", "-t", str(START_TIMEOUT_S), "-l", str(self.log_file))

    def stop(self) -> None:
        """Fast shutdown (clients disconnected, transactions rolled back); a no-op when stopped."""
        if self.is_running():
            self._pg_ctl("stop", "-m", "fast", "-w", "-t", str(STOP_TIMEOUT_S))

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crash does; its children notice and exit on their own."""
        pid = self.postmaster_pid()
        if pid is None:
            raise PostgresError(f"server {self.tag} is not running")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + EXIT_TIMEOUT_S
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self) -> None:
        """Stop, then start again on the same port with the same data."""
        self.stop()
        self.start()

    def create_database(self, name: str) -> str:
        """Create the database ``name`` (owner ``portside``); returns its URL.

        Raises:
            ValueError: ``name`` is not a lower-case SQL identifier of at most 63 characters.
        """
        import psycopg
        from psycopg import sql

        _check_database_name(name)
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop the database ``name`` if it exists, ending its sessions first."""
        import psycopg
        from psycopg import sql

        _check_database_name(name)
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def close(self) -> None:
        """Stop the server however it is (stopped, running, killed, half started) and remove its folder.
        Safe to call more than once (the fixtures call it from a finalizer and from atexit).

        Raises:
            PostgresError: a process of the cluster survived SIGKILL (the folder is then kept).
        """
        if self._closed:
            return
        try:
            self.stop()
        except PostgresError:
            pass  # the kill below ends it
        if leftover := _kill_and_wait(self.tag):
            raise PostgresError(f"processes {leftover} of server {self.tag} survive SIGKILL")
        self._closed = True
        shutil.rmtree(self.directory, ignore_errors=True)

    def _initdb(self) -> None:
        self._run(
            str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", ROLE,
            "--encoding=UTF8", "--locale=C", "--auth=reject", "--no-instructions",
        )
        (self.data_dir / "pg_hba.conf").write_text(
            "# portside tests: the role portside, from 127.0.0.1 only, without a password\n"
            "host all all 127.0.0.1/32 trust\n"
        )
        settings = {
            **SETTINGS,
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "cluster_name": f"'{self.tag}'",
        }
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n# portside tests (tests/support/postgres.py)\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def _pg_ctl(self, *args: str) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args)

    def _run(self, *argv: str) -> None:
        if os.geteuid() == 0:
            argv = ("runuser", "-u", OS_USER, "--", *argv)
        try:
            done = subprocess.run(
                argv, cwd=self.directory, capture_output=True, text=True, timeout=START_TIMEOUT_S + 30
            )
        except subprocess.TimeoutExpired as exc:
            raise PostgresError(f"{' '.join(argv)} timed out\n{self._log_tail()}") from exc
        if done.returncode != 0:
            raise PostgresError(
                f"{' '.join(argv)} exited {done.returncode}: {done.stdout}{done.stderr}\n{self._log_tail()}"
            )

    def _log_tail(self, lines: int = 20) -> str:
        try:
            tail = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"(no server log at {self.log_file})"
        return f"last lines of {self.log_file}:\n" + "\n".join(tail)


def _check_database_name(name: str) -> None:
    if not DATABASE_NAME_RULE.match(name):
        raise ValueError(
            f"database name {name!r} must be a lower-case SQL identifier: a letter or '_', "
            "then letters, digits or '_', at most 63 characters"
        )
