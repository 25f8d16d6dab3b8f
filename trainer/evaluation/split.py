"""The frozen train / validation / test split, decided before any feature exists.

- Cold users: a seeded fraction of users is held out entirely (part COLD), for
  evaluating cold start on people the models never saw.
- Every other user with at least ``min_holdout`` interactions gives their
  latest interactions to test and the ones before to validation when the data
  has timestamps (time-aware); without timestamps, a seeded per-user shuffle
  decides (stratified per user, so every user keeps most of their history in
  train).
- Order and membership depend only on external ids, ratings, timestamps and
  the config, never on row order or database indices; the split id is a digest
  of exactly those (plus the interactions' weights when any is not 1.0), so the
  same data and config always give the same id.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from trainer.errors import InputError

TRAIN, VAL, TEST, COLD = 0, 1, 2, 3
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
CHUNK = 100_000  # rows per step of the per-interaction keys and the digest
PART_NAMES = {TRAIN: "train", VAL: "val", TEST: "test", COLD: "cold"}


@dataclass(frozen=True)
class SplitConfig:
    seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    cold_user_fraction: float = 0.05
    min_holdout: int = 5  # users with fewer interactions keep them all in train

    def __post_init__(self) -> None:
        for name in ("val_fraction", "test_fraction", "cold_user_fraction"):
            if not 0.0 <= getattr(self, name) < 0.5:
                raise InputError(
                    f"split {name} must be in [0, 0.5), got {getattr(self, name)} "
                    f"(BOOKREC_TRAIN_{name.upper()})"
                )


def _key(seed: int, *parts: str) -> int:
    h = hashlib.blake2b(f"{seed}|{'|'.join(parts)}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big")


@dataclass(frozen=True)
class Rows:
    """Interactions by index: row i is user ``users[user_idx[i]]`` and work
    ``works[item_idx[i]]`` (the store's indices and id lists; ids distinct)."""

    user_idx: I64
    item_idx: I64
    users: list[str]
    works: list[str]
    ratings: npt.NDArray[np.int8]
    timestamps: npt.NDArray[np.int64]
    weights: npt.NDArray[np.float32] | None = None

    @staticmethod
    def of_ids(
        user_ids: list[str],
        work_ids: list[str],
        ratings: npt.NDArray[np.int8],
        timestamps: npt.NDArray[np.int64],
        weights: npt.NDArray[np.float32] | None = None,
    ) -> Rows:
        users, user_idx = _codes(user_ids)
        works, item_idx = _codes(work_ids)
        return Rows(user_idx, item_idx, users, works, ratings, timestamps, weights)


def assign(
    user_ids: list[str],
    work_ids: list[str],
    ratings: npt.NDArray[np.int8],
    timestamps: npt.NDArray[np.int64],
    cfg: SplitConfig,
    weights: npt.NDArray[np.float32] | None = None,
) -> tuple[npt.NDArray[np.int8], str]:
    """Part of each interaction and the split id. Rows may come in any order."""
    return assign_rows(Rows.of_ids(user_ids, work_ids, ratings, timestamps, weights), cfg)


def _codes(ids: list[str]) -> tuple[list[str], I64]:
    """The distinct ids and each row's position among them."""
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(i, len(index)) for i in ids), np.int64, len(ids))
    return list(index), codes


