"""The reranker's features for several users' candidates as one block.

Row for row the same float32 values as ``rerank_features.compute`` called per user
and stacked (tests/test_rerank_block.py compares them bit for bit), in about a
tenth of the numpy calls per user: the per-candidate columns are gathered for the
whole block at once, and the per-user lookups (subject reads, same author, same
series, next in series, favourite overlap) are done on keys that carry the user's
place in the block, so one ``unique`` / ``searchsorted`` serves every user.

Kept per user, because a batch must not change a value: ``subject_cos`` (a BLAS
product whose rounding could depend on the block's shape) and ``log1p`` of each
user's count (a scalar, as ``compute`` takes it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from bookrec.rerank_features import AFFINITY_PRIOR, FEATURES, ItemTable, UserContext

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]


def compute_block(
    table: ItemTable,
    users: Sequence[UserContext],
    cands: Sequence[I32],
    scores: Sequence[F32],
    als_scores: Sequence[F32],
    item_item_scores: Sequence[F32],
) -> F32:
    """``np.vstack([compute(table, u, c, s, a, i) for ...])``: (sum of len(cands), features)."""
    sizes = np.array([len(c) for c in cands], dtype=np.int64)
    seg = np.repeat(np.arange(len(users), dtype=np.int64), sizes)
    cand = np.concatenate(cands).astype(np.int64) if len(cands) else np.zeros(0, np.int64)
    sc = _cat(scores)
    out = np.empty((len(cand), len(FEATURES)), dtype=np.float32)
    tops = np.array([float(np.max(s)) if len(s) else 0.0 for s in scores], dtype=np.float32)
    top = tops[seg]
    out[:, 0] = sc
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    out[:, 1] = (np.arange(len(cand), dtype=np.int64) - starts[seg]).astype(np.float32)
    out[:, 2] = np.where(top > 0, sc / np.where(top > 0, top, np.float32(1)), np.float32(0))
    out[:, 3] = top - sc
    out[:, 4] = _cat(als_scores)
    out[:, 5] = _cat(item_item_scores)
    out[:, 6] = np.log1p(table.count[cand])
    out[:, 7] = table.count_pct[cand]
    out[:, 8] = table.recency[cand]
    out[:, 9] = np.array([np.log1p(u.count) for u in users], dtype=np.float32)[seg]
    hist, hist_seg = _histories(users)
    subj = table.book_subjects[cand]
    out[:, 10] = _affinity(table.book_subjects, hist, hist_seg, subj, seg, users)
    for u, (a, b) in enumerate(zip(starts.tolist(), (starts + sizes).tolist(), strict=True)):
        out[a:b, 11] = table.subject_vectors[cand[a:b]] @ users[u].subject_vector
    out[:, 12] = _overlap(users, subj, seg)
    out[:, 13] = table.mean[cand]
    out[:, 14] = table.std[cand]
    out[:, 15] = np.array([u.mean for u in users], dtype=np.float32)[seg]
    out[:, 16] = np.array([u.std for u in users], dtype=np.float32)[seg]
    out[:, 17], _, _ = _counts(table.author_id[hist], hist_seg, table.author_id[cand], seg)
    _series(table, hist, hist_seg, cand, seg, out)
    out[:, 20] = table.year_bucket[cand]
    out[:, 21] = table.prior[cand]
    return out


def _cat(parts: Sequence[F32]) -> F32:
    if not len(parts):
        return np.zeros(0, dtype=np.float32)
    out: F32 = np.concatenate([np.asarray(p, dtype=np.float32) for p in parts])
    return out


def _histories(users: Sequence[UserContext]) -> tuple[I64, I64]:
    """Every user's rated books in one array, and the user each belongs to."""
    sizes = [len(u.history) for u in users]
    if not sum(sizes):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    hist = np.concatenate([np.asarray(u.history, dtype=np.int64) for u in users])
    return hist, np.repeat(np.arange(len(users), dtype=np.int64), sizes)


