"""GetMetricData: many metrics' values per period, with Ids, ReturnData, ScanBy and pagination.

Each query is a ``MetricStat`` (a metric, a period, a ``Stat`` of ``SampleCount``, ``Average``,
``Sum``, ``Minimum``, ``Maximum`` or a percentile ``pNN``: periods with no distribution, only
statistic sets, are left out of a percentile's values). Metric math (``Expression``), other
extended statistics (``tm99``, ``IQM``...) and cross-account queries are refused by name. Results
list every query with ``ReturnData`` true (the default), newest first unless ``ScanBy`` is
``TimestampAscending``; at most ``MaxDatapoints`` values are returned per call and ``NextToken``
carries on from there.
"""

from __future__ import annotations

import re
from typing import Any

from portside.control.cloudwatch import params as p
from portside.control.cloudwatch.errors import CloudWatchError, invalid, invalid_value, missing, unsupported
from portside.control.plane import ControlPlane
from portside.core import metric_stats

MAX_QUERIES = 500
DEFAULT_MAX_DATAPOINTS = 100_800
ID_RE = re.compile(r"^[a-z][a-zA-Z0-9_]*$")
SCAN_BY = ("TimestampDescending", "TimestampAscending")


def get_metric_data(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    start, end = p.time_range(params)
    queries = params["MetricDataQueries"]
    if not queries:
        raise missing("MetricDataQueries")
    if len(queries) > MAX_QUERIES:
        raise invalid(f"The collection MetricDataQueries must not have a size greater than {MAX_QUERIES}.")
    if params.get("LabelOptions") is not None:
        raise unsupported("LabelOptions", "portside has no dynamic labels")
    scan_by = params.get("ScanBy", "TimestampDescending")
    if scan_by not in SCAN_BY:
        raise invalid_value(scan_by, "ScanBy", f"must be one of {', '.join(SCAN_BY)}")
    max_points = params.get("MaxDatapoints", DEFAULT_MAX_DATAPOINTS)
    if max_points < 1:
        raise invalid_value(max_points, "MaxDatapoints", "must be at least 1")
    _check_queries(queries)
    offset = p.decode_token(params.get("NextToken"))

    series: list[tuple[dict[str, Any], list[tuple[int, float]]]] = []
    for query in queries:
        if query.get("ReturnData", True):
            series.append((query, _values(plane, region, query, start, end, scan_by)))
    total = sum(len(values) for _, values in series)
    if offset > total:
        raise CloudWatchError("InvalidNextToken", "The NextToken is past the end of these results.")
    results, position, budget = [], 0, max_points
    for query, values in series:
        first = max(0, offset - position)
        taken = values[first : first + budget] if first < len(values) else []
        position += len(values)
        budget -= len(taken)
        stat = query["MetricStat"]
        results.append({
            "Id": query["Id"],
            "Label": query.get("Label") or stat["Metric"]["MetricName"],
            "Timestamps": [p.as_datetime(ts) for ts, _ in taken],
            "Values": [value for _, value in taken],
            "StatusCode": "Complete" if first + len(taken) >= len(values) else "PartialData",
            "Messages": [],
        })
    result: dict[str, Any] = {"MetricDataResults": results, "Messages": []}
    returned = sum(len(r["Values"]) for r in results)
    if offset + returned < total:
        result["NextToken"] = p.encode_token(offset + returned)
    return result


def _check_queries(queries: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    returned = 0
    for i, query in enumerate(queries, 1):
        field = f"MetricDataQueries.{p.MEMBER}.{i}"
        qid = query["Id"]
        if not ID_RE.match(qid):
            raise invalid_value(qid, f"{field}.Id", "must start with a lowercase letter and hold only letters, digits and _")
        if qid in seen:
            raise invalid(f"The value {qid} for parameter {field}.Id is not unique: each query needs its own Id.")
        seen.add(qid)
        if query.get("AccountId") is not None:
            raise unsupported(f"{field}.AccountId", "portside serves one account")
        if query.get("Expression") is not None:
            if query.get("MetricStat") is not None:
                raise CloudWatchError(
                    "InvalidParameterCombination",
                    f"The parameters {field}.MetricStat and {field}.Expression are mutually exclusive and you have specified both.",
                )
            raise unsupported(f"{field}.Expression", "portside does not evaluate metric math expressions")
        stat = query.get("MetricStat")
        if stat is None:
            raise missing(f"{field}.MetricStat")
        if stat["Stat"] not in metric_stats.STATISTICS and not metric_stats.PERCENTILE_RE.match(stat["Stat"]):
            raise invalid_value(stat["Stat"], f"{field}.MetricStat.Stat",
                                f"portside serves {', '.join(metric_stats.STATISTICS)} and percentiles pNN")
        p.period(stat["Period"], f"{field}.MetricStat.Period")
        if query.get("Period") is not None:
            p.period(query["Period"], f"{field}.Period")
        if not stat["Metric"].get("Namespace"):
            raise missing(f"{field}.MetricStat.Metric.Namespace")
        if not stat["Metric"].get("MetricName"):
            raise missing(f"{field}.MetricStat.Metric.MetricName")
        p.dimensions(stat["Metric"].get("Dimensions"), f"{field}.MetricStat.Metric.Dimensions")
        returned += bool(query.get("ReturnData", True))
    if not returned:
        raise invalid("At least one query in MetricDataQueries must have ReturnData true.")


def _values(
    plane: ControlPlane, region: str, query: dict[str, Any], start: float, end: float, scan_by: str
) -> list[tuple[int, float]]:
    stat = query["MetricStat"]
    metric = stat["Metric"]
    period = stat["Period"]
    dims = p.dimensions(metric.get("Dimensions"), "Dimensions")
    aligned = start // period * period
    points = plane.store.metric_datapoints(region, metric["Namespace"], metric["MetricName"], dims, aligned, end)
    periods = metric_stats.aggregate(points, period, stat.get("Unit"))
    if stat["Stat"] in metric_stats.STATISTICS:
        values = [(ps.ts, metric_stats.statistic(ps.stats, stat["Stat"])) for ps in periods]
    else:
        stored = plane.store.metric_distributions(region, metric["Namespace"], metric["MetricName"], dims, aligned, end)
        distributions = metric_stats.period_distributions(stored, period)
        values = []
        for ps in periods:
            value = metric_stats.percentile_of(stat["Stat"], ps.stats, distributions.get(ps.ts))
            if value is not None:
                values.append((ps.ts, value))
    return values if scan_by == "TimestampAscending" else values[::-1]
