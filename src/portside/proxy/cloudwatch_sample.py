"""Sampling a proxy's counters into ``AWS/ApplicationELB`` measurements, period after period.

Shared by the leader (control/controllers/alb_metrics.py, which writes them to the store) and by
``portside lb`` nodes (lb_node_metrics.py, which report them to the control plane). Not on the
request path: it reads the counters the proxy keeps (per listener, per target group) once per
period and takes the per-period latency extremes and buckets from each group.
"""

from __future__ import annotations

from typing import Any

from portside.core import alb_metrics as core

#: What a load-balancer node's health view says only for itself: recorded by the leader alone.
LEADER_ONLY = frozenset({"HealthyHostCount", "UnHealthyHostCount"})


class ProxySampler:
    def __init__(self, runtime: Any, *, gauges: bool = True) -> None:
        """``runtime``: a ``ProxyRuntime``; ``gauges``: also measure the host counts (``LEADER_ONLY``)."""
        self.runtime = runtime
        self.gauges = gauges
        self._balancers: dict[str, core.LoadBalancerSample] = {}
        self._groups: dict[str, core.GroupSample] = {}
        self._balancers, self._groups, _ = self.sample()  # the baseline: the first period counts from here

    def measure(self) -> list[core.Measurement]:
        """What the counters grew by since the last call, as measurements."""
        balancers, groups, group_balancer = self.sample()
        measured = core.measurements(balancers, groups, group_balancer, self._balancers, self._groups)
        self._balancers, self._groups = balancers, groups
        if not self.gauges:
            measured = [m for m in measured if m.metric_name not in LEADER_ONLY]
        return measured

    def sample(self) -> tuple[dict[str, core.LoadBalancerSample], dict[str, core.GroupSample], dict[str, str]]:
        """The counters now: (balancers, groups, group -> balancer)."""
        lb = self.runtime
        balancers: dict[str, core.LoadBalancerSample] = {}
        groups: dict[str, core.GroupSample] = {}
        group_balancer: dict[str, str] = {}
        if lb is None:
            return balancers, groups, group_balancer
        totals: dict[str, dict[str, Any]] = {}
        for listener in lb.config.listeners:
            total = totals.setdefault(listener.load_balancer_arn, {"requests": 0, "errors": {}, "connections": 0})
            bound = lb.listeners.get(listener.arn)
            if bound is not None:
                total["requests"] += bound.requests
                total["connections"] += len(bound.connections)
                for code, count in bound.elb_errors.items():
                    total["errors"][code] = total["errors"].get(code, 0) + count
            for rule in listener.rules:
                for action in rule.actions:
                    for group in action.target_groups:
                        group_balancer.setdefault(group.arn, listener.load_balancer_arn)
        for arn, total in totals.items():
            balancers[arn] = core.LoadBalancerSample(total["requests"], total["errors"], total["connections"])
        for arn, group in lb.groups.items():
            extremes = group.take_latency_extremes()
            latency_buckets = group.take_latency_buckets()
            states = [target.state for target in group.targets.values() if not target.draining]
            groups[arn] = core.GroupSample(
                requests=group.requests, by_code=dict(group.by_code), latency_count=sum(group.latency_counts),
                latency_sum_s=group.latency_sum_s,
                latency_min_s=extremes[0] if extremes else None, latency_max_s=extremes[1] if extremes else None,
                healthy=sum(1 for s in states if s == "healthy"), unhealthy=sum(1 for s in states if s == "unhealthy"),
                latency_buckets=latency_buckets,
            )
        return balancers, groups, group_balancer
