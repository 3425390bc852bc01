"""core/lb/node.py: a node's bind address, the loops it refuses, and the listener diff it applies."""

from __future__ import annotations

import dataclasses

from portside.core.lb.model import HealthCheck, LbConfig, Listener, Target, TargetGroup, TargetGroupAttributes
from portside.core.lb.node import ListenerChanges, for_node, listener_changes, without_loops

WEB = Listener("arn:l/web", "arn:lb/1", "HTTP", 8080, "127.0.0.1", ())
TLS = Listener("arn:l/tls", "arn:lb/1", "HTTPS", 8443, "0.0.0.0", ())
API = ("10.0.0.1", 7070)


def config(*targets: Target) -> LbConfig:
    group = TargetGroup(
        "arn:tg/g", "g", "HTTP", 80, "ip", HealthCheck(), TargetGroupAttributes(), targets=targets
    )
    return LbConfig(listeners=(WEB, TLS), target_groups={group.arn: group})


def test_for_node_binds_every_listener_at_the_given_address_or_leaves_the_schemes() -> None:
    assert [listener.bind_host for listener in for_node(config(), "127.0.0.2").listeners] == [
        "127.0.0.2",
        "127.0.0.2",
    ]
    assert for_node(config(), None) == config()


def test_ordinary_targets_are_kept_untouched() -> None:
    targets = (
        Target("10.0.0.5", 49153, "10.0.0.5"),
        Target("i-1", 7070, "10.0.0.6"),
        Target("i-2", 8080, "10.0.0.7"),
    )
    served, problems = without_loops(config(*targets), [API], local_addresses={"127.0.0.1"})
    assert served == config(*targets) and problems == []


def test_a_target_at_the_apis_address_and_port_is_left_out_and_named() -> None:
    ok = Target("i-1", 49153, "10.0.0.1")  # the API's host, another port: a copy there is fine
    api = Target("i-9", 7070, "10.0.0.1")
    served, problems = without_loops(config(ok, api), [("10.0.0.2", 7070), API], local_addresses=())
    assert served.target_groups["arn:tg/g"].targets == (ok,)
    assert len(problems) == 1 and "i-9 (10.0.0.1) port 7070 is the portside API's own address" in problems[0]
    assert problems[0].startswith("target group g:") and problems[0].endswith("left out on this node")


def test_an_api_on_this_host_is_reached_by_any_local_address() -> None:
    api_here = ("127.0.0.1", 7070)
    looping = Target("127.0.0.2", 7070, "127.0.0.2")
    served, problems = without_loops(config(looping), [api_here], local_addresses={"127.0.0.1", "127.0.0.2"})
    assert served.target_groups["arn:tg/g"].targets == () and len(problems) == 1
    # the same target on a node whose API is on another host is fine
    served, problems = without_loops(config(looping), [API], local_addresses={"127.0.0.2"})
    assert served.target_groups["arn:tg/g"].targets == (looping,) and problems == []


def test_a_local_target_at_one_of_the_nodes_listener_ports_is_left_out() -> None:
    looping = Target("i-3", 8443, "127.0.0.1")
    remote = Target("i-4", 8443, "10.0.0.8")  # another host's port 8443 is not this node's listener
    served, problems = without_loops(config(looping, remote), [API], local_addresses={"127.0.0.1"})
    assert served.target_groups["arn:tg/g"].targets == (remote,)
    assert "portside's own listener arn:l/tls" in problems[0]


def test_listener_changes_bind_new_close_gone_and_rebind_moved() -> None:
    assert listener_changes({}, [WEB, TLS]) == ListenerChanges(bind=(WEB, TLS))
    assert listener_changes({WEB.arn: WEB, TLS.arn: TLS}, [WEB, TLS]).empty
    assert listener_changes({WEB.arn: WEB, TLS.arn: TLS}, [TLS]) == ListenerChanges(close=(WEB.arn,))
    moved = dataclasses.replace(WEB, port=8081)
    assert listener_changes({WEB.arn: WEB}, [moved]) == ListenerChanges(close=(WEB.arn,), bind=(moved,))
    tls_now = dataclasses.replace(WEB, protocol="HTTPS")
    assert listener_changes({WEB.arn: WEB}, [tls_now]) == ListenerChanges(close=(WEB.arn,), bind=(tls_now,))
    elsewhere = dataclasses.replace(WEB, bind_host="127.0.0.2")
    assert listener_changes({WEB.arn: WEB}, [elsewhere]) == ListenerChanges(
        close=(WEB.arn,), bind=(elsewhere,)
    )


def test_rules_and_timeouts_change_without_a_rebind() -> None:
    quicker = dataclasses.replace(WEB, idle_timeout_s=5)
    assert listener_changes({WEB.arn: WEB}, [quicker]).empty


def test_a_port_handed_to_another_listener_is_closed_before_it_is_bound() -> None:
    successor = dataclasses.replace(WEB, arn="arn:l/new")
    changes = listener_changes({WEB.arn: WEB}, [successor])
    assert changes == ListenerChanges(close=(WEB.arn,), bind=(successor,))
