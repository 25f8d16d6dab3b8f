"""The reranker's features: one function shared by training and serving.

The trainer computes these for the candidates of the served retrieval (ALS, or
the ALS + item-item blend) to fit the LightGBM ranker; the server computes
them, with this same code, for the candidates of a request. The names and their
order are saved with the model (``reranker_features.json``) and checked when a
bundle opens, so a model can never be fed shuffled columns.

Every feature is computed from what both sides hold identically: the
candidates with their retrieval, ALS and item-item scores, per-book arrays of
the artifact (``ItemTable``) and the user's rated books and statistics
(``UserContext``). Per-book columns the server cannot derive from the other
arrays (``book_recency``) are exported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FEATURES: tuple[str, ...] = (
    "score",  # the retrieval score the candidates came ranked by (the served blend, or ALS)
    "score_rank",  # 0-based rank among the candidates
    "score_share",  # score / the user's top candidate score (0 when that is <= 0)
    "score_gap",  # the user's top candidate score - score
    "als_score",  # ALS inner product
    "item_item_score",  # the item-item source's score (0 when it is not served or misses)
    "book_log_count",  # log(1 + training interactions of the book)
    "book_count_pct",  # share of the books with fewer training interactions
    "book_recency",  # share of its interactions in the latest tenth (0 without timestamps)
    "user_log_count",  # log(1 + training interactions of the user)
    "subject_affinity",  # sum over the book's subjects of (user's reads in it + 1) / (reads + k)
    "subject_cos",  # cosine of the user's pooled favourite subjects and the book's subjects
    "favourite_overlap",  # how many of the book's subjects are among the user's favourites
    "book_mean",  # mean explicit rating of the book (0 when none)
    "book_std",
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
I64 = npt.NDArray[np.int64]
# subject_affinity's prior strength k: a user with no reads scores 1/k per subject, and a
# subject weighs its share of the reads only once the user has read about k books.
AFFINITY_PRIOR = 5.0
# book_recency: the latest tenth of the interactions by time.
RECENT_SHARE = 0.1


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


def count_percentile(count: npt.NDArray[np.integer[Any]]) -> F32:
    """Per book, the share of the books with fewer interactions (0 for the least read)."""
    ordered = np.sort(np.asarray(count))
    out: F32 = (np.searchsorted(ordered, count, side="left") / max(len(ordered), 1)).astype(
        np.float32
    )
    return out


def book_recency(items: I32, timestamps: I64, n_books: int) -> F32:
    """Per book, the share of its interactions in the latest tenth of ``items`` by time
    (timestamp at or after the 90th percentile); zeros when no row has a timestamp
    (< 0 = unknown) or all have the same one. Measured in interactions, not in calendar
    time, so a few stray old timestamps do not move the cut."""
    out = np.zeros(n_books, dtype=np.float32)
    timed = timestamps >= 0
    if not timed.any():
        return out
    t, books = timestamps[timed], items[timed]
    if t.min() == t.max():
        return out
    cut = np.quantile(t, 1.0 - RECENT_SHARE, method="higher")
    total = np.bincount(books, minlength=n_books)
    recent = np.bincount(books[t >= cut], minlength=n_books)
    np.divide(recent, total, out=out, where=total > 0, casting="unsafe")
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
    count_pct: F32  # count_percentile(count)
    recency: F32  # book_recency of the rows the model was fitted on; zeros without timestamps
    mean: F32
    std: F32


@dataclass(frozen=True)
class UserContext:
    history: I32  # the books the user rated (training items in the trainer)
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


def subject_affinity(book_subjects: I32, history: I32, cand: I32) -> F32:
    """Per candidate, the sum over its subjects s of (n_s + 1) / (n + k): n_s the user's
    rated books with subject s, n all their rated books, k = AFFINITY_PRIOR."""
    hist = book_subjects[history].reshape(-1)
    keys, counts = np.unique(hist[hist >= 0], return_counts=True)
    subj = book_subjects[cand]
    reads = np.zeros(subj.shape, dtype=np.float32)
    if len(keys):
        pos = np.minimum(np.searchsorted(keys, subj), len(keys) - 1)
        reads = np.where(keys[pos] == subj, counts[pos], 0).astype(np.float32)
    share = (reads + 1.0) / (len(history) + AFFINITY_PRIOR)
    out: F32 = np.where(subj >= 0, share, 0.0).sum(axis=1).astype(np.float32)
    return out


def compute(
    table: ItemTable,
    user: UserContext,
    cand: I32,
    scores: F32,
    als_scores: F32,
    item_item_scores: F32,
) -> F32:
    """(len(cand), len(FEATURES)) float32, columns in FEATURES order.

    ``cand``: the candidates best first by ``scores`` (the served retrieval's); their ALS
    and item-item scores beside (for ALS alone, ``scores`` and zeros)."""
    n = len(cand)
    out = np.empty((n, len(FEATURES)), dtype=np.float32)
    top = float(np.max(scores)) if n else 0.0
    out[:, 0] = scores
    out[:, 1] = np.arange(n, dtype=np.float32)
    out[:, 2] = scores / top if top > 0 else 0.0
    out[:, 3] = top - scores
    out[:, 4] = als_scores
    out[:, 5] = item_item_scores
    out[:, 6] = np.log1p(table.count[cand])
    out[:, 7] = table.count_pct[cand]
    out[:, 8] = table.recency[cand]
    out[:, 9] = np.log1p(user.count)
    out[:, 10] = subject_affinity(table.book_subjects, user.history, cand)
    out[:, 11] = table.subject_vectors[cand] @ user.subject_vector
    fav = user.favourite_subjects[user.favourite_subjects >= 0]
    subj = table.book_subjects[cand]
    # A broadcast compare against <= 5 favourites: several times cheaper than np.isin here.
    out[:, 12] = (subj[:, :, None] == fav[None, None, :]).any(axis=2).sum(axis=1) if len(fav) else 0
    out[:, 13] = table.mean[cand]
    out[:, 14] = table.std[cand]
    out[:, 15] = user.mean
    out[:, 16] = user.std
    out[:, 17], _, _ = _history_counts(table.author_id[user.history], table.author_id[cand])
    hist_series = table.series_id[user.history]
    in_series = hist_series > 0
    cand_series = table.series_id[cand]
    counts, pos, hit = _history_counts(hist_series[in_series], cand_series)
    out[:, 18] = counts
    out[:, 19] = 0.0
    if hit.any():
        keys = np.unique(hist_series[in_series])
        latest = np.zeros(len(keys), dtype=np.int32)
        vols = table.series_volume[user.history][in_series].astype(np.int32)
        np.maximum.at(latest, np.searchsorted(keys, hist_series[in_series]), vols)
        out[:, 19] = hit & (table.series_volume[cand] == latest[pos] + 1)
    out[:, 20] = table.year_bucket[cand]
    out[:, 21] = table.prior[cand]
    return out
