"""The store on PostgreSQL beside SQLite: API writes, watch latency, leader failover (issue 12).

Run (as root: the throwaway PostgreSQL runs as the user ``postgres``; needs Debian's postgresql
package and a Docker Engine, as ``./scripts/setup`` leaves the machine): ``python
benchmarks/store.py [--writes 300] [--commits 500] [--trials 10]``. About 1.5 minutes with the
defaults (failover is most of it); ``--writes 50 --commits 100 --trials 2`` about 30 s.

Goals (issue 12): a new leader within 10 s of the leader's death (default ``--leader-lease``);
a watcher holds a commit within 50 ms at p99. Exit status 1 when a goal is missed or a part fails.

What runs
---------
PostgreSQL
    A throwaway cluster of its own (``tests/support/postgres.py``: initdb and pg_ctl in a new
    folder under /tmp, 127.0.0.1 only, ``fsync=off`` with ``synchronous_commit`` on: a commit's
    WAL is written, not flushed, the durability class of SQLite's WAL with ``synchronous=NORMAL``
    that portside uses), one fresh database per part; closed at the end, failures and Ctrl-C
    included.
API writes/s
    ``portside server`` as a user runs it (``--firewall off``), once on SQLite (its state
    directory) and once with ``--store postgresql://...``; one boto3 client calls
    RegisterTaskDefinition ``--writes`` times in a row (bounded by ``WRITE_BUDGET_S``). Each
    call is one write transaction: the revision counter, the task definition row, the change log.
    Peers in the same run: the same calls on SQLite (the ratio PG / SQLite), and the database's
    own floor: one psycopg connection, one autocommit INSERT after another (and the same loop on
    SQLite with portside's settings, for the SQLite side's floor).
Watch latency
    A child process commits through ``Store.transaction()`` + ``record_change`` (as a replica
    does) ``--commits`` times, ``COMMIT_GAP_S`` apart; this process LISTENs through
    ``postgres.listen`` and, when woken, reads ``changes_since`` on a ``Store`` connection of its
    own, as ``control/change_feed.py`` does. The latency of a commit: from the writer's clock just
    before it leaves the transaction (so COMMIT itself is counted) to the watcher holding the
    change (CLOCK_MONOTONIC, one machine, so the two processes' clocks compare). Peer: a bare
    ``NOTIFY`` from the same kind of child, measured the same way (no transaction, no read).
Leader failover
    Two ``portside server`` replicas on one database (own ``--api`` ports, state directories and
    ``--instance-id``, default ``--leader-lease``). A trial: find the leader in ``GET /healthz``
    (``"leader": true``), ``kill -9`` it, and poll the other's /healthz every 50 ms until it says
    ``"leader": true`` (bounded by ``FAILOVER_BUDGET_S``); then start the killed one again (as a
    follower) and wait for it to answer before the next trial. Peer: the lease length itself,
    the least a takeover can take after a death without a clean release.

Caveats
    Two cores shared by the servers, PostgreSQL, this script and whatever else runs; the figures
    are for this machine at this moment, so each is printed beside its peer from the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from portside.control.leadership import DEFAULT_LEASE_S  # noqa: E402
from portside.control.store import Store  # noqa: E402
from tests.support.postgres import PostgresServer, free_loopback_port  # noqa: E402
from tests.support.server import PortsideProcess  # noqa: E402

FAILOVER_GOAL_S = 10.0
WATCH_P99_GOAL_MS = 50.0
WRITE_BUDGET_S = 30.0  # per side: the write loop stops here whatever --writes says
FLOOR_BUDGET_S = 5.0
COMMIT_GAP_S = 0.005
WATCH_BUDGET_S = 60.0
FAILOVER_BUDGET_S = 30.0
BENCH_CHANNEL = "portside_bench"
CLIENTS = 4  # the concurrent API run's clients
SERVER_ARGS = ("--firewall", "off")


# -- API writes


def api_writes_per_s(server: PortsideProcess, count: int, clients: int) -> float:
    """RegisterTaskDefinition ``count`` times (bounded in time), from ``clients`` boto3 clients at
    once, each on a thread of its own, one call after another; calls per second."""
    definition = {"family": "bench", "containerDefinitions": [
        {"name": "web", "image": "busybox", "memory": 32, "portMappings": [{"containerPort": 80, "hostPort": 0}]}]}
    ecs_clients = [server.client() for _ in range(clients)]
    for ecs in ecs_clients:
        ecs.register_task_definition(**definition)  # warm: connection, first-call paths
    started = time.monotonic()

    def calls(ecs: Any) -> int:
        done = 0
        while done < count // clients and time.monotonic() - started < WRITE_BUDGET_S:
            ecs.register_task_definition(**definition)
            done += 1
        return done

    with ThreadPoolExecutor(clients) as pool:
        done = sum(pool.map(calls, ecs_clients))
    return done / (time.monotonic() - started)


def postgres_floor_per_s(url: str) -> float:
    """One autocommit INSERT after another on one psycopg connection (bounded in time)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE floor (n BIGINT, body TEXT)")
        return _insert_loop(lambda n: conn.execute("INSERT INTO floor VALUES (%s, %s)", (n, "x" * 200)))


