"""The store's contract under any interleaving of replicas: a hypothesis state machine.

Three ``Store`` objects on one database (SQLite file, PostgreSQL database) are three replicas.
Writers commit transactions that put a meta value and record a change, or fail half-way; three
lease holders (holder ``hN`` acts through replica N) acquire, renew and release one lease and
write under its fence. Lease times are long (60 s: held for the whole example), negative
(expired as soon as written) or short (50 ms, on the database's clock, with a rule that lets that
much time pass). The model knows when each lease expires within the time its call took; when a
step falls that close to an expiry, either outcome is accepted and the model follows the store's.

After every step, on every replica:

- the committed revisions (each replica's ``commit_watchers``) are 1, 2, 3... in commit order:
  each transaction took the next one, and rolled-back ones left no gap;
- ``changes_since(0)`` is exactly the changes of the committed transactions, revisions
  increasing: none lost, none from a rolled-back or refused transaction;
- never do two holders believe they hold the lease (an epoch, until the time it was taken for
  runs out, less a margin for the clocks), and no epoch was ever handed to two holders; the one
  who believes it holds is the lease's holder;
- a fenced write lands if and only if its holder holds the lease at its epoch with time left.
"""

from __future__ import annotations

import itertools
import time
from typing import ClassVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from portside.control.store import Store
from portside.control.store.database import Deposed, fenced
from tests.support.stores import StoreFactory

LEASE = "leader"
REPLICAS = 3
HOLDERS = [f"h{n}" for n in range(REPLICAS)]
LONG_TTL_S = 60.0
SHORT_TTL_S = 0.05
EXPIRED_TTL_S = -1.0
#: How far the database's clock (SQLite's is in milliseconds) may be from time.time().
CLOCK_SLACK_S = 0.01
#: A holder stops believing it holds this long before its lease's time runs out.
BELIEF_MARGIN_S = 0.03
MACHINE_SETTINGS = settings(max_examples=25, stateful_step_count=30, deadline=None, database=None)


class Boom(Exception):
    """A step of a transaction failed half-way."""


