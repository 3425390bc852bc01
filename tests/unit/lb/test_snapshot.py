"""core/lb/snapshot.py: the routing snapshot's JSON round trip, its revision, strict reading."""

from __future__ import annotations

import dataclasses
import json

import pytest

from portside.core.lb.model import (
    Action,
    Certificate,
    Condition,
    HealthCheck,
    LbConfig,
    Listener,
    Rule,
    Target,
    TargetGroup,
    TargetGroupAttributes,
    WeightedTargetGroup,
)
from portside.core.lb.snapshot import (
    SnapshotError,
    config_from_json,
    config_to_json,
    revision,
    without_local_paths,
)

CERT = Certificate("arn:aws:acm:us-east-1:000000000000:certificate/a", "/srv/a.crt", "/srv/a.key")
NODE_CERT = Certificate(CERT.arn, "/node/a.crt", "/node/a.key")


def rich_config(cert: Certificate = CERT) -> LbConfig:
    group = TargetGroup(
        arn="arn:tg/web",
        name="web",
        protocol="HTTPS",
        port=80,
        target_type="instance",
        health_check=HealthCheck(protocol="HTTPS", path="/health", interval_s=5, matcher="200-299"),
        attributes=TargetGroupAttributes(
            slow_start_s=30, algorithm="least_outstanding_requests", stickiness_enabled=True
        ),
        targets=(
            Target("i-1", 49153, "10.0.0.2"),
            Target(
                "i-2",
                49154,
                "10.0.0.3",
                connect_address="172.17.0.4",
                connect_port=80,
                draining=True,
                drain_deadline=1765000000.5,
            ),
        ),
    )
    rules = (
        Rule(
            "arn:rule/1",
            10,
            (
                Condition("path-pattern", ("/api/*",)),
                Condition("http-header", ("a*",), header_name="X-Env"),
                Condition("query-string", query_pairs=((None, "x"), ("k", "v"))),
            ),
            (
                Action(
                    "forward",
                    target_groups=(WeightedTargetGroup("arn:tg/web", 3),),
                    stickiness_enabled=True,
                    stickiness_duration_s=60,
                ),
            ),
        ),
        Rule(
            "arn:rule/default",
            50001,
            (),
            (Action("fixed-response", fixed_status=503, fixed_content_type="text/plain", fixed_body="no"),),
            is_default=True,
        ),
    )
    listener = Listener(
        "arn:listener/1", "arn:lb/1", "HTTPS", 8443, "0.0.0.0", rules, certificates=(cert,), idle_timeout_s=5,
        ssl_policy="ELBSecurityPolicy-TLS13-1-3-2021-06", server_header=False,
    )
    return LbConfig(listeners=(listener,), target_groups={group.arn: group})


def test_round_trip_through_json_text_keeps_every_field() -> None:
    document = json.loads(json.dumps(config_to_json(rich_config())))
    assert config_from_json(document, {CERT.arn: CERT}) == rich_config()


def test_certificates_travel_as_arns_and_come_back_as_the_nodes_files() -> None:
    document = config_to_json(rich_config())
    assert document["listeners"][0]["certificates"] == [CERT.arn]
    assert "/srv/a.key" not in json.dumps(document)
    assert config_from_json(document, {CERT.arn: NODE_CERT}) == rich_config(NODE_CERT)


def test_a_listener_certificate_missing_from_the_snapshot_is_named() -> None:
    with pytest.raises(
        SnapshotError, match=r"listeners\[0\]\.certificates\[0\]: certificate .* not in the snapshot"
    ):
        config_from_json(config_to_json(rich_config()), {})


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["listeners"][0].update(port="80"), r"listeners\[0\]\.port: expected int, got str"),
        (
            lambda d: d["listeners"][0]["rules"][0].update(priority=True),
            r"listeners\[0\]\.rules\[0\]\.priority: expected int",
        ),
        (
            lambda d: d["targetGroups"][0]["targets"][0].update(zone="a"),
            r"targetGroups\[0\]\.targets\[0\]\.zone: not a field of Target",
        ),
        (lambda d: d["targetGroups"][0].pop("name"), r"targetGroups\[0\]: .*name"),
        (
            lambda d: d["listeners"][0]["rules"][0]["conditions"][2].update(query_pairs=[["k"]]),
            r"query_pairs\[0\]: expected a list of 2",
        ),
        (lambda d: d.update(listeners={}), r"snapshot\.listeners: expected a list"),
        (lambda d: d.update(extra=1), r"snapshot\.extra: not a field"),
    ],
)
def test_bad_snapshots_are_refused_naming_the_field(edit: object, message: str) -> None:
    document = json.loads(json.dumps(config_to_json(rich_config())))
    edit(document)  # type: ignore[operator]
    with pytest.raises(SnapshotError, match=message):
        config_from_json(document, {CERT.arn: CERT})


def test_missing_optional_fields_take_the_models_defaults() -> None:
    document = {
        "targetGroups": [
            {
                "arn": "g",
                "name": "g",
                "protocol": "HTTP",
                "port": 80,
                "target_type": "ip",
                "health_check": {},
                "attributes": {},
            }
        ]
    }
    group = config_from_json(document, {}).target_groups["g"]
    assert (
        group.health_check == HealthCheck()
        and group.attributes == TargetGroupAttributes()
        and group.targets == ()
    )


def test_the_revision_changes_with_any_field_and_only_then() -> None:
    document = config_to_json(rich_config())
    same = json.loads(json.dumps(document))
    assert revision(document) == revision(same) == revision({**same, "revision": 7})
    assert 0 <= revision(document) < 2**48
    same["targetGroups"][0]["targets"][0]["port"] = 49155
    assert revision(same) != revision(document)
    with_cert = {**document, "certificates": {CERT.arn: {"certificate": "A", "privateKey": "K"}}}
    renewed = {**document, "certificates": {CERT.arn: {"certificate": "B", "privateKey": "K"}}}
    assert len({revision(document), revision(with_cert), revision(renewed)}) == 3


def test_without_local_paths_drops_only_the_servers_bridge_shortcut() -> None:
    config = without_local_paths(rich_config())
    targets = config.target_groups["arn:tg/web"].targets
    assert [(t.connect_address, t.connect_port) for t in targets] == [(None, None), (None, None)]
    original = rich_config().target_groups["arn:tg/web"].targets[1]
    assert targets[1] == dataclasses.replace(original, connect_address=None, connect_port=None)
    assert config.listeners == rich_config().listeners