def sqlite_floor_per_s(path: Path) -> float:
    """The same loop on SQLite with the store's settings (WAL, synchronous=NORMAL, autocommit)."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE floor (n INTEGER, body TEXT)")
        return _insert_loop(lambda n: db.execute("INSERT INTO floor VALUES (?, ?)", (n, "x" * 200)))
    finally:
        db.close()


def _insert_loop(insert: Callable[[int], Any], count: int = 20_000) -> float:
    started = time.monotonic()
    n = 0
    while n < count and time.monotonic() - started < FLOOR_BUDGET_S:
        insert(n)
        n += 1
    return n / (time.monotonic() - started)


# -- watch latency


def commit_writer(url: str, mode: str, count: int) -> None:
    """The child: ``count`` commits (``store``: a transaction with record_change; ``notify``: a bare
    NOTIFY), each carrying CLOCK_MONOTONIC in ns taken just before it commits."""
    if mode == "store":
        store = Store(url, writer="bench-writer")
        try:
            for _ in range(count):
                with store.transaction():
                    store.record_change("bench", str(time.monotonic_ns()))
                time.sleep(COMMIT_GAP_S)
        finally:
            store.close()
    else:
        with psycopg.connect(url, autocommit=True) as conn:
            for _ in range(count):
                conn.execute(f"NOTIFY {BENCH_CHANNEL}, '{time.monotonic_ns()}'")
                time.sleep(COMMIT_GAP_S)


async def watch_latencies_ms(url: str, mode: str, count: int) -> list[float]:
    """Start the writer child and collect, per commit, the ms from its commit to this watcher holding it."""
    from portside.control.store.postgres import listen

    latencies: list[float] = []
    if mode == "store":
        store = Store(url, writer="bench-watcher")
        seen = store.revision()
        conn = await listen(url)
    else:
        store = None
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        await conn.execute(f"LISTEN {BENCH_CHANNEL}")
    writer = subprocess.Popen([sys.executable, __file__, "--commit-writer", mode, url, str(count)])
    try:
        deadline = time.monotonic() + WATCH_BUDGET_S
        notifies = conn.notifies(timeout=max(deadline - time.monotonic(), 0.1))
        async for notify in notifies:
            if store is None:
                latencies.append((time.monotonic_ns() - int(notify.payload)) / 1e6)
            else:
                changes = store.changes_since(seen) or []
                now = time.monotonic_ns()
                for revision, _writer, _topic, key in changes:
                    seen = max(seen, revision)
                    latencies.append((now - int(key)) / 1e6)
            if len(latencies) >= count or time.monotonic() > deadline:
                break
    finally:
        await conn.close()
        if store is not None:
            store.close()
        _end(writer)
    if len(latencies) < count:
        raise RuntimeError(f"watch ({mode}): {len(latencies)} of {count} commits seen in {WATCH_BUDGET_S:g} s")
    return latencies


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# -- failover


def healthz(server: PortsideProcess) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(server.endpoint + "/healthz", timeout=1) as reply:
            return dict(json.loads(reply.read()))
    except (OSError, ValueError):
        return None


def wait_for(check: Callable[[], bool], budget_s: float, what: str, interval: float = 0.05) -> float:
    """Seconds until ``check()`` holds; RuntimeError after ``budget_s``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > budget_s:
            raise RuntimeError(f"{what}: not within {budget_s:g} s")
        time.sleep(interval)
    return time.monotonic() - started


