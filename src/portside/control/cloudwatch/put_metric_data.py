"""PutMetricData: custom metrics into the store, with CloudWatch's rules.

A datum carries exactly one of ``Value``, ``Values`` (with optional ``Counts``) or
``StatisticValues``; it is merged into the bucket of its ``StorageResolution`` (60 s, or 1 s for
high resolution) holding its ``Timestamp`` (now by default). Timestamps may be up to two weeks in
the past and two hours in the future, as on AWS. ``Value`` and ``Values`` data also keep their
distribution, so percentiles (``p99``) can be read back; ``StatisticValues`` cannot. ``AWS/``
namespaces are reserved for what portside measures itself. The whole request is checked before
anything is written.
"""

from __future__ import annotations

import re
from typing import Any

from portside.control.cloudwatch import params as p
from portside.control.cloudwatch.errors import combination, invalid, invalid_value, missing, unsupported
from portside.control.plane import ControlPlane
from portside.core.metric_data import StatisticSet
from portside.core import metric_distribution, metric_stats

MAX_PAST_S = 14 * 24 * 3600
MAX_FUTURE_S = 2 * 3600
MAX_VALUES = 150
STORAGE_RESOLUTIONS = (1, 60)
#: CloudWatch's namespace alphabet: letters, digits, and . - _ / # : (and spaces inside).
NAMESPACE_RE = re.compile(r"^[A-Za-z0-9.\-_/#: ]+$")


def check_namespace(namespace: str, field: str = "Namespace") -> None:
    if not NAMESPACE_RE.match(namespace) or namespace != namespace.strip():
        raise invalid_value(namespace, field, "use letters, digits and . - _ / # : (no leading or trailing space)")
    if namespace.startswith("AWS/"):
        raise invalid_value(namespace, field, "namespaces starting with AWS/ are reserved for AWS's own metrics")


def put_metric_data(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    namespace = params["Namespace"]
    check_namespace(namespace)
    if params.get("EntityMetricData"):
        raise unsupported("EntityMetricData", "portside keeps no entities")
    data = params.get("MetricData") or []
    if not data:
        raise missing("MetricData")
    if len(data) > 1000:
        raise invalid(f"The collection MetricData must not have a size greater than 1000 (got {len(data)}).")
    now = plane.clock()
    writes = [_datum(datum, i, now) for i, datum in enumerate(data, 1)]
    with plane.store.transaction():
        for name, dims, at, stats, unit, resolution, counts in writes:
            if stats is not None:
                plane.store.record_metric(region, namespace, name, dims, at, stats, unit, resolution)
            if counts:
                plane.store.record_distribution(region, namespace, name, dims, at, counts, resolution)
    return {}


def _datum(
    datum: dict[str, Any], i: int, now: float
) -> tuple[str, dict[str, str], float, StatisticSet | None, str, int, dict[int, float]]:
    """(name, dimensions, time, statistic set, unit, resolution, distribution) of one valid datum."""
    field = f"MetricData.{p.MEMBER}.{i}"
    dims = p.dimensions(datum.get("Dimensions"), f"{field}.Dimensions")
    at = p.epoch(datum["Timestamp"]) if datum.get("Timestamp") is not None else now
    if at < now - MAX_PAST_S:
        raise invalid(f"The parameter {field}.Timestamp must specify a time no more than two weeks in the past.")
    if at > now + MAX_FUTURE_S:
        raise invalid(f"The parameter {field}.Timestamp must specify a time no more than two hours in the future.")
    resolution = datum.get("StorageResolution", 60)
    if resolution not in STORAGE_RESOLUTIONS:
        raise invalid_value(resolution, f"{field}.StorageResolution", "must be 1 (high resolution) or 60")
    given = [k for k in ("Value", "Values", "StatisticValues") if datum.get(k) is not None]
    if len(given) > 1:
        raise combination(
            f"The parameters {field}.{given[0]} and {field}.{given[1]} are mutually exclusive and you have specified both."
        )
    if not given:
        raise missing(f"{field}.Value")
    if datum.get("Counts") is not None and given[0] != "Values":
        raise combination(f"The parameter {field}.Counts may only be given with {field}.Values.")
    stats: StatisticSet | None
    counts: dict[int, float] = {}  # a statistic set has no distribution: no percentiles from it
    if given[0] == "Value":
        stats = StatisticSet.of(float(datum["Value"]))
        counts = metric_distribution.distribution_of([float(datum["Value"])])
    elif given[0] == "Values":
        stats = _values(datum["Values"], datum.get("Counts"), field)
        counts = metric_distribution.distribution_of(datum["Values"], datum.get("Counts"))
    else:
        stats = _statistic_values(datum["StatisticValues"], field)
    return datum["MetricName"], dims, at, stats, datum.get("Unit", "None"), resolution, counts


def _values(values: list[float], counts: list[float] | None, field: str) -> StatisticSet | None:
    if len(values) > MAX_VALUES:
        raise invalid(f"The collection {field}.Values must not have a size greater than {MAX_VALUES}.")
    if counts is not None:
        if len(counts) != len(values):
            raise combination(f"The parameters {field}.Values and {field}.Counts must be arrays of the same size.")
        for j, count in enumerate(counts, 1):
            if count < 0:
                raise invalid_value(count, f"{field}.Counts.{p.MEMBER}.{j}", "a count may not be negative")
    if not values:
        raise missing(f"{field}.Values")
    return metric_stats.statistic_of_values([float(v) for v in values], [float(c) for c in counts] if counts else None)


def _statistic_values(sv: dict[str, Any], field: str) -> StatisticSet:
    for name in ("SampleCount", "Sum", "Minimum", "Maximum"):
        if sv.get(name) is None:
            raise missing(f"{field}.StatisticValues.{name}")
    if sv["SampleCount"] <= 0:
        raise invalid_value(sv["SampleCount"], f"{field}.StatisticValues.SampleCount", "must be greater than 0")
    if sv["Minimum"] > sv["Maximum"]:
        raise invalid(f"The parameter {field}.StatisticValues.Minimum must not be greater than Maximum.")
    return StatisticSet(float(sv["SampleCount"]), float(sv["Sum"]), float(sv["Minimum"]), float(sv["Maximum"]))
