"""The reranker's feature block for several users is, bit for bit, the per-user
``rerank_features.compute`` rows stacked: the batched Recommend feeds it to the same
trees, so one flipped bit at a split threshold would change a list."""

from __future__ import annotations

import numpy as np
import pytest

from bookrec import rerank_features as rf
from bookrec.pooling import normalise
from bookrec.rerank_block import compute_block

N_BOOKS, SUBJECTS, DIM = 400, 30, 8


def _table(rng: np.random.Generator) -> rf.ItemTable:
    count = rng.integers(0, 500, N_BOOKS).astype(np.int32)
    subjects = np.where(
        rng.random((N_BOOKS, 4)) < 0.6, rng.integers(0, SUBJECTS, (N_BOOKS, 4)), -1
    ).astype(np.int32)
    in_series = rng.random(N_BOOKS) < 0.3
    return rf.ItemTable(
        author_id=rng.integers(0, 40, N_BOOKS).astype(np.int32),  # 0: unknown author
        series_id=np.where(in_series, rng.integers(1, 25, N_BOOKS), 0).astype(np.int32),
        series_volume=np.where(in_series, rng.integers(1, 6, N_BOOKS), 0).astype(np.int16),
        book_subjects=subjects,
        subject_vectors=normalise(rng.standard_normal((N_BOOKS, DIM)).astype(np.float32)),
        year_bucket=rng.integers(0, 14, N_BOOKS).astype(np.int8),
        prior=rng.random(N_BOOKS).astype(np.float32),
        count=count,
        count_pct=rf.count_percentile(count),
        recency=rng.random(N_BOOKS).astype(np.float32),
        mean=rng.uniform(0, 10, N_BOOKS).astype(np.float32),
        std=rng.uniform(0, 3, N_BOOKS).astype(np.float32),
    )


def _user(rng: np.random.Generator) -> rf.UserContext:
    history = np.sort(rng.choice(N_BOOKS, int(rng.integers(0, 40)), replace=False))
    favourites = np.full(5, -1, np.int32)
    n_fav = int(rng.integers(0, 6))
    favourites[:n_fav] = rng.integers(0, SUBJECTS, n_fav)  # repeats allowed
    vector = rng.standard_normal(DIM).astype(np.float32)
    return rf.UserContext(
        history=history.astype(np.int32),
        favourite_subjects=favourites,
        subject_vector=normalise(vector[None, :])[0] if rng.random() < 0.8 else vector * 0,
        count=float(len(history)),
        mean=float(rng.uniform(1, 10)),
        std=float(rng.uniform(0, 3)),
    )


def _candidates(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    n = int(rng.choice([0, 1, 7, 60, 300]))
    cand = rng.choice(N_BOOKS, n, replace=False).astype(np.int32)
    shift = rng.choice([0.0, -3.0, 2.0])  # top score above, below and at zero
    scores = (np.sort(rng.standard_normal(n))[::-1] + shift).astype(np.float32)
    if n and rng.random() < 0.2:
        scores[:] = 0.0
    als = (scores * rng.uniform(0.5, 2.0)).astype(np.float32)
    ii = np.where(rng.random(n) < 0.5, rng.random(n), 0.0).astype(np.float32)
    return cand, scores, als, ii


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("users", [1, 2, 5, 16])
def test_the_block_is_the_stacked_per_user_rows_bit_for_bit(seed: int, users: int) -> None:
    rng = np.random.default_rng(seed * 100 + users)
    table = _table(rng)
    contexts = [_user(rng) for _ in range(users)]
    parts = [_candidates(rng) for _ in range(users)]
    want = [rf.compute(table, u, *p) for u, p in zip(contexts, parts, strict=True)]
    got = compute_block(
        table, contexts, [p[0] for p in parts], [p[1] for p in parts], [p[2] for p in parts],
        [p[3] for p in parts],
    )  # fmt: skip
    assert got.dtype == np.float32 and got.shape == (sum(len(p[0]) for p in parts), 22)
    stacked = np.vstack(want) if want else got
    # Bit for bit: the same float32 patterns, column by column (names in the message).
    for j, name in enumerate(rf.FEATURES):
        assert np.array_equal(got[:, j].view(np.uint32), stacked[:, j].view(np.uint32)), name
    if users == 16:  # the per-user lookups were exercised, not only their zeros
        for name in ("same_author", "same_series", "next_in_series", "favourite_overlap"):
            assert (got[:, rf.FEATURES.index(name)] > 0).any(), name
