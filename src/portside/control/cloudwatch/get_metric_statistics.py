"""GetMetricStatistics: one metric's statistics per period over a time range.

``Statistics`` (SampleCount, Average, Sum, Minimum, Maximum) come from the stored statistic sets;
``ExtendedStatistics`` (percentiles ``p0``..``p100``, e.g. ``p99`` or ``p99.9``) from the stored
distributions, within about 1 % (core/metric_distribution.py). A period whose data was all sent
as ``StatisticValues`` has no distribution: its datapoint leaves that percentile out.
"""

from __future__ import annotations

from typing import Any

from portside.control.cloudwatch import params as p
from portside.control.cloudwatch.errors import combination, invalid_value
from portside.control.plane import ControlPlane
from portside.core import metric_stats

#: Datapoints one call may return, as on AWS.
MAX_DATAPOINTS = 1440


def get_metric_statistics(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    start, end = p.time_range(params)
    period = p.period(params["Period"], "Period")
    statistics = params.get("Statistics") or []
    extended = params.get("ExtendedStatistics") or []
    if not statistics and not extended:
        raise combination("Must specify either Statistics or ExtendedStatistics, but not both.")
    if statistics and extended:
        raise combination("Must specify either Statistics or ExtendedStatistics, but not both.")
    for i, name in enumerate(extended, 1):
        if not metric_stats.PERCENTILE_RE.match(name):
            raise invalid_value(name, f"ExtendedStatistics.member.{i}", "must be a percentile p0 to p100, e.g. p99 or p99.9")
    requested = int((end - start + period - 1) // period)
    if requested > MAX_DATAPOINTS:
        raise combination(
            f"You have requested up to {requested} datapoints, which exceeds the limit of {MAX_DATAPOINTS}. "
            "You may reduce the datapoints requested by increasing Period, or decreasing the time range."
        )
    dims = p.dimensions(params.get("Dimensions"), "Dimensions")
    aligned = start // period * period
    points = plane.store.metric_datapoints(region, params["Namespace"], params["MetricName"], dims, aligned, end)
    distributions: dict[int, dict[int, float]] = {}
    if extended:
        stored = plane.store.metric_distributions(region, params["Namespace"], params["MetricName"], dims, aligned, end)
        distributions = metric_stats.period_distributions(stored, period)
    datapoints = []
    for period_stats in metric_stats.aggregate(points, period, params.get("Unit")):
        point: dict[str, Any] = {"Timestamp": p.as_datetime(period_stats.ts), "Unit": period_stats.unit}
        for name in statistics:
            point[name] = metric_stats.statistic(period_stats.stats, name)
        if extended:
            values = {name: metric_stats.percentile_of(name, period_stats.stats, distributions.get(period_stats.ts))
                      for name in extended}
            point["ExtendedStatistics"] = {name: value for name, value in values.items() if value is not None}
        datapoints.append(point)
    return {"Label": params["MetricName"], "Datapoints": datapoints}
