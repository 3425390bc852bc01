"""``PortsideAgent.ReportMetrics``: load-balancer nodes' ``AWS/ApplicationELB`` measurements.

A ``portside lb`` node measures what its own listeners served (proxy/cloudwatch_sample.py) and
reports it every period (lb_node_metrics.py); the measurements are merged into the same buckets
the leader records its own into, so RequestCount and the rest count every node's traffic.

The request (JSON, signed like every agent protocol call)::

    {"periodSeconds": 60, "ageSeconds": 0,
     "measurements": [{"metricName": "RequestCount", "dimensions": {"LoadBalancer": "app/web/..."},
                       "sampleCount": 1, "sum": 12, "minimum": 12, "maximum": 12, "unit": "Count",
                       "distribution": {"-230": 3}}]}

``ageSeconds``: how long ago the period ended (a report resent after an outage). Only the metrics
a node measures, with AWS's dimension sets naming load balancers and target groups of this region,
are accepted; the whole report is checked before anything is written, and a bad one is refused
naming the field (InvalidParameterException).
"""

from __future__ import annotations

import math
from typing import Any

from portside.control.controllers.alb_metrics import record, resolution_for
from portside.control.plane import ControlPlane
from portside.core import alb_metrics as core
from portside.core.metric_data import StatisticSet
from portside.errors import InvalidParameterException

MAX_MEASUREMENTS = 5000
MAX_BUCKETS = 4000
MAX_PERIOD_S = 3600
MAX_AGE_S = 14 * 24 * 3600  # as PutMetricData: two weeks
#: What nodes report (host counts are the leader's alone) and its unit.
REPORTABLE = {
    "RequestCount": "Count", "RequestCountPerTarget": "Count", "HTTPCode_ELB_4XX_Count": "Count",
    "HTTPCode_ELB_5XX_Count": "Count", "HTTPCode_Target_2XX_Count": "Count", "HTTPCode_Target_3XX_Count": "Count",
    "HTTPCode_Target_4XX_Count": "Count", "HTTPCode_Target_5XX_Count": "Count", "TargetResponseTime": "Seconds",
    "ActiveConnectionCount": "Count",
}
DIMENSION_SETS = (frozenset({"LoadBalancer"}), frozenset({"LoadBalancer", "TargetGroup"}))


def report_metrics(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    period = _number(params.get("periodSeconds"), "periodSeconds", 1, MAX_PERIOD_S)
    age = _number(params.get("ageSeconds", 0), "ageSeconds", 0, MAX_AGE_S)
    items = params.get("measurements")
    if not isinstance(items, list) or len(items) > MAX_MEASUREMENTS:
        raise InvalidParameterException(f"measurements must be a list of at most {MAX_MEASUREMENTS}.")
    known_lbs = {core.dimension_value(body["LoadBalancerArn"]) for body in plane.store.load_balancers(region)}
    measured = [_measurement(item, i, known_lbs) for i, item in enumerate(items)]
    with plane.store.transaction():
        record(plane.store, region, measured, plane.clock() - age - period / 2, resolution_for(period))
    return {"recorded": len(measured)}


def _number(value: Any, field: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InvalidParameterException(f"{field} must be a number from {low:g} to {high:g}.")
    return float(value)


def _measurement(item: Any, i: int, known_lbs: set[str]) -> core.Measurement:
    field = f"measurements[{i}]"
    if not isinstance(item, dict):
        raise InvalidParameterException(f"{field} must be an object.")
    name = item.get("metricName")
    if name not in REPORTABLE:
        raise InvalidParameterException(f"{field}.metricName must be one of {', '.join(sorted(REPORTABLE))}.")
    if item.get("unit") != REPORTABLE[name]:
        raise InvalidParameterException(f"{field}.unit must be {REPORTABLE[name]} for {name}.")
    dims = item.get("dimensions")
    if not isinstance(dims, dict) or frozenset(dims) not in DIMENSION_SETS or not all(isinstance(v, str) for v in dims.values()):
        raise InvalidParameterException(f"{field}.dimensions must be LoadBalancer, or TargetGroup and LoadBalancer, as text.")
    if dims["LoadBalancer"] not in known_lbs:
        raise InvalidParameterException(f"{field}.dimensions.LoadBalancer {dims['LoadBalancer']!r} is no load balancer of this region.")
    if "TargetGroup" in dims and not dims["TargetGroup"].startswith("targetgroup/"):
        raise InvalidParameterException(f"{field}.dimensions.TargetGroup must be targetgroup/<name>/<id>.")
    values = [item.get(k) for k in ("sampleCount", "sum", "minimum", "maximum")]
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in values):
        raise InvalidParameterException(f"{field}: sampleCount, sum, minimum and maximum must be finite numbers.")
    count, total, low, high = (float(v) for v in values)
    if count < 0 or low > high:
        raise InvalidParameterException(f"{field}: sampleCount must be 0 or more and minimum at most maximum.")
    return core.Measurement(name, dict(dims), StatisticSet(count, total, low, high), REPORTABLE[name],
                            _distribution(item.get("distribution"), field))


def _distribution(value: Any, field: str) -> dict[int, float] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > MAX_BUCKETS:
        raise InvalidParameterException(f"{field}.distribution must be an object of at most {MAX_BUCKETS} buckets.")
    buckets: dict[int, float] = {}
    for key, count in value.items():
        try:
            bucket = int(key)
        except ValueError:
            bucket = None
        if bucket is None or abs(bucket) > 1 << 41 or isinstance(count, bool) or not isinstance(count, (int, float)) \
                or not math.isfinite(count) or count < 0:
            raise InvalidParameterException(f"{field}.distribution: {key!r} must be an integer bucket with a count of 0 or more.")
        buckets[bucket] = float(count)
    return buckets
