"""CloudWatch metric distributions: counts per value bucket, per metric and time bucket.

The companion of ``cw_datapoints`` (store/metrics.py) for percentiles: a row is one value bucket
(core/metric_distribution.py) of one metric's time bucket, keyed like a datapoint plus ``bucket``;
recording adds counts, so many writers may feed one metric.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from portside.control.store.metrics import Dimensions, dimensions_key


class DistributionRecords:
    db: Any

    def record_distribution(
        self, region: str, namespace: str, metric_name: str, dimensions: Dimensions, at: float,
        buckets: Mapping[int, float], resolution: int = 60,
    ) -> None:
        """Add ``buckets`` (value bucket -> count) to the time bucket of ``resolution`` seconds holding ``at``."""
        ts = int(at // resolution) * resolution
        key = dimensions_key(dimensions)
        for bucket, count in buckets.items():
            self.db.execute(
                "INSERT INTO cw_distributions (region, namespace, metric_name, dimensions, resolution, ts, bucket, samples) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (region, namespace, metric_name, dimensions, resolution, ts, bucket) DO UPDATE SET "
                "samples = cw_distributions.samples + excluded.samples",
                (region, namespace, metric_name, key, resolution, ts, bucket, float(count)),
            )

    def metric_distributions(
        self, region: str, namespace: str, metric_name: str, dimensions: Dimensions, start: float, end: float
    ) -> dict[int, dict[int, float]]:
        """Time bucket start -> {value bucket: count} for the time buckets starting in [start, end)."""
        rows = self.db.execute(
            "SELECT ts, bucket, samples FROM cw_distributions WHERE region=? AND namespace=? AND metric_name=? "
            "AND dimensions=? AND ts >= ? AND ts < ?",
            (region, namespace, metric_name, dimensions_key(dimensions), start, end),
        )
        result: dict[int, dict[int, float]] = {}
        for ts, bucket, samples in rows:
            into = result.setdefault(int(ts), {})
            into[int(bucket)] = into.get(int(bucket), 0.0) + float(samples)
        return result

    def trim_distributions(self, before: float) -> int:
        """Drop time buckets that start before ``before``; how many rows went."""
        cursor = self.db.execute("DELETE FROM cw_distributions WHERE ts < ?", (before,))
        return int(cursor.rowcount or 0)
