"""ELBv2 records: load balancers, listeners, rules, target groups, certificates and tags.

Bodies are AWS-shaped JSON (compact, as they always were); rows are updated in place, so rowid
order is creation order, which Describe* pages through. Registered targets are in
``store/elb_targets.py``. Writers that must commit together are called inside one
``transaction()`` by control/elbv2.
"""

from __future__ import annotations

import json
from typing import Any

#: The table of each ARN kind (``core`` ARN kinds, as control/elbv2/common.py names them).
_TABLES = {
    "loadbalancer": "elb_load_balancers",
    "targetgroup": "elb_target_groups",
    "listener": "elb_listeners",
    "listener-rule": "elb_rules",
}


def _dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))


def _bodies(rows: Any) -> list[dict[str, Any]]:
    return [json.loads(r[0]) for r in rows]


def _in_region(region: str | None) -> tuple[str, tuple[Any, ...]]:
    return ("WHERE region=? ", (region,)) if region is not None else ("", ())


class ElbRecords:
    db: Any

    # -- any kind

    def elb_record(self, kind: str, region: str, arn: str) -> dict[str, Any] | None:
        """The record of ``kind`` (loadbalancer, targetgroup, listener, listener-rule) with ``arn`` in ``region``."""
        row = self.db.execute(f"SELECT body FROM {_TABLES[kind]} WHERE arn=? AND region=?", (arn, region)).fetchone()
        return json.loads(row[0]) if row else None

    def elb_record_named(self, kind: str, region: str, name: str) -> dict[str, Any] | None:
        """The load balancer or target group named ``name`` in ``region``."""
        assert kind in ("loadbalancer", "targetgroup"), kind
        rows = _bodies(self.db.execute(f"SELECT body FROM {_TABLES[kind]} WHERE region=? AND name=?", (region, name)))
        return rows[0] if rows else None

    # -- load balancers

    def add_load_balancer(self, region: str, body: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO elb_load_balancers (arn, region, name, body) VALUES (?, ?, ?, ?)",
            (body["LoadBalancerArn"], region, body["LoadBalancerName"], _dumps(body)),
        )

    def update_load_balancer(self, body: dict[str, Any]) -> None:
        self.db.execute("UPDATE elb_load_balancers SET body=? WHERE arn=?", (_dumps(body), body["LoadBalancerArn"]))

    def load_balancers(self, region: str | None) -> list[dict[str, Any]]:
        """The load balancers of ``region`` (or of every region when None), in creation order."""
        where, args = _in_region(region)
        return _bodies(self.db.execute(f"SELECT body FROM elb_load_balancers {where}ORDER BY rowid", args))

    def delete_load_balancer(self, arn: str, listener_arns: list[str]) -> list[str]:
        """Delete the load balancer, its listeners ``listener_arns`` and their rules; the rules' ARNs."""
        rule_arns: list[str] = []
        for listener in listener_arns:
            rule_arns += [r[0] for r in self.db.execute("SELECT arn FROM elb_rules WHERE listener_arn=?", (listener,))]
            self.db.execute("DELETE FROM elb_rules WHERE listener_arn=?", (listener,))
        self.db.execute("DELETE FROM elb_listeners WHERE load_balancer_arn=?", (arn,))
        self.db.execute("DELETE FROM elb_load_balancers WHERE arn=?", (arn,))
        return rule_arns

    # -- listeners

    def add_listener(self, region: str, body: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO elb_listeners (arn, region, load_balancer_arn, port, body) VALUES (?, ?, ?, ?, ?)",
            (body["ListenerArn"], region, body["LoadBalancerArn"], body["Port"], _dumps(body)),
        )

    def update_listener(self, body: dict[str, Any]) -> None:
        """Store the listener's body and port."""
        self.db.execute(
            "UPDATE elb_listeners SET body=?, port=? WHERE arn=?", (_dumps(body), body["Port"], body["ListenerArn"])
        )

    def update_listener_body(self, body: dict[str, Any]) -> None:
        """Store the listener's body (its port unchanged)."""
        self.db.execute("UPDATE elb_listeners SET body=? WHERE arn=?", (_dumps(body), body["ListenerArn"]))

    def delete_listener(self, arn: str) -> None:
        """Delete the listener and its rules."""
        self.db.execute("DELETE FROM elb_rules WHERE listener_arn=?", (arn,))
        self.db.execute("DELETE FROM elb_listeners WHERE arn=?", (arn,))

    def listeners(self, region: str | None) -> list[dict[str, Any]]:
        """The listeners of ``region`` (or of every region when None), in creation order."""
        where, args = _in_region(region)
        return _bodies(self.db.execute(f"SELECT body FROM elb_listeners {where}ORDER BY rowid", args))

    def listeners_of(self, load_balancer_arn: str) -> list[dict[str, Any]]:
        """A load balancer's listeners in creation order."""
        return _bodies(
            self.db.execute(
                "SELECT body FROM elb_listeners WHERE load_balancer_arn=? ORDER BY rowid", (load_balancer_arn,)
            )
        )

    def listener_arns_of(self, load_balancer_arn: str) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT arn FROM elb_listeners WHERE load_balancer_arn=?", (load_balancer_arn,))]

    def count_listeners(self, load_balancer_arn: str) -> int:
        row = self.db.execute("SELECT COUNT(*) FROM elb_listeners WHERE load_balancer_arn=?", (load_balancer_arn,)).fetchone()
        return int(row[0])

    def listeners_on_port(self, port: int) -> list[dict[str, Any]]:
        """The listeners (of any region) on ``port``."""
        return _bodies(self.db.execute("SELECT body FROM elb_listeners WHERE port=?", (port,)))

    def listener_ports(self) -> dict[int, str]:
        """Port -> ARN of every listener, of every region."""
        return {int(port): arn for port, arn in self.db.execute("SELECT port, arn FROM elb_listeners").fetchall()}

    def listener_load_balancers(self, region: str) -> dict[str, str]:
        """Listener ARN -> its load balancer's ARN, for the listeners of ``region``."""
        rows = self.db.execute("SELECT arn, load_balancer_arn FROM elb_listeners WHERE region=?", (region,))
        return {arn: lb for arn, lb in rows}

    def listeners_with_load_balancers(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Every listener (of every region) with its load balancer's record."""
        rows = self.db.execute(
            "SELECT l.body, b.body FROM elb_listeners l JOIN elb_load_balancers b ON b.arn = l.load_balancer_arn"
        )
        return [(json.loads(listener), json.loads(lb)) for listener, lb in rows]

    # -- rules

    def add_rule(self, region: str, listener_arn: str, body: dict[str, Any], priority: int) -> None:
        """Store a rule; ``priority`` is the sort key (the default rule's sorts last)."""
        self.db.execute(
            "INSERT INTO elb_rules (arn, region, listener_arn, priority, is_default, body) VALUES (?, ?, ?, ?, ?, ?)",
            (body["RuleArn"], region, listener_arn, priority, int(bool(body.get("IsDefault"))), _dumps(body)),
        )

    def update_rule(self, body: dict[str, Any], priority: int) -> None:
        self.db.execute("UPDATE elb_rules SET body=?, priority=? WHERE arn=?", (_dumps(body), priority, body["RuleArn"]))

    def delete_rule(self, arn: str) -> None:
        self.db.execute("DELETE FROM elb_rules WHERE arn=?", (arn,))

    def rules_of(self, listener_arn: str) -> list[dict[str, Any]]:
        """A listener's rules by priority, the default rule last."""
        return _bodies(
            self.db.execute(
                "SELECT body FROM elb_rules WHERE listener_arn=? ORDER BY is_default, priority, rowid", (listener_arn,)
            )
        )

    def rule_listener(self, rule_arn: str) -> str:
        """The ARN of the listener a stored rule belongs to."""
        row = self.db.execute("SELECT listener_arn FROM elb_rules WHERE arn=?", (rule_arn,)).fetchone()
        return str(row[0])

    def rules_by_listener(self, region: str | None) -> list[tuple[str, dict[str, Any]]]:
        """(listener ARN, rule) for every rule of ``region`` (or of every region), in creation order."""
        where, args = _in_region(region)
        rows = self.db.execute(f"SELECT listener_arn, body FROM elb_rules {where}ORDER BY rowid", args)
        return [(listener, json.loads(body)) for listener, body in rows]

    # -- target groups

    def add_target_group(self, region: str, body: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO elb_target_groups (arn, region, name, body) VALUES (?, ?, ?, ?)",
            (body["TargetGroupArn"], region, body["TargetGroupName"], _dumps(body)),
        )

    def update_target_group(self, body: dict[str, Any]) -> None:
        self.db.execute("UPDATE elb_target_groups SET body=? WHERE arn=?", (_dumps(body), body["TargetGroupArn"]))

    def delete_target_group(self, arn: str) -> None:
        """Delete the target group and its registered targets."""
        self.db.execute("DELETE FROM elb_targets WHERE target_group_arn=?", (arn,))
        self.db.execute("DELETE FROM elb_target_groups WHERE arn=?", (arn,))

    def target_groups(self, region: str | None) -> list[dict[str, Any]]:
        """The target groups of ``region`` (or of every region when None), in creation order."""
        where, args = _in_region(region)
        return _bodies(self.db.execute(f"SELECT body FROM elb_target_groups {where}ORDER BY rowid", args))

    # -- certificates

    def put_certificate(self, region: str, name: str, body: dict[str, Any]) -> None:
        """Store a new certificate, or a new body for a stored one (same ARN)."""
        self.db.execute(
            "INSERT INTO elb_certificates (arn, region, name, body) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(arn) DO UPDATE SET body=excluded.body",
            (body["CertificateArn"], region, name, _dumps(body)),
        )

    def certificate(self, region: str, arn: str) -> dict[str, Any] | None:
        rows = _bodies(self.db.execute("SELECT body FROM elb_certificates WHERE arn=? AND region=?", (arn, region)))
        return rows[0] if rows else None

    def certificate_named(self, region: str, name: str) -> dict[str, Any] | None:
        rows = _bodies(self.db.execute("SELECT body FROM elb_certificates WHERE region=? AND name=?", (region, name)))
        return rows[0] if rows else None

    def certificates(self, region: str | None) -> list[dict[str, Any]]:
        """The certificates of ``region`` (or of every region when None)."""
        if region is None:
            return _bodies(self.db.execute("SELECT body FROM elb_certificates"))
        return _bodies(self.db.execute("SELECT body FROM elb_certificates WHERE region=?", (region,)))

    # -- tags

    def tags_of(self, arn: str) -> list[tuple[str, str]]:
        """(key, value) of the resource's tags, in the order they were first added."""
        return [(k, v) for k, v in self.db.execute("SELECT key, value FROM elb_tags WHERE arn=? ORDER BY rowid", (arn,))]

    def put_tag(self, region: str, arn: str, key: str, value: str) -> None:
        """Add a tag, or replace the value of the resource's tag with this key (it keeps its place)."""
        self.db.execute(
            "INSERT INTO elb_tags (arn, key, value, region) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(arn, key) DO UPDATE SET value=excluded.value",
            (arn, key, value, region),
        )

    def delete_tag(self, arn: str, key: str) -> None:
        self.db.execute("DELETE FROM elb_tags WHERE arn=? AND key=?", (arn, key))

    def delete_tags_of(self, arn: str) -> None:
        self.db.execute("DELETE FROM elb_tags WHERE arn=?", (arn,))
