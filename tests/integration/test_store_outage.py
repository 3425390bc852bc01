"""When PostgreSQL goes away: the store answers StoreUnavailable (503) at once, never hangs, loses
no committed write and keeps no half-written one, and the same Store object works again once the
server is back (control/store/postgres.py reconnects in the background).

Each test breaks a server of its own (``own_postgres_server``), never the session's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from portside.control.store import Store
from portside.control.store.database import StoreUnavailable
from tests.support.postgres import PostgresServer
from tests.support.waiting import eventually

#: How long a call to a stopped server may take before it answers StoreUnavailable.
FAILS_WITHIN_S = 5.0
#: How long after the server is back the same Store object must work again.
RECOVERS_WITHIN_S = 10.0


@pytest.fixture
def store_on(own_postgres_server: PostgresServer) -> Iterator[Store]:
    store = Store(own_postgres_server.create_database("contract_outage"), writer="replica-0")
    try:
        yield store
    finally:
        store.close()


def _unavailable_quickly(call: Callable[[], object]) -> float:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        call()
    took = time.monotonic() - started
    assert took < FAILS_WITHIN_S, f"StoreUnavailable came after {took:.1f} s"
    return took


def _answers(store: Store) -> bool:
    try:
        store.revision()
    except StoreUnavailable:
        return False
    return True


@pytest.mark.parametrize("outage", ["stop", "kill"])
def test_a_stopped_server_answers_unavailable_at_once_and_the_same_store_works_when_it_is_back(
    own_postgres_server: PostgresServer, store_on: Store, outage: str
) -> None:
    store = store_on
    with store.transaction():
        store.put_meta("before", 1)
        store.record_change("meta", "before")
    getattr(own_postgres_server, outage)()  # a clean shutdown, or a crash

    _unavailable_quickly(store.revision)
    _unavailable_quickly(lambda: store.get_meta("before"))  # and every call after, while it is away

    def write() -> None:
        with store.transaction():
            store.put_meta("during", 1)

    _unavailable_quickly(write)

    own_postgres_server.start()
    eventually(
        lambda: _answers(store), timeout=RECOVERS_WITHIN_S, interval=0.2, what="the store reconnecting"
    )
    assert store.get_meta("before") == 1 and store.get_meta("during") is None
    with store.transaction():
        store.put_meta("after", 2)
        store.record_change("meta", "after")
    assert [(rev, key) for rev, _, _, key in store.changes_since(0) or []] == [(1, "before"), (2, "after")]


def test_a_transaction_cut_off_half_way_keeps_nothing(own_postgres_server: PostgresServer, store_on: Store) -> None:
    store = store_on
    with pytest.raises(StoreUnavailable), store.transaction():
        store.put_meta("half", 1)
        store.record_change("meta", "half")
        own_postgres_server.stop()
        store.put_meta("other-half", 1)
    own_postgres_server.start()
    eventually(
        lambda: _answers(store), timeout=RECOVERS_WITHIN_S, interval=0.2, what="the store reconnecting"
    )
    assert store.get_meta("half") is None and store.changes_since(0) == [] and store.revision() == 0
    with store.transaction():  # and the next one takes revision 1: the cut one left no gap
        assert store.current_revision == 1
