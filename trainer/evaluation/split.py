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

import numpy as np
import numpy.typing as npt

from trainer.errors import InputError

TRAIN, VAL, TEST, COLD = 0, 1, 2, 3
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


def assign(
    user_ids: list[str],
    work_ids: list[str],
    ratings: npt.NDArray[np.int8],
    timestamps: npt.NDArray[np.int64],
    cfg: SplitConfig,
    weights: npt.NDArray[np.float32] | None = None,
) -> tuple[npt.NDArray[np.int8], str]:
    """Part of each interaction and the split id. Rows may come in any order."""
    n = len(user_ids)
    parts = np.zeros(n, dtype=np.int8)
    timed = n > 0 and bool((timestamps >= 0).all())
    by_user: dict[str, list[int]] = {}
    for i, u in enumerate(user_ids):
        by_user.setdefault(u, []).append(i)
    cold_cut = int(cfg.cold_user_fraction * 2**64)
    for user, rows in by_user.items():
        if _key(cfg.seed, "cold", user) < cold_cut:
            parts[rows] = COLD
            continue
        if len(rows) < cfg.min_holdout:
            continue
        if timed:
            rows.sort(key=lambda i: (int(timestamps[i]), work_ids[i]))
        else:
            rows.sort(key=lambda i: (_key(cfg.seed, user, work_ids[i]), work_ids[i]))
        n_test = max(1, round(cfg.test_fraction * len(rows))) if cfg.test_fraction else 0
        n_val = max(1, round(cfg.val_fraction * len(rows))) if cfg.val_fraction else 0
        tail = rows[len(rows) - n_test - n_val :]
        parts[tail[:n_val]] = VAL
        parts[tail[n_val:]] = TEST
    return parts, split_id(user_ids, work_ids, ratings, timestamps, cfg, weights)


def split_id(
    user_ids: list[str],
    work_ids: list[str],
    ratings: npt.NDArray[np.int8],
    timestamps: npt.NDArray[np.int64],
    cfg: SplitConfig,
    weights: npt.NDArray[np.float32] | None = None,
) -> str:
    """Weights join the digest only when one is not 1.0, so data without counts keeps the
    id it had before weights existed, and a changed count gives a new split."""
    h = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode())
    columns = [user_ids, work_ids, ratings.tolist(), timestamps.tolist()]
    if weights is not None and bool((weights != 1.0).any()):
        h.update(b"weights")
        columns.append([float(w) for w in weights.tolist()])
    for row in sorted(zip(*columns, strict=True)):
        h.update(repr(row).encode())
    return h.hexdigest()[:16]
