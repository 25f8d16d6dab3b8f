"""Bootstrap intervals over users: every figure a decision rests on carries one.

Users are the unit that is resampled (their lists are independent; their items
are not). A paired interval resamples the same users for both strategies, so
the shared per-user variance cancels and a small steady gain can be told from
noise on a few hundred users.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
RESAMPLES = 1000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    users: int

    def excludes_zero_above(self) -> bool:
        """The whole interval lies above 0: the first strategy is better."""
        return self.low > 0.0

    def row(self) -> dict[str, float | int]:
        return {
            "mean": round(self.mean, 4),
            "low": round(self.low, 4),
            "high": round(self.high, 4),
            "users": self.users,
        }

    def text(self) -> str:
        return f"{self.mean:+.4f} [{self.low:+.4f}, {self.high:+.4f}] on {self.users} users"


def _resample_means(values: F64, seed: int, resamples: int) -> F64:
    rng = np.random.default_rng(seed)
    n = len(values)
    means = np.empty(resamples)
    for start in range(0, resamples, 100):  # bounds the (100, n) index temporaries
        idx = rng.integers(0, n, size=(min(100, resamples - start), n))
        means[start : start + len(idx)] = values[idx].mean(axis=1)
    return means


def interval(values: npt.ArrayLike, seed: int = 0, resamples: int = RESAMPLES) -> Interval:
    """Mean of per-user ``values`` with its percentile bootstrap interval."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        raise ValueError("no users to bootstrap over")
    means = _resample_means(v, seed, resamples)
    tail = (1.0 - LEVEL) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return Interval(float(v.mean()), float(low), float(high), len(v))


def paired(a: npt.ArrayLike, b: npt.ArrayLike, seed: int = 0) -> Interval:
    """Interval of mean(a - b) over the same users: > 0 means a beats b."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired bootstrap needs the same users: {x.shape} vs {y.shape}")
    return interval(x - y, seed)


def coverage_interval(
    lists: npt.NDArray[np.int64], n_items: int, seed: int = 0, resamples: int = 200
) -> Interval:
    """Catalogue coverage of users' top lists, resampling users."""
    rng = np.random.default_rng(seed)
    n = len(lists)

    def cover(rows: npt.NDArray[np.int64]) -> float:
        shown = rows[rows >= 0]
        return len(np.unique(shown)) / max(n_items, 1)

    whole = cover(lists)
    values = np.array([cover(lists[rng.integers(0, n, n)]) for _ in range(resamples)])
    # A resample repeats users, so it shows fewer distinct books than the whole set:
    # shift the resamples by that bias so the interval brackets the figure it is for.
    values += whole - values.mean()
    tail = (1.0 - LEVEL) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return Interval(whole, float(low), float(high), n)
