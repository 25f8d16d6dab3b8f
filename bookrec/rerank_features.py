"""The reranker's features: one function shared by training and serving.

The trainer computes these for ALS candidates to fit the LightGBM ranker; the
server computes them, with this same code, for the candidates of a request.
The names and their order are saved with the model (``reranker_features.json``)
and checked when a bundle opens, so a model can never be fed shuffled columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FEATURES: tuple[str, ...] = (
    "als_score",  # ALS inner product
    "als_rank",  # 0-based rank among the candidates
    "subject_cos",  # cosine of the user's pooled favourite subjects and the book's subjects
    "favourite_overlap",  # how many of the book's subjects are among the user's favourites
    "book_log_count",  # log(1 + training interactions of the book)
    "book_mean",  # mean explicit rating of the book (0 when none)
    "book_std",
    "user_log_count",  # log(1 + training interactions of the user)
    "user_mean",
    "user_std",
    "same_author",  # books by this author in the user's history
    "same_series",  # books of this series in the user's history
    "next_in_series",  # 1 when the book is the volume after the user's latest in its series
    "year_bucket",  # 0 unknown, 1 before 1900, then decades
    "prior",  # Bayesian popularity prior
)
F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]


UNKNOWN_AUTHOR = "Unknown Author"


def year_buckets(years: npt.NDArray[np.int16]) -> npt.NDArray[np.int8]:
    """0 = unknown year, 1 = before 1900, then one bucket per decade up to 2020s."""
    y = years.astype(np.int32)
    buckets = np.where(y < 1900, 1, 2 + (np.minimum(y, 2029) - 1900) // 10)
    out: npt.NDArray[np.int8] = np.where(y == 0, 0, buckets).astype(np.int8)
    return out


def dense_ids(values: list[str], none: str = "") -> I32:
    """1-based ids per distinct value in order of first appearance; empty and ``none`` -> 0.

    Only equality matters to the features, so trainer and server may each build
    these from the same strings."""
    index: dict[str, int] = {}
    out = np.zeros(len(values), dtype=np.int32)
    for i, v in enumerate(values):
        if v and v != none:
            out[i] = index.setdefault(v, len(index) + 1)
    return out


@dataclass(frozen=True)
class ItemTable:
    """Per-book columns, indexed by item_idx."""

    author_id: I32
    series_id: I32  # 0 = not in a series
    series_volume: npt.NDArray[np.int16]
    book_subjects: I32  # (n, S), -1 padded
    subject_vectors: F32  # (n, d) L2-normalised pooled subject vectors; zero rows allowed
    year_bucket: npt.NDArray[np.int8]
    prior: F32
    count: I32
    mean: F32
    std: F32


@dataclass(frozen=True)
class UserContext:
    history: I32  # training items of the user
    favourite_subjects: I32  # -1 padded
    subject_vector: F32  # (d,) L2-normalised, zeros when unknown
    count: float
    mean: float
    std: float


def _history_counts(
    history_keys: I32, cand_keys: I32
) -> tuple[F32, npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
    """How often each candidate's key occurs in the history; also where and whether."""
    keys, counts = np.unique(history_keys, return_counts=True)
    if len(keys) == 0:
        none = np.zeros(len(cand_keys), dtype=bool)
        return np.zeros(len(cand_keys), np.float32), np.zeros(len(cand_keys), np.intp), none
    pos = np.minimum(np.searchsorted(keys, cand_keys), len(keys) - 1)
    hit = (keys[pos] == cand_keys) & (cand_keys > 0)
    return np.where(hit, counts[pos], 0).astype(np.float32), pos, hit


def compute(table: ItemTable, user: UserContext, cand: I32, als_scores: F32) -> F32:
    """(len(cand), len(FEATURES)) float32, columns in FEATURES order."""
    n = len(cand)
    out = np.empty((n, len(FEATURES)), dtype=np.float32)
    out[:, 0] = als_scores
    out[:, 1] = np.arange(n, dtype=np.float32)
    out[:, 2] = table.subject_vectors[cand] @ user.subject_vector
    fav = user.favourite_subjects[user.favourite_subjects >= 0]
    subj = table.book_subjects[cand]
    # A broadcast compare against <= 5 favourites: several times cheaper than np.isin here.
    out[:, 3] = (subj[:, :, None] == fav[None, None, :]).any(axis=2).sum(axis=1) if len(fav) else 0
    out[:, 4] = np.log1p(table.count[cand])
    out[:, 5] = table.mean[cand]
    out[:, 6] = table.std[cand]
    out[:, 7] = np.log1p(user.count)
    out[:, 8] = user.mean
    out[:, 9] = user.std
    out[:, 10], _, _ = _history_counts(table.author_id[user.history], table.author_id[cand])
    hist_series = table.series_id[user.history]
    in_series = hist_series > 0
    cand_series = table.series_id[cand]
    counts, pos, hit = _history_counts(hist_series[in_series], cand_series)
    out[:, 11] = counts
    out[:, 12] = 0.0
    if hit.any():
        keys = np.unique(hist_series[in_series])
        latest = np.zeros(len(keys), dtype=np.int32)
        vols = table.series_volume[user.history][in_series].astype(np.int32)
        np.maximum.at(latest, np.searchsorted(keys, hist_series[in_series]), vols)
        out[:, 12] = hit & (table.series_volume[cand] == latest[pos] + 1)
    out[:, 13] = table.year_bucket[cand]
    out[:, 14] = table.prior[cand]
    return out
