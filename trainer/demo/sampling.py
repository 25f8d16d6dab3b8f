"""Array aliases and the seeded sampling helpers every stage shares.

Why: the catalogue, users, ratings and dirt all need skewed, distinct or per-group draws;
one vectorised implementation keeps the stages readable and fast at the bookcrossing scale.
Every helper takes the caller's generator, never its own, so each stage keeps its own stream
and the output stays deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def _zipf(n: int, exponent: float) -> FloatArray:
    """Normalised 1/rank**exponent weights: the skew every popularity here follows."""
    w: FloatArray = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    out: FloatArray = w / w.sum()
    return out


def _unique_draws(n: int, draw: Callable[[int], IntArray]) -> IntArray:
    """``n`` distinct values in draw order; redraws only on (rare) collisions."""
    out = np.empty(0, dtype=np.int64)
    while out.size < n:
        pool = np.concatenate([out, draw(int((n - out.size) * 1.05) + 16)])
        _, first = np.unique(pool, return_index=True)
        out = pool[np.sort(first)]
    return out[:n]


def _group_cdf(groups: IntArray, weights: FloatArray, n_groups: int) -> FloatArray:
    """Keys ``g + cdf_within_g`` for rows sorted by group, so one ``searchsorted`` on
    ``g + u`` samples an item of group ``g`` for many (g, u) pairs at once."""
    totals = np.bincount(groups, weights=weights, minlength=n_groups).astype(np.float64)
    before = np.cumsum(totals) - totals
    within = (np.cumsum(weights) - before[groups]) / np.where(totals > 0, totals, 1.0)[groups]
    last = np.r_[groups[1:] != groups[:-1], True]
    within[last] = 1.0
    keys: FloatArray = groups.astype(np.float64) + np.clip(within, 0.0, 1.0)
    return keys


def _sample_groups(keys: FloatArray, groups: IntArray, u: FloatArray) -> IntArray:
    """Row positions drawn by ``_group_cdf`` keys; every group asked for must be non-empty."""
    pos = np.searchsorted(keys, groups + u * (1.0 - 1e-12), side="right")
    return np.minimum(pos, keys.size - 1).astype(np.int64)


def _compact(mat: IntArray) -> IntArray:
    """Move the valid (>= 0) entries of each row to the front, keeping their order."""
    order = np.argsort(np.where(mat >= 0, 0, 1), axis=1, kind="stable")
    out: IntArray = np.take_along_axis(mat, order, axis=1)
    return out


def _distinct_rows(cand: IntArray, keep: BoolArray, exclude: IntArray | None = None) -> IntArray:
    """Candidates per row with duplicates (and ``exclude``) dropped, compacted, -1 padded."""
    out = np.where(keep, cand, -1)
    for j in range(cand.shape[1]):
        dup = np.zeros(cand.shape[0], dtype=np.bool_)
        for k in range(j):
            dup |= out[:, k] == out[:, j]
        if exclude is not None:
            dup |= out[:, j] == exclude
        out[:, j] = np.where(dup, -1, out[:, j])
    return _compact(out.astype(np.int64))


def _pick(rng: np.random.Generator, n: int, k: int) -> IntArray:
    """``k`` distinct positions out of ``n`` (all of them when ``k >= n``), sorted."""
    k = min(k, n)
    return np.sort(rng.choice(n, size=k, replace=False)).astype(np.int64)
