"""CloudWatch-style metric datapoints: statistic sets per metric, per time bucket.

A metric is (region, namespace, metric name, dimensions); ``dimensions`` is stored as canonical
JSON (a list of ``[name, value]`` pairs sorted by name), so one metric has one key whatever
order its dimensions were given in. Each row is one bucket of ``resolution`` seconds (60, or 1
for high-resolution custom metrics) starting at ``ts``, holding the statistic set AWS keeps:
sample count, sum, minimum and maximum. Recording into an existing bucket merges the sets, so
many writers (replicas, agents' reports, PutMetricData) may feed one metric.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from portside.core.metric_data import Datapoint, StatisticSet

#: Dimensions as given: name -> value.
Dimensions = Mapping[str, str]


def dimensions_key(dimensions: Dimensions) -> str:
    """The canonical text of a metric's dimensions (sorted by name)."""
    return json.dumps(sorted([str(k), str(v)] for k, v in dimensions.items()), separators=(",", ":"))


def dimensions_of(key: str) -> dict[str, str]:
    return {name: value for name, value in json.loads(key)}


_MERGE = (
    "ON CONFLICT (region, namespace, metric_name, dimensions, resolution, ts) DO UPDATE SET "
    "sample_count = cw_datapoints.sample_count + excluded.sample_count, "
    "total = cw_datapoints.total + excluded.total, "
    "minimum = CASE WHEN excluded.minimum < cw_datapoints.minimum THEN excluded.minimum ELSE cw_datapoints.minimum END, "
    "maximum = CASE WHEN excluded.maximum > cw_datapoints.maximum THEN excluded.maximum ELSE cw_datapoints.maximum END, "
    "unit = excluded.unit"
)


class MetricRecords:
    db: Any

    def record_metric(
        self,
        region: str,
        namespace: str,
        metric_name: str,
        dimensions: Dimensions,
        at: float,
        stats: StatisticSet,
        unit: str = "None",
        resolution: int = 60,
    ) -> None:
        """Merge ``stats`` into the bucket of ``resolution`` seconds holding time ``at``."""
        ts = int(at // resolution) * resolution
        self.db.execute(
            "INSERT INTO cw_datapoints (region, namespace, metric_name, dimensions, resolution, ts, unit, "
            "sample_count, total, minimum, maximum) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) " + _MERGE,
            (region, namespace, metric_name, dimensions_key(dimensions), resolution, ts, unit,
             stats.sample_count, stats.sum, stats.minimum, stats.maximum),
        )

    def metric_datapoints(
        self, region: str, namespace: str, metric_name: str, dimensions: Dimensions, start: float, end: float
    ) -> list[Datapoint]:
        """The stored buckets of one metric (its dimensions exactly) starting in [start, end), oldest first."""
        rows = self.db.execute(
            "SELECT ts, resolution, unit, sample_count, total, minimum, maximum FROM cw_datapoints "
            "WHERE region=? AND namespace=? AND metric_name=? AND dimensions=? AND ts >= ? AND ts < ? ORDER BY ts",
            (region, namespace, metric_name, dimensions_key(dimensions), start, end),
        )
        return [Datapoint(int(ts), int(res), unit, StatisticSet(n, s, lo, hi)) for ts, res, unit, n, s, lo, hi in rows]

    def metric_keys(self, region: str, namespace: str | None = None, since: float = 0.0) -> list[tuple[str, str, dict[str, str]]]:
        """(namespace, metric name, dimensions) of every metric with a bucket at or after ``since``."""
        sql = "SELECT DISTINCT namespace, metric_name, dimensions FROM cw_datapoints WHERE region=? AND ts >= ?"
        args: list[Any] = [region, since]
        if namespace is not None:
            sql += " AND namespace=?"
            args.append(namespace)
        rows = self.db.execute(sql + " ORDER BY namespace, metric_name, dimensions", args)
        return [(ns, name, dimensions_of(dims)) for ns, name, dims in rows]

    def trim_metrics(self, before: float) -> int:
        """Drop buckets that start before ``before``; how many went."""
        cursor = self.db.execute("DELETE FROM cw_datapoints WHERE ts < ?", (before,))
        return int(cursor.rowcount or 0)