def failover_times_s(replicas: list[PortsideProcess], trials: int) -> list[float]:
    def leads(server: PortsideProcess) -> bool:
        return bool((healthz(server) or {}).get("leader"))

    wait_for(lambda: any(leads(r) for r in replicas), FAILOVER_BUDGET_S, "a first leader")
    times = []
    for trial in range(trials):
        leader = next(r for r in replicas if leads(r))
        other = next(r for r in replicas if r is not leader)
        leader.kill9()
        took = wait_for(lambda: leads(other), FAILOVER_BUDGET_S, f"trial {trial + 1}: the other replica leading")
        times.append(took)
        print(f"  trial {trial + 1}: new leader after {took:.2f} s", flush=True)
        leader.start()  # a follower now; answers before the next trial kills the leader
    return times


# -- the run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=300, help="API writes per side (default 300)")
    parser.add_argument("--commits", type=int, default=500, help="commits watched per side (default 500)")
    parser.add_argument("--trials", type=int, default=10, help="failover trials (default 10)")
    parser.add_argument("--commit-writer", nargs=3, metavar=("MODE", "URL", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.commit_writer:
        mode, url, count = args.commit_writer
        commit_writer(url, mode, int(count))
        return 0
    if os.geteuid() != 0:
        print("run as root: the throwaway PostgreSQL runs as the user postgres (tests/support/postgres.py)")
        return 2
    if why := docker_answers():
        print(why)
        return 2

    work = Path(tempfile.mkdtemp(prefix="portside-store-bench-"))
    postgres = PostgresServer(free_loopback_port())
    servers: list[PortsideProcess] = []
    results: dict[str, Any] = {}
    try:
        postgres.start()
        print(f"PostgreSQL {postgres.bin_dir.parent.name} on 127.0.0.1:{postgres.port} ({postgres.directory})", flush=True)

        print(f"API writes (RegisterTaskDefinition; 1 and {CLIENTS} clients) ...", flush=True)
        for side, store_args in (("sqlite", ()), ("postgresql", ("--store", postgres.create_database("bench_api")))):
            server = PortsideProcess(work / f"api-{side}", *SERVER_ARGS, *store_args,
                                     "--instance-id", f"i-benchapi{side[:2]}")
            servers.append(server)
            server.start()
            results[f"api_{side}"] = api_writes_per_s(server, args.writes, 1)
            results[f"api_{side}_many"] = api_writes_per_s(server, args.writes, CLIENTS)
            server.stop()
        results["floor_postgresql"] = postgres_floor_per_s(postgres.create_database("bench_floor"))
        results["floor_sqlite"] = sqlite_floor_per_s(work / "floor.db")

        print("watch latency ...", flush=True)
        watch_url = postgres.create_database("bench_watch")
        Store(watch_url).close()  # the schema, before the writer and the watcher open it
        results["watch_store"] = asyncio.run(watch_latencies_ms(watch_url, "store", args.commits))
        results["watch_notify"] = asyncio.run(watch_latencies_ms(watch_url, "notify", args.commits))

        print(f"leader failover ({args.trials} trials, --leader-lease {DEFAULT_LEASE_S:g} s) ...", flush=True)
        failover_url = postgres.create_database("bench_failover")
        Store(failover_url).close()
        replicas = [
            PortsideProcess(work / f"replica-{n}", *SERVER_ARGS, "--store", failover_url, "--instance-id", f"i-benchreplica{n}")
            for n in (1, 2)
        ]
        servers.extend(replicas)
        for replica in replicas:
            replica.start()
        results["failover"] = failover_times_s(replicas, args.trials)
    finally:
        for server in servers:
            server.stop()
        postgres.close()
        _remove_leftovers(work, servers)
    return report(results)


def report(results: dict[str, Any]) -> int:
    floor = {"sqlite": results["floor_sqlite"], "postgresql": results["floor_postgresql"]}
    watch, bare = results["watch_store"], results["watch_notify"]
    failover = results["failover"]
    print()
    print("API writes/s (RegisterTaskDefinition through boto3; each client one call after another)")
    print(f"{'store':12} {'1 client':>9} {f'{CLIENTS} clients':>10} {'floor':>8} {'floor/API':>10}")
    for side, name in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        one, many = results[f"api_{side}"], results[f"api_{side}_many"]
        print(f"{name:12} {one:>9.0f} {many:>10.0f} {floor[side]:>8.0f} {floor[side] / one:>9.0f}x")
    print(f"PostgreSQL / SQLite through the API: {results['api_postgresql'] / results['api_sqlite']:.2f}x "
          f"(1 client), {results['api_postgresql_many'] / results['api_sqlite_many']:.2f}x ({CLIENTS} clients)")
    print("floor: one connection's autocommit INSERTs in a row, no portside in the way")
    print()
    print(f"watch latency, commit -> watcher holds it (ms, {len(watch)} commits each)")
    print(f"{'path':34} {'p50':>6} {'p99':>6} {'max':>6}")
    for name, xs in (("Store.transaction + changes_since", watch), ("bare NOTIFY round trip", bare)):
        print(f"{name:34} {percentile(xs, 50):>6.2f} {percentile(xs, 99):>6.2f} {max(xs):>6.2f}")
    print(f"store / bare NOTIFY at p50: {percentile(watch, 50) / percentile(bare, 50):.2f}x")
    print()
    print(f"leader failover, kill -9 -> the other replica leads (s, {len(failover)} trials)")
    print(f"{'min':>6} {'median':>7} {'max':>6}   peer: the lease, {DEFAULT_LEASE_S:g} s")
    print(f"{min(failover):>6.2f} {statistics.median(failover):>7.2f} {max(failover):>6.2f}"
          f"   median / lease: {statistics.median(failover) / DEFAULT_LEASE_S:.2f}x")
    print()
    goals = [
        (f"failover < {FAILOVER_GOAL_S:g} s (every trial)", max(failover) < FAILOVER_GOAL_S, f"max {max(failover):.2f} s"),
        (f"watch p99 < {WATCH_P99_GOAL_MS:g} ms", percentile(watch, 99) < WATCH_P99_GOAL_MS,
         f"p99 {percentile(watch, 99):.2f} ms"),
    ]
    for name, met, figure in goals:
        print(f"goal {name:32} {'MET' if met else 'MISSED':7} ({figure})")
    return 0 if all(met for _, met, _ in goals) else 1


def _remove_leftovers(work: Path, servers: list[PortsideProcess]) -> None:
    """The servers' own containers (none are started, but a server's agent may leave some) and the work folder."""
    import shutil

    import docker

    from portside.agent.driver import LABEL_OWNER
    from portside.agent.host import owner_id

    try:
        client = docker.from_env()
        for server in servers:
            owner = owner_id(server.state_dir)
            for container in client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={owner}"}):
                container.remove(force=True, v=True)
    except docker.errors.DockerException as exc:
        print(f"(could not look for the servers' containers: {exc})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def docker_answers() -> str | None:
    """Why the servers cannot start here (they run this host's agent on Docker), or None."""
    import docker

    try:
        docker.from_env(timeout=10).ping()
    except docker.errors.DockerException as exc:
        return f"no Docker Engine answers ({exc}); portside server needs one for its own agent"
    return None


if __name__ == "__main__":
    sys.exit(main())
