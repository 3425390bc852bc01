"""The store's contract under any interleaving of replicas: a hypothesis state machine.

Three ``Store`` objects on one database (SQLite file, PostgreSQL database) are three replicas.
Writers commit transactions that put a meta value and record a change, or fail half-way; three
lease holders (holder ``hN`` acts through replica N) acquire, renew and release one lease and
write under its fence. Lease times are either long (60 s: held for the whole example) or
negative (expired as soon as written), so what the database's clock decides is known.

After every step, on every replica:

- the committed revisions (each replica's ``commit_watchers``) are 1, 2, 3... in commit order:
  each transaction took the next one, and rolled-back ones left no gap;
- ``changes_since(0)`` is exactly the changes of the committed transactions, revisions
  increasing: none lost, none from a rolled-back or refused transaction;
- never do two holders believe they hold the lease (an epoch with time left), and no epoch was
  ever handed to two holders; the one who believes it holds is the lease's holder;
- a fenced write lands if and only if its holder holds the lease at its epoch with time left.
"""

from __future__ import annotations

import itertools
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
EXPIRED_TTL_S = -1.0
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
        #: The lease as the database must have it: (holder, epoch, time left?), or None.
        self.lease: tuple[str, int, bool] | None = None
        #: Who each epoch was handed to; the last epoch each holder was given (perhaps stale).
        self.epoch_holders: dict[int, str] = {}
        self.given: dict[str, int] = {}
        #: Holders that believe they hold the lease with time left, and at which epoch.
        self.believers: dict[str, int] = {}
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

    @rule(holder=st.integers(0, REPLICAS - 1), long=st.booleans())
    def acquire(self, holder: int, long: bool) -> None:
        name = HOLDERS[holder]
        epoch = self.stores[holder].acquire_lease(LEASE, name, LONG_TTL_S if long else EXPIRED_TTL_S)
        assert epoch == self._expected_epoch(name), f"{name} acquiring {self.lease}"
        if epoch is None:
            self.believers.pop(name, None)
            return
        assert self.epoch_holders.setdefault(epoch, name) == name, f"epoch {epoch} handed to two holders"
        self.lease = (name, epoch, long)
        self.given[name] = epoch
        if long:
            self.believers[name] = epoch
        else:
            self.believers.pop(name, None)

    def _expected_epoch(self, name: str) -> int | None:
        if self.lease is None:
            return 1
        holder, epoch, live = self.lease
        if holder == name:
            return epoch
        return None if live else epoch + 1

    @rule(holder=st.integers(0, REPLICAS - 1))
    def release(self, holder: int) -> None:
        name = HOLDERS[holder]
        self.stores[holder].release_lease(LEASE, name)
        self.believers.pop(name, None)
        if self.lease is not None and self.lease[0] == name:
            self.lease = (name, self.lease[1], False)

    @rule(holder=st.integers(0, REPLICAS - 1), stale=st.booleans())
    def fenced_write(self, holder: int, stale: bool) -> None:
        """A holder writes under the epoch it was last given (or the one before: stale; or 1 if none)."""
        name = HOLDERS[holder]
        given = self.given.get(name, 1)
        epoch = given - 1 if stale and given > 1 else given
        store = self.stores[holder]
        self.fenced_writes += 1
        key = f"fenced-{self.fenced_writes}"
        lands = self.lease == (name, epoch, True)
        try:
            with fenced(LEASE, name, epoch), store.transaction():
                store.put_meta(key, epoch)
                store.record_change("fenced", key)
                revision = store.current_revision
        except Deposed:
            assert not lands, f"{name} at epoch {epoch} refused, though the lease is {self.lease}"
        else:
            assert lands, f"{name} at epoch {epoch} wrote, though the lease is {self.lease}"
            self.meta[key] = epoch
            self.log.append((revision, store.writer, "fenced", key))
        for replica in self.stores:
            assert replica.get_meta(key) == (epoch if lands else None)

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
        assert len(self.believers) <= 1, f"two holders believe they hold the lease: {self.believers}"
        for name, epoch in self.believers.items():
            for store in self.stores:
                holder, held_epoch, seconds_left = store.lease(LEASE) or ("", 0, 0.0)
                assert (holder, held_epoch) == (name, epoch) and seconds_left > 0


def test_replicas_keep_the_store_contract_under_any_interleaving(store_at: StoreFactory) -> None:
    machine = type("Machine", (ReplicasMachine,), {"factory": store_at})
    run_state_machine_as_test(machine, settings=MACHINE_SETTINGS)
