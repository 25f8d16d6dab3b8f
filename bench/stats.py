"""Latency percentiles from exact sorted samples (no bucketing error to explain).

Percentiles use the nearest-rank definition HdrHistogram reports: the value at
percentile p is the smallest sample such that at least p% of all samples are
less than or equal to it. A run keeps at most a few hundred thousand samples, so
sorting them is cheaper and simpler than a log-linear histogram.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values; NaN when there are none."""
    if not 0.0 <= p <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {p}")
    n = len(sorted_values)
    if n == 0:
        return math.nan
    # Round before ceil so that e.g. 99.9% of 1000 is rank 999, not 1000 (float error).
    rank = max(1, math.ceil(round(p / 100.0 * n, 9)))
    return float(sorted_values[rank - 1])


@dataclass(frozen=True)
class LatencySummary:
    """Milliseconds; NaN figures when count is 0."""

    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    p999: float
    max: float

    def as_dict(self) -> dict[str, float | int | None]:
        def clean(x: float) -> float | None:
            return None if math.isnan(x) else round(x, 3)

        return {
            "count": self.count,
            "mean_ms": clean(self.mean),
            "p50_ms": clean(self.p50),
            "p90_ms": clean(self.p90),
            "p99_ms": clean(self.p99),
            "p99.9_ms": clean(self.p999),
            "max_ms": clean(self.max),
        }


def summarize(seconds: Iterable[float]) -> LatencySummary:
    """Summary of latencies given in seconds, reported in milliseconds."""
    values = sorted(s * 1000.0 for s in seconds)
    if not values:
        nan = math.nan
        return LatencySummary(0, nan, nan, nan, nan, nan, nan)
    p50, p90, p99, p999 = (percentile(values, p) for p in PERCENTILES)
    return LatencySummary(
        count=len(values),
        mean=math.fsum(values) / len(values),
        p50=p50,
        p90=p90,
        p99=p99,
        p999=p999,
        max=values[-1],
    )
