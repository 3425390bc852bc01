"""The alarm loop: every round, evaluate every CloudWatch metric alarm (core/alarms.py) and store
the states that changed, with their history and action items (control/alarms.py).

Runs on the leader every ``--scaling-period`` seconds (60 by default, CloudWatch's one-minute
evaluation). The values an alarm in ALARM last evaluated are kept in its ``_breachValues``, which
the scaler reads to pick a step scaling policy's step (control/scaling_policies.py).
"""

from __future__ import annotations

import logging
from typing import Any

from portside.control import rounds
from portside.control.cloudwatch import alarms
from portside.control.plane import ControlPlane
from portside.core import alarms as core

log = logging.getLogger("portside.alarms")


class AlarmController(rounds.Periodic):
    def __init__(self, plane: ControlPlane, period_s: float) -> None:
        super().__init__(period_s, "alarm round", log)
        self.plane = plane

    def round(self) -> None:
        self.tick(self.plane.clock())

    def tick(self, now: float) -> None:
        for region, body in self.plane.store.alarms_everywhere():
            self.evaluate(region, body, now)

    def evaluate(self, region: str, body: dict[str, Any], now: float) -> None:
        rule = alarms.rule_of(body)
        lookback = (rule.evaluation_periods + core.EXTRA_PERIODS + 1) * rule.period_s
        dimensions = {d["Name"]: d["Value"] for d in body.get("Dimensions", [])}
        store = self.plane.store
        metric = (region, body["Namespace"], body["MetricName"], dimensions, now - lookback, now)
        points = store.metric_datapoints(*metric)
        distributions = store.metric_distributions(*metric) if rule.percentile is not None else {}
        unit = body.get("Unit")
        buckets = [
            core.Bucket(p.ts, p.stats.sample_count, p.stats.sum, p.stats.minimum, p.stats.maximum, distributions.get(p.ts))
            for p in points if unit is None or p.unit == unit
        ]
        current = core.AlarmState(body["StateValue"])
        result = core.evaluate(rule, buckets, now, current)
        values = list(result.breach_values)
        if result.state is current and body.get("_breachValues") == values:
            return
        with self.plane.store.transaction():
            fresh = self.plane.store.alarm(region, body["AlarmName"])
            if fresh is None or fresh.get("AlarmConfigurationUpdatedTimestamp") != body.get("AlarmConfigurationUpdatedTimestamp"):
                return  # deleted or redefined since it was read: the next round evaluates the new one
            fresh["_breachValues"] = values
            if result.state is current:
                self.plane.store.put_alarm(region, fresh)
                return
            alarms.change_state(self.plane, region, fresh, result.state.value, result.reason,
                                core.to_json(result.reason_data), now)
        log.info("alarm %s: %s -> %s (%s)", body["AlarmName"], current.value, result.state.value, result.reason)
