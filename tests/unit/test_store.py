"""The store package: the proxy's health store, existing state directories, transaction boundaries."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from portside.control.store import Store
from portside.proxy.health import HealthStore

TG = "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/web/0123456789abcdef"
LB = "arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/web/0123456789abcdef"


def _schema(path: Path) -> list[tuple[str, str, str]]:
    db = sqlite3.connect(path)
    try:
        return sorted(db.execute("SELECT type, name, COALESCE(sql, '') FROM sqlite_master"))
    finally:
        db.close()


def test_the_store_is_the_proxys_health_store_and_keeps_states_across_a_reopen(tmp_path: Path) -> None:
    store = Store(tmp_path / "portside.db")
    health: HealthStore = store  # the proxy's protocol, structurally
    health.save_health(TG, "i-1", 32768, {"state": "healthy", "reason": None})
    health.save_health(TG, "i-1", 32769, {"state": "unhealthy", "reason": "Target.Timeout"})
    health.save_health(TG, "i-1", 32769, None)  # forgotten
    store.close()

    again = Store(tmp_path / "portside.db")
    try:
        assert again.load_health() == {(TG, "i-1", 32768): {"state": "healthy", "reason": None}}
    finally:
        again.close()


def test_a_state_directory_written_before_the_store_owned_target_health_opens_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "portside.db"
    Store(path).close()
    old = sqlite3.connect(path)
    old.execute("DROP TABLE lb_target_health")
    # What the proxy's SqliteHealthStore ran on the server's connection, and a state it saved.
    old.execute(
        "CREATE TABLE IF NOT EXISTS lb_target_health (group_arn TEXT NOT NULL, target_id TEXT NOT NULL, "
        "port INTEGER NOT NULL, state TEXT NOT NULL, PRIMARY KEY (group_arn, target_id, port))"
    )
    old.execute("INSERT OR REPLACE INTO lb_target_health VALUES (?, ?, ?, ?)", (TG, "10.0.0.7", 8080, '{"state": "draining"}'))
    old.commit()
    old.close()
    before = _schema(path)

    store = Store(path)
    try:
        assert store.load_health() == {(TG, "10.0.0.7", 8080): {"state": "draining"}}
    finally:
        store.close()
    assert _schema(path) == before


def test_store_methods_write_inside_the_callers_transaction_and_roll_back_with_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "portside.db")
    try:
        listener = {"ListenerArn": LB.replace("loadbalancer/", "listener/") + "/1", "LoadBalancerArn": LB, "Port": 80}
        with pytest.raises(RuntimeError), store.transaction():
            store.add_load_balancer("us-east-1", {"LoadBalancerArn": LB, "LoadBalancerName": "web"})
            store.add_listener("us-east-1", listener)
            store.put_tag("us-east-1", LB, "team", "a")
            raise RuntimeError("a later step failed")
        assert store.load_balancers(None) == [] and store.listener_ports() == {} and store.tags_of(LB) == []

        with store.transaction():
            store.add_load_balancer("us-east-1", {"LoadBalancerArn": LB, "LoadBalancerName": "web"})
            store.add_listener("us-east-1", listener)
        with pytest.raises(RuntimeError), store.transaction():
            assert store.delete_load_balancer(LB, store.listener_arns_of(LB)) == []
            raise RuntimeError("a later step failed")
        assert [lb["LoadBalancerArn"] for lb in store.load_balancers("us-east-1")] == [LB]
        assert store.listeners_with_load_balancers() == [(listener, {"LoadBalancerArn": LB, "LoadBalancerName": "web"})]
    finally:
        store.close()