def assign_rows(rows: Rows, cfg: SplitConfig) -> tuple[npt.NDArray[np.int8], str]:
    """``assign`` over indices: the same parts and id, in arrays rather than a Python
    object per interaction (about 150-250 bytes each, 12-18 GiB at 74M interactions).

    Each user's rows are ordered by one stable lexsort on (user, time or seeded key,
    work id) with the ids replaced by their rank in sorted order, so comparing ranks
    compares the strings as ``sorted`` did; the held-out tail is then a position test.
    """
    user_idx, item_idx, users, works = rows.user_idx, rows.item_idx, rows.users, rows.works
    timestamps = rows.timestamps
    n = len(user_idx)
    parts = np.zeros(n, dtype=np.int8)
    work_rank = _ranks(works)
    cold_cut = int(cfg.cold_user_fraction * 2**64)
    cold_user = np.fromiter(
        (_key(cfg.seed, "cold", u) < cold_cut for u in users), np.bool_, len(users)
    )
    timed = n > 0 and bool((timestamps >= 0).all())
    within: npt.NDArray[Any] = (
        np.asarray(timestamps, np.int64)
        if timed
        else _row_keys(cfg.seed, user_idx, item_idx, users, works)
    )
    order = np.lexsort((work_rank[item_idx], within, user_idx))
    del within
    sorted_users = user_idx[order]
    counts = np.bincount(user_idx, minlength=len(users))
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    pos = np.arange(n, dtype=np.int64) - first[sorted_users]
    c = counts.astype(np.float64)
    n_test = np.maximum(1, np.rint(cfg.test_fraction * c)) if cfg.test_fraction else 0 * c
    n_val = np.maximum(1, np.rint(cfg.val_fraction * c)) if cfg.val_fraction else 0 * c
    # rows[len - n_test - n_val:] as Python slices it: a negative start counts from the end
    start = counts - n_test.astype(np.int64) - n_val.astype(np.int64)
    start = np.where(start < 0, np.maximum(start + counts, 0), start)
    held_from = start[sorted_users]
    test_from = (start + n_val.astype(np.int64))[sorted_users]
    eligible = (~cold_user & (counts >= cfg.min_holdout))[sorted_users]
    sorted_parts = np.where(pos >= test_from, TEST, np.where(pos >= held_from, VAL, TRAIN))
    sorted_parts = np.where(eligible, sorted_parts, TRAIN).astype(np.int8)
    parts[order] = sorted_parts
    parts[cold_user[user_idx]] = COLD
    del order, sorted_users, pos, held_from, test_from, eligible, sorted_parts
    return parts, split_id(rows, cfg)


def _ranks(ids: list[str]) -> I64:
    """Each id's rank in sorted order (distinct ids)."""
    ranks = np.empty(len(ids), np.int64)
    ranks[sorted(range(len(ids)), key=ids.__getitem__)] = np.arange(len(ids))
    return ranks


def _row_keys(seed: int, user_idx: I64, item_idx: I64, users: list[str], works: list[str]) -> U64:
    """The seeded per-interaction key of a split without timestamps, built chunk by chunk."""
    out = np.empty(len(user_idx), np.uint64)
    for s in range(0, len(user_idx), CHUNK):
        us, ws = user_idx[s : s + CHUNK].tolist(), item_idx[s : s + CHUNK].tolist()
        out[s : s + len(us)] = np.fromiter(
            (_key(seed, users[u], works[w]) for u, w in zip(us, ws, strict=True)),
            np.uint64,
            len(us),
        )
    return out


def split_id(rows: Rows, cfg: SplitConfig) -> str:
    """The digest of the rows' ``repr((user_id, work_id, rating, ts[, weight]))`` in sorted
    order, as ``sorted(zip(...))`` gave it (ids compared by rank; a user rates a work
    once), streamed a chunk at a time. Weights join the digest only when one is not 1.0,
    so data without counts keeps the id it had before weights existed, and a changed
    count gives a new split."""
    user_idx, item_idx, ratings, timestamps = (
        rows.user_idx,
        rows.item_idx,
        rows.ratings,
        rows.timestamps,
    )
    weights = rows.weights
    h = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode())
    weighted = weights is not None and bool((weights != 1.0).any())
    if weighted:
        h.update(b"weights")
    keys: list[npt.NDArray[Any]] = [timestamps, ratings, _ranks(rows.works)[item_idx]]
    if weighted:
        assert weights is not None
        keys.insert(0, weights)
    order = np.lexsort((*keys, _ranks(rows.users)[user_idx]))
    del keys
    user_repr = [repr(u) for u in rows.users]
    work_repr = [repr(w) for w in rows.works]
    for s in range(0, len(order), CHUNK):
        at = order[s : s + CHUNK]
        columns = [
            [user_repr[u] for u in user_idx[at].tolist()],
            [work_repr[w] for w in item_idx[at].tolist()],
            [str(r) for r in ratings[at].tolist()],
            [str(t) for t in timestamps[at].tolist()],
        ]
        if weighted:
            assert weights is not None
            columns.append([repr(w) for w in weights[at].tolist()])
        h.update("".join(f"({', '.join(row)})" for row in zip(*columns, strict=True)).encode())
    return h.hexdigest()[:16]
