"""Random pieces of a workload: Poisson arrival times and Zipf-distributed ids.

Open-loop load sends at precomputed *intended* times, independent of how fast
replies come back, so a slow server cannot slow the client down and hide its
own latency (coordinated omission). Real traffic is bursty; Poisson arrivals
(exponential gaps) are the usual model of many independent users.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

T = TypeVar("T")
_BLOCK = 4096


def poisson_offsets(
    rate: float, duration: float, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """Intended send times in seconds from the start, in [0, duration), at ``rate`` per second."""
    if rate <= 0 or duration <= 0:
        raise ValueError(f"rate and duration must be positive, got {rate}, {duration}")
    # Draw a few more gaps than expected, then extend until the window is covered.
    n = int(rate * duration + 6 * np.sqrt(rate * duration) + 16)
    times = np.cumsum(rng.exponential(1.0 / rate, size=n))
    while times[-1] < duration:
        more = times[-1] + np.cumsum(rng.exponential(1.0 / rate, size=n))
        times = np.concatenate([times, more])
    out: npt.NDArray[np.float64] = times[times < duration]
    return out


class ZipfSampler(Generic[T]):
    """Rank r (1-based) is drawn with probability proportional to 1 / r**s.

    Unlike ``numpy.random.zipf`` this is bounded to ``len(items)`` and works for
    any exponent s >= 0 (s = 0 is uniform). ``items`` are given most popular
    first: the caller decides which real ids are the head of the distribution.
    """

    def __init__(self, items: Sequence[T], s: float, rng: np.random.Generator) -> None:
        if not items:
            raise ValueError("ZipfSampler needs at least one item")
        if s < 0:
            raise ValueError(f"Zipf exponent must be >= 0, got {s}")
        self.items = items
        self.s = s
        self._rng = rng
        weights = 1.0 / np.arange(1, len(items) + 1, dtype=np.float64) ** s
        cdf = np.cumsum(weights)
        self._cdf = cdf / cdf[-1]
        self._buffer: list[int] = []

    def probability(self, rank: int) -> float:
        """Probability of the item at 0-based ``rank``."""
        lower = self._cdf[rank - 1] if rank > 0 else 0.0
        return float(self._cdf[rank] - lower)

    def ranks(self, n: int) -> npt.NDArray[np.int64]:
        """``n`` 0-based ranks."""
        u = self._rng.random(n)
        out: npt.NDArray[np.int64] = np.minimum(
            np.searchsorted(self._cdf, u, side="right"), len(self._cdf) - 1
        ).astype(np.int64)
        return out

    def sample(self) -> T:
        """One item; ranks are drawn in blocks because one numpy call per request is slow."""
        if not self._buffer:
            self._buffer = self.ranks(_BLOCK).tolist()[::-1]
        return self.items[self._buffer.pop()]