class ReplicasMachine(RuleBasedStateMachine):
    factory: ClassVar[StoreFactory]

    def __init__(self) -> None:
        super().__init__()
        target = self.factory.fresh()
        self.stores: list[Store] = [self.factory(target, writer=f"replica-{n}") for n in range(REPLICAS)]
        #: Every revision committed, in commit order (each replica tells its own).
        self.committed: list[int] = []
        for store in self.stores:
            store.commit_watchers.append(self.committed.append)
        #: What the change log must hold: (revision, writer, topic, key).
        self.log: list[tuple[int, str, str, str]] = []
        self.meta: dict[str, int] = {}
        #: The lease as the database must have it: (holder, epoch, and the earliest and latest
        #: time.time() it expires at), or None.
        self.lease: tuple[str, int, float, float] | None = None
        #: Who each epoch was handed to; the last epoch each holder was given (perhaps stale).
        self.epoch_holders: dict[int, str] = {}
        self.given: dict[str, int] = {}
        #: Holders that believe they hold the lease: at which epoch, until when (time.time()).
        self.believers: dict[str, tuple[int, float]] = {}
        self.fenced_writes = 0

    def teardown(self) -> None:
        for store in self.stores:
            store.close()

    # -- writers

    @rule(replica=st.integers(0, REPLICAS - 1), key=st.sampled_from("abc"), value=st.integers(0, 99))
    def commit(self, replica: int, key: str, value: int) -> None:
        store = self.stores[replica]
        with store.transaction():
            store.put_meta(key, value)
            store.record_change("meta", key)
            revision = store.current_revision
        self.meta[key] = value
        self.log.append((revision, store.writer, "meta", key))

    @rule(replica=st.integers(0, REPLICAS - 1), key=st.sampled_from("abc"), value=st.integers(100, 199))
    def fail_half_way(self, replica: int, key: str, value: int) -> None:
        store = self.stores[replica]
        with pytest.raises(Boom), store.transaction():
            store.put_meta(key, value)
            store.record_change("meta", key)
            raise Boom

    # -- lease holders

    @rule(holder=st.integers(0, REPLICAS - 1), ttl=st.sampled_from([LONG_TTL_S, SHORT_TTL_S, EXPIRED_TTL_S]))
    def acquire(self, holder: int, ttl: float) -> None:
        name = HOLDERS[holder]
        started = time.time()
        epoch = self.stores[holder].acquire_lease(LEASE, name, ttl)
        ended = time.time()
        assert epoch in self._possible_epochs(name, started, ended), f"{name} acquiring {self.lease}"
        if epoch is None:
            self.believers.pop(name, None)
            return
        assert self.epoch_holders.setdefault(epoch, name) == name, f"epoch {epoch} handed to two holders"
        self.lease = (name, epoch, started + ttl, ended + ttl)
        self.given[name] = epoch
        if ttl > 0:
            self.believers[name] = (epoch, started + ttl - BELIEF_MARGIN_S)
        else:
            self.believers.pop(name, None)

    def _possible_epochs(self, name: str, started: float, ended: float) -> set[int | None]:
        if self.lease is None:
            return {1}
        holder, epoch, *_ = self.lease
        if holder == name:
            return {epoch}
        return {"held": {None}, "expired": {epoch + 1}, "either": {None, epoch + 1}}[
            self._held(started, ended)
        ]

    def _held(self, started: float, ended: float) -> str:
        """Whether the database, looking at its clock between ``started`` and ``ended``, finds the
        lease held ("held"), expired, or either (too close to tell)."""
        assert self.lease is not None
        _, _, earliest, latest = self.lease
        if earliest - CLOCK_SLACK_S > ended + CLOCK_SLACK_S:
            return "held"
        if latest + CLOCK_SLACK_S < started - CLOCK_SLACK_S:
            return "expired"
        return "either"

    @rule(ttl=st.sampled_from([LONG_TTL_S, SHORT_TTL_S]))
    def rivals_contend(self, ttl: float) -> None:
        """Every holder but the lease's tries to take it, one after the other, at once."""
        for holder, name in enumerate(HOLDERS):
            if self.lease is None or self.lease[0] != name:
                self.acquire(holder, ttl)

    @rule(holder=st.integers(0, REPLICAS - 1))
    def release(self, holder: int) -> None:
        name = HOLDERS[holder]
        self.stores[holder].release_lease(LEASE, name)
        self.believers.pop(name, None)
        if self.lease is not None and self.lease[0] == name:
            self.lease = (name, self.lease[1], 0.0, 0.0)

    @rule()
    def time_passes(self) -> None:
        """Until a short lease held now has expired, whatever the clocks (nothing else waits on time)."""
        if self.lease is not None and self.lease[3] < time.time() + 2 * SHORT_TTL_S:
            time.sleep(max(0.0, self.lease[3] + 2 * CLOCK_SLACK_S - time.time()))

    @rule(holder=st.integers(0, REPLICAS - 1), stale=st.booleans())
    def fenced_write(self, holder: int, stale: bool) -> None:
        """A holder writes under the epoch it was last given (or the one before: stale; or 1 if none)."""
        name = HOLDERS[holder]
        given = self.given.get(name, 1)
        epoch = given - 1 if stale and given > 1 else given
        store = self.stores[holder]
        self.fenced_writes += 1
        key = f"fenced-{self.fenced_writes}"
        started = time.time()
        try:
            with fenced(LEASE, name, epoch), store.transaction():
                store.put_meta(key, epoch)
                store.record_change("fenced", key)
                revision = store.current_revision
        except Deposed:
            landed = False
        else:
            landed = True
            self.meta[key] = epoch
            self.log.append((revision, store.writer, "fenced", key))
        ours = self.lease is not None and self.lease[:2] == (name, epoch)
        possible = (
            {False}
            if not ours
            else {"held": {True}, "expired": {False}, "either": {True, False}}[
                self._held(started, time.time())
            ]
        )
        assert landed in possible, f"{name} at epoch {epoch}: landed {landed}, the lease is {self.lease}"
        for replica in self.stores:
            assert replica.get_meta(key) == (epoch if landed else None)

    # -- what holds after every step, on every replica

    @invariant()
    def revisions_are_taken_in_order_without_gaps(self) -> None:
        assert self.committed == list(range(1, len(self.committed) + 1))
        for store in self.stores:
            assert store.revision() == len(self.committed)

    @invariant()
    def the_change_log_holds_every_committed_change_and_nothing_else(self) -> None:
        for store in self.stores:
            log = store.changes_since(0)
            assert log == self.log
            assert all(a[0] < b[0] for a, b in itertools.pairwise(log))

    @invariant()
    def every_replica_reads_every_committed_value(self) -> None:
        for store in self.stores:
            for key, value in self.meta.items():
                assert store.get_meta(key) == value, f"{store.writer} reads {key}"

    @invariant()
    def one_holder_at_most_believes_it_holds_the_lease(self) -> None:
        now = time.time()
        believing = {name: epoch for name, (epoch, until) in self.believers.items() if until > now}
        assert len(believing) <= 1, f"two holders believe they hold the lease: {believing}"
        for name, epoch in believing.items():
            for store in self.stores:
                holder, held_epoch, _ = store.lease(LEASE) or ("", 0, 0.0)
                assert (holder, held_epoch) == (name, epoch)


def test_replicas_keep_the_store_contract_under_any_interleaving(store_at: StoreFactory) -> None:
    machine = type("Machine", (ReplicasMachine,), {"factory": store_at})
    run_state_machine_as_test(machine, settings=MACHINE_SETTINGS)