def _keyed(seg: I64, values: npt.NDArray[np.integer], stride: int) -> I64:
    out: I64 = seg * stride + values.astype(np.int64)
    return out


def _counts(
    hist_keys: npt.NDArray[np.integer],
    hist_seg: I64,
    cand_keys: npt.NDArray[np.integer],
    seg: I64,
) -> tuple[F32, npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
    """``rerank_features._history_counts`` per user: how often each candidate's key (> 0)
    is in its own user's history; with where (in the keyed unique array) and whether."""
    stride = int(max(hist_keys.max(initial=0), cand_keys.max(initial=0))) + 2
    keys, counts = np.unique(_keyed(hist_seg, hist_keys, stride), return_counts=True)
    if len(keys) == 0:
        none = np.zeros(len(cand_keys), dtype=bool)
        return np.zeros(len(cand_keys), np.float32), np.zeros(len(cand_keys), np.intp), none
    want = _keyed(seg, cand_keys, stride)
    pos = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
    hit = (keys[pos] == want) & (cand_keys > 0)
    return np.where(hit, counts[pos], 0).astype(np.float32), pos, hit


def _affinity(
    book_subjects: I32,
    hist: I64,
    hist_seg: I64,
    subj: I32,
    seg: I64,
    users: Sequence[UserContext],
) -> F32:
    """``rerank_features.subject_affinity`` per user: each user's reads per subject counted
    into one (users, subjects + 1) table (the last column: the -1 padding, never read)."""
    width = int(max(subj.max(initial=-1), book_subjects[hist].max(initial=-1))) + 2
    hs = book_subjects[hist]  # (h, S)
    held = hs >= 0
    keys = (np.repeat(hist_seg, hs.shape[1]).reshape(hs.shape) * width + hs)[held]
    table = np.bincount(keys, minlength=len(users) * width).reshape(len(users), width)
    column = np.where(subj >= 0, subj, width - 1)
    reads = table[seg[:, None], column].astype(np.float32)
    denom = np.array([len(u.history) + AFFINITY_PRIOR for u in users], dtype=np.float32)
    share = (reads + 1.0) / denom[seg][:, None]
    out: F32 = np.where(subj >= 0, share, 0.0).sum(axis=1).astype(np.float32)
    return out


def _overlap(users: Sequence[UserContext], subj: I32, seg: I64) -> npt.NDArray[np.int64]:
    """How many of each candidate's subjects are among its user's favourites, from one
    (users, subjects + 1) table of favourites (the last column: the -1 padding)."""
    favs = [u.favourite_subjects[u.favourite_subjects >= 0] for u in users]
    width = int(max([subj.max(initial=-1), *(f.max(initial=-1) for f in favs)])) + 2
    table = np.zeros((len(users), width), dtype=bool)
    for u, f in enumerate(favs):
        table[u, f] = True
    column = np.where(subj >= 0, subj, width - 1)
    out: npt.NDArray[np.int64] = table[seg[:, None], column].sum(axis=1)
    return out


def _series(table: ItemTable, hist: I64, hist_seg: I64, cand: I64, seg: I64, out: F32) -> None:
    """Columns same_series and next_in_series, per user as ``compute`` makes them."""
    hist_series = table.series_id[hist]
    in_series = hist_series > 0
    cand_series = table.series_id[cand]
    counts, pos, hit = _counts(hist_series[in_series], hist_seg[in_series], cand_series, seg)
    out[:, 18] = counts
    out[:, 19] = 0.0
    if hit.any():
        stride = int(max(hist_series.max(initial=0), cand_series.max(initial=0))) + 2
        keyed = _keyed(hist_seg[in_series], hist_series[in_series], stride)
        keys = np.unique(keyed)
        latest = np.zeros(len(keys), dtype=np.int32)
        vols = table.series_volume[hist][in_series].astype(np.int32)
        np.maximum.at(latest, np.searchsorted(keys, keyed), vols)
        out[:, 19] = hit & (table.series_volume[cand] == latest[pos] + 1)
