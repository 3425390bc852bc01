"""The store's contract (control/store/database.py), on real SQLite files and real PostgreSQL databases.

Every test runs over both backends (``store_at``, tests/support/stores.py); several ``Store``
objects on one database stand for several replicas of the control plane. The stateful test over
replicas is in test_store_contract_machine.py, schema versions in test_store_contract_schema.py, and
PostgreSQL going away in test_store_outage.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from portside.control.store import Store
from portside.control.store.database import COMMITS_CHANNEL, Deposed, fenced
from portside.control.store.postgres import listen
from tests.support.stores import StoreFactory, sample_task
from tests.support.waiting import eventually


class Boom(Exception):
    """A later step of a transaction failed."""


# -- transactions


def test_a_transaction_commits_all_its_writes_together(store_at: StoreFactory) -> None:
    writer = store_at()
    reader = store_at(store_at.target_of(writer))
    task = sample_task(1)
    with writer.transaction():
        writer.put_task(task)
        writer.put_meta("greeting", {"hello": "world"})
        writer.record_change("meta", "greeting")
        # Not committed yet: another replica sees none of it.
        assert reader.get_task(task.arn) is None and reader.get_meta("greeting") is None
        assert reader.changes_since(0) == []
    assert reader.get_task(task.arn) == task
    assert reader.get_meta("greeting") == {"hello": "world"}
    logged = reader.changes_since(0) or []
    assert (1, writer.writer, "meta", "greeting") in logged and {rev for rev, *_ in logged} == {1}


def test_an_exception_rolls_back_tasks_meta_changes_and_the_revision(store_at: StoreFactory) -> None:
    store = store_at()
    with store.transaction():
        store.put_meta("kept", 1)
    before = store.revision()
    with pytest.raises(Boom), store.transaction():
        store.put_task(sample_task(1))
        store.put_meta("kept", 2)
        store.put_meta("new", 1)
        store.record_change("meta", "new")
        raise Boom
    again = store_at(store_at.target_of(store))
    for replica in (store, again):
        assert replica.get_task(sample_task(1).arn) is None
        assert replica.get_meta("kept") == 1 and replica.get_meta("new") is None
        assert replica.changes_since(0) == []
        assert replica.revision() == before


def test_nested_transactions_join_the_outer_one(store_at: StoreFactory) -> None:
    store = store_at()
    other = store_at(store_at.target_of(store))
    with store.transaction():
        outer = store.current_revision
        with store.transaction():
            assert store.current_revision == outer
            store.put_meta("inner", 1)
            store.record_change("meta", "inner")
        assert other.get_meta("inner") is None  # the inner one's end committed nothing
        store.put_meta("outer", 1)
    assert other.get_meta("inner") == 1 and other.get_meta("outer") == 1
    assert [rev for rev, *_ in other.changes_since(0) or []] == [outer]

    with pytest.raises(Boom), store.transaction():
        with store.transaction():
            store.put_meta("inner", 2)
        raise Boom  # after the inner one ended: it goes too
    assert other.get_meta("inner") == 1 and other.revision() == outer


# -- revisions


def test_each_transaction_takes_the_next_revision_and_a_rolled_back_one_leaves_no_gap(
    store_at: StoreFactory,
) -> None:
    a, b = store_at.replicas(2)
    assert a.revision() == 0
    seen = []
    for store in (a, b, a):
        with store.transaction():
            seen.append(store.current_revision)
        with pytest.raises(Boom), store.transaction():
            store.put_meta("lost", store.current_revision)
            raise Boom
    assert seen == [1, 2, 3]
    assert a.revision() == b.revision() == 3
    with pytest.raises(RuntimeError, match="outside a transaction"):
        a.current_revision  # noqa: B018


def test_two_replicas_writing_at_once_get_distinct_revisions_in_commit_order(store_at: StoreFactory) -> None:
    """Two writer threads on two replicas, and a reader on a third: for every revision R the reader
    sees, every write of a revision up to R is visible to it."""
    writers = store_at.replicas(2)
    reader = store_at(store_at.target_of(writers[0]))
    per_writer = 60
    finished = threading.Event()
    start = threading.Barrier(2, timeout=30)

    def write(store: Store) -> list[int]:
        revisions = []
        start.wait()
        for i in range(per_writer):
            # Between transactions, so the other writer's come in between (SQLite's lock is greedy).
            time.sleep(0.002)
            with store.transaction():
                key = f"{store.writer}-{i}"
                store.put_meta(key, store.current_revision)
                store.record_change("meta", key)
                revisions.append(store.current_revision)
        return revisions

    def read() -> int:
        checks = 0
        deadline = time.monotonic() + 60
        while not finished.is_set() and time.monotonic() < deadline:
            seen = reader.revision()
            log = reader.changes_since(0) or []
            upto = [entry for entry in log if entry[0] <= seen]
            assert [rev for rev, *_ in upto] == list(range(1, seen + 1)), (
                f"a write at or below {seen} is missing"
            )
            for rev, _, _, key in upto[-3:]:
                assert reader.get_meta(key) == rev
            checks += 1
        return checks

    with ThreadPoolExecutor(3) as pool:
        checking = pool.submit(read)
        results = [pool.submit(write, store) for store in writers]
        try:
            revisions = [result.result(timeout=120) for result in results]
        finally:
            finished.set()
        assert checking.result(timeout=120) > 0
    everything = sorted(revisions[0] + revisions[1])
    assert everything == list(range(1, 2 * per_writer + 1))  # distinct, and no gap
    assert all(r == sorted(r) for r in revisions)
    first, second = revisions
    assert first[0] < second[-1] and second[0] < first[-1], "the writers never wrote at the same time"
    log = reader.changes_since(0) or []
    assert [(rev, writer) for rev, writer, _, _ in log] == sorted(
        [(rev, writers[n].writer) for n in (0, 1) for rev in revisions[n]]
    )


# -- the change log


def test_changes_since_returns_what_was_recorded_in_order_with_writer_ids(store_at: StoreFactory) -> None:
    a, b = store_at.replicas(2)
    a.record_change("task", "i-1")
    with b.transaction():
        b.record_change("service", "web")
        b.record_change("target-group", "tg")
    a.record_change("task", "i-2")
    expected = [
        (1, "replica-0", "task", "i-1"),
        (2, "replica-1", "service", "web"),
        (2, "replica-1", "target-group", "tg"),
        (3, "replica-0", "task", "i-2"),
    ]
    assert a.changes_since(0) == b.changes_since(0) == expected
    assert b.changes_since(1) == expected[1:]
    assert b.changes_since(3) == []


def test_trimming_the_change_log_makes_older_revisions_relist(store_at: StoreFactory) -> None:
    a, b = store_at.replicas(2)
    for n in range(1, 11):
        (a if n % 2 else b).record_change("task", f"i-{n}")
    assert a.trim_changes(keep=100) == 0 and len(a.changes_since(0) or []) == 10  # at revision 11

    assert b.trim_changes(keep=4) == 8  # at revision 12: revisions up to 8 go
    for replica in (a, b):
        assert replica.changes_since(0) is None
        assert replica.changes_since(7) is None
        assert [(rev, key) for rev, _, _, key in replica.changes_since(8) or []] == [(9, "i-9"), (10, "i-10")]
        assert replica.changes_since(12) == []
    assert a.trim_changes(keep=4) == 1  # at revision 13: revision 9 goes
    assert b.changes_since(8) is None and [rev for rev, *_ in b.changes_since(9) or []] == [10]


def test_a_trim_while_a_follower_reads_the_log_makes_it_relist_not_miss_changes(tmp_path: Path) -> None:
    """``changes_since`` reads the log and its floor in two statements: another replica's trim
    between them must not leave it answering a log with a hole (SQLite's statement trace runs the
    trim just before the follower's first read of the log)."""
    target = f"sqlite:{tmp_path / 'portside.db'}"
    follower, trimmer = Store(target, writer="follower"), Store(target, writer="trimmer")
    try:
        for n in range(1, 11):
            trimmer.record_change("task", f"i-{n}")
        trimmed: list[int] = []

        def trim_first(statement: str) -> None:
            if "FROM changes" in statement and not trimmed:
                trimmed.append(trimmer.trim_changes(keep=2))  # at revision 11: up to 9 go

        follower.db.set_trace_callback(trim_first)
        answer = follower.changes_since(3)
        follower.db.set_trace_callback(None)
        assert trimmed == [9]
        assert answer is None, f"revisions 4-9 were trimmed, yet the follower got {answer}"
    finally:
        follower.close()
        trimmer.close()


# -- leases


def test_a_lease_has_one_holder_and_a_renewal_keeps_its_epoch(store_at: StoreFactory) -> None:
    a, b = store_at.replicas(2)
    assert a.lease("leader") is None
    assert a.acquire_lease("leader", "A", 30) == 1
    assert b.acquire_lease("leader", "B", 30) is None
    assert a.acquire_lease("leader", "A", 60) == 1
    holder, epoch, left = b.lease("leader") or ("", 0, 0.0)
    assert (holder, epoch) == ("A", 1) and 30 < left <= 60
    b.release_lease("leader", "B")  # not B's to give up
    assert b.acquire_lease("leader", "B", 30) is None


def test_an_expired_lease_passes_to_another_holder_at_the_next_epoch(store_at: StoreFactory) -> None:
    a, b = store_at.replicas(2)
    assert a.acquire_lease("leader", "A", 0.5) == 1
    assert b.acquire_lease("leader", "B", 30) is None
    epoch = eventually(
        lambda: b.acquire_lease("leader", "B", 30), timeout=10, interval=0.1, what="A's lease expiring"
    )
    assert epoch == 2
    assert a.acquire_lease("leader", "A", 30) is None
    assert (a.lease("leader") or ())[:2] == ("B", 2)


def test_a_released_lease_passes_at_once(store_at: StoreFactory) -> None:
    a, b = store_at.replicas(2)
    assert a.acquire_lease("leader", "A", 60) == 1
    a.release_lease("leader", "A")
    assert b.acquire_lease("leader", "B", 60) == 2
    assert a.acquire_lease("leader", "A", 60) is None


def test_a_fenced_write_of_a_deposed_holder_raises_deposed_and_writes_nothing(store_at: StoreFactory) -> None:
    a, b = store_at.replicas(2)
    assert a.acquire_lease("leader", "A", 60) == 1
    with fenced("leader", "A", 1), a.transaction():
        a.put_meta("by-A", 1)
        a.record_change("meta", "by-A")
    a.release_lease("leader", "A")
    assert b.acquire_lease("leader", "B", 60) == 2
    before = b.revision()
    with pytest.raises(Deposed, match="'leader'.*A at epoch 1"), fenced("leader", "A", 1), a.transaction():
        a.put_meta("by-deposed-A", 1)
        a.record_change("meta", "by-deposed-A")
        a.put_task(sample_task(1))
    for replica in (a, b):
        assert replica.get_meta("by-deposed-A") is None and replica.get_task(sample_task(1).arn) is None
        assert [key for _, _, _, key in replica.changes_since(0) or []] == ["by-A"]
        assert replica.revision() == before
    with fenced("leader", "B", 2), b.transaction():
        b.put_meta("by-B", 2)
    assert a.get_meta("by-B") == 2

    # A holds it again, at a later epoch: a write still fenced at its old epoch is refused all the same.
    b.release_lease("leader", "B")
    assert a.acquire_lease("leader", "A", 60) == 3
    with pytest.raises(Deposed), fenced("leader", "A", 1), a.transaction():
        a.put_meta("by-deposed-A", 1)
    assert b.get_meta("by-deposed-A") is None


def test_a_fenced_block_inside_an_open_transaction_checks_the_lease_too(store_at: StoreFactory) -> None:
    """A transaction nested under a fence joins an outer one opened before it, which checked no
    fence: the nested one checks it, and Deposed takes the outer one's writes with it."""
    a, b = store_at.replicas(2)
    assert a.acquire_lease("leader", "A", 60) == 1
    a.release_lease("leader", "A")
    assert b.acquire_lease("leader", "B", 60) == 2
    before = b.revision()
    with pytest.raises(Deposed), a.transaction():
        a.put_meta("unfenced", 1)
        with fenced("leader", "A", 1), a.transaction():
            a.put_meta("fenced", 1)
    assert b.get_meta("unfenced") is None and b.get_meta("fenced") is None and b.revision() == before
    with (
        b.transaction(),
        fenced("leader", "B", 2),
        b.transaction(),
    ):  # the holder's, nested the same way, lands
        b.put_meta("fenced", 2)
    assert a.get_meta("fenced") == 2


async def test_asyncio_tasks_started_under_a_fence_write_under_it(store_at: StoreFactory) -> None:
    """The leader starts its controllers' tasks inside ``fenced``: they inherit the fence."""
    a, b = store_at.replicas(2)
    assert a.acquire_lease("leader", "A", 60) == 1

    async def write(key: str) -> None:
        with a.transaction():
            a.put_meta(key, 1)

    with fenced("leader", "A", 1):
        controller = asyncio.create_task(write("while-leader"))
    await controller
    a.release_lease("leader", "A")
    assert b.acquire_lease("leader", "B", 60) == 2
    with fenced("leader", "A", 1):
        controller = asyncio.create_task(write("after-deposed"))
    with pytest.raises(Deposed):
        await controller
    await write("unfenced")  # started outside the fence: not checked
    assert (
        b.get_meta("while-leader") == 1
        and b.get_meta("after-deposed") is None
        and b.get_meta("unfenced") == 1
    )


def test_a_fenced_write_under_an_expired_lease_is_refused_though_nobody_took_it(
    store_at: StoreFactory,
) -> None:
    store = store_at()
    assert store.acquire_lease("leader", "A", -1) == 1
    with pytest.raises(Deposed), fenced("leader", "A", 1), store.transaction():
        store.put_meta("late", 1)
    with pytest.raises(Deposed), fenced("no-such-lease", "A", 1), store.transaction():
        store.put_meta("late", 1)
    assert store.get_meta("late") is None


# -- presence


def test_mark_seen_never_moves_back(store_at: StoreFactory) -> None:
    a, b = store_at.replicas(2)
    a.mark_seen("agent", "i-1", 100.0)
    a.mark_seen("agent", "i-1", 50.0)
    assert b.seen("agent") == {"i-1": 100.0}
    b.mark_seen("agent", "i-1", 150.5)
    a.mark_seen("agent", "i-1", 120.0)
    b.mark_seen("lb-node", "lb-1", 10.0)
    assert a.seen("agent") == {"i-1": 150.5}
    assert a.seen("lb-node") == {"lb-1": 10.0}


# -- commits announced (PostgreSQL)


async def test_every_commit_on_postgresql_is_announced_with_its_revision_in_order(postgres_url: str) -> None:
    a, b = Store(postgres_url, writer="replica-0"), Store(postgres_url, writer="replica-1")
    listener = await listen(postgres_url)
    try:
        a.record_change("task", "i-1")
        with pytest.raises(Boom), b.transaction():  # rolled back: announced to nobody
            b.record_change("task", "i-2")
            raise Boom
        b.record_change("task", "i-3")
        assert b.acquire_lease("leader", "B", 60) == 1  # a lease write is a commit too
        heard = [n async for n in listener.notifies(timeout=10, stop_after=3)]
        assert [(n.channel, n.payload) for n in heard] == [
            (COMMITS_CHANNEL, "1"),
            (COMMITS_CHANNEL, "2"),
            (COMMITS_CHANNEL, "3"),
        ]
    finally:
        await listener.close()
        a.close()
        b.close()
