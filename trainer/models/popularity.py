"""Bayesian popularity prior used by cold start and as a ranking feature.

prior = 0.5 * bayes + 0.5 * reach, both in [0, 1]:
- bayes: Bayesian average of explicit ratings,
  (C * m + sum of ratings) / (C + n), with m the global mean explicit rating
  and C the prior strength, rescaled from 1..10 to 0..1. A book with few
  ratings is pulled towards the global mean instead of topping the list.
- reach: log(1 + interactions) / log(1 + max interactions), counting implicit
  interactions too, so widely read books rank above niche ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Popularity:
    prior: npt.NDArray[np.float32]  # counts and means live in features.Aggregates


def bayesian_prior(
    items: npt.NDArray[np.int32],
    ratings: npt.NDArray[np.int8],
    n_items: int,
    strength: float = 10.0,
) -> Popularity:
    count = np.bincount(items, minlength=n_items).astype(np.int32)
    explicit = ratings > 0
    n_exp = np.bincount(items[explicit], minlength=n_items).astype(np.float64)
    sums = np.bincount(items[explicit], weights=ratings[explicit], minlength=n_items)
    global_mean = float(sums.sum() / max(n_exp.sum(), 1.0)) if n_exp.sum() else 5.5
    bayes = (strength * global_mean + sums) / (strength + n_exp)
    bayes01 = (bayes - 1.0) / 9.0
    reach = np.log1p(count) / np.log1p(max(int(count.max(initial=0)), 1))
    prior = 0.5 * bayes01 + 0.5 * reach
    return Popularity(prior.astype(np.float32))


# Popularity's served form is a trained choice (issue 22 item 3; trainer/models/cold.py):
# plain counts, counts over a recent window (data with timestamps), or the prior above.
# Each is served as ``served01``: in [0, 1], the scale ColdStart's blend and the new-user
# shrink (bookrec/blend.py ``shrunk``) mix it on.
COUNTS, RECENT, PRIOR = "counts", "recent", "prior"
RECENT_SHARE = 0.25  # "recent": the latest quarter of the interactions by time


def counts(items: npt.NDArray[np.int32], n_items: int) -> npt.NDArray[np.float32]:
    """Interactions per book (a play count is one interaction, whatever its weight)."""
    return np.bincount(items, minlength=n_items).astype(np.float32)


def recent_counts(
    items: npt.NDArray[np.int32], timestamps: npt.NDArray[np.int64], n_items: int
) -> npt.NDArray[np.float32] | None:
    """Interactions per book among the latest ``RECENT_SHARE`` by time; None when some
    interaction has no timestamp."""
    if len(items) == 0 or bool((timestamps < 0).any()):
        return None
    cut = np.quantile(timestamps, 1.0 - RECENT_SHARE)
    return counts(items[timestamps >= cut], n_items)


def forms(
    items: npt.NDArray[np.int32],
    ratings: npt.NDArray[np.int8],
    timestamps: npt.NDArray[np.int64],
    n_items: int,
    strength: float = 10.0,
) -> dict[str, npt.NDArray[np.float32]]:
    """Every candidate form on these interactions, as ``served01`` scores."""
    out = {
        COUNTS: served01(counts(items, n_items)),
        PRIOR: served01(bayesian_prior(items, ratings, n_items, strength).prior),
    }
    recent = recent_counts(items, timestamps, n_items)
    if recent is not None:
        # Ties (books read as often in the window) go to the all-time count.
        every = counts(items, n_items)
        out[RECENT] = served01(recent + every / (float(every.max()) + 1.0))
    return out


def served01(scores: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """A popularity score mapped to [0, 1] without changing its order: counts through
    log(1 + c) (their heavy tail would leave every book but the head near 0), then
    min-max."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return s.astype(np.float32)
    s = np.log1p(np.maximum(s, 0.0)) if float(s.max()) > 1.0 else s
    span = max(float(s.max() - s.min()), 1e-12)
    out: npt.NDArray[np.float32] = ((s - s.min()) / span).astype(np.float32)
    return out
