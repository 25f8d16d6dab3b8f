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
