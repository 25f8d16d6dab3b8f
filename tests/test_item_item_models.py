"""The trainer's item-item models: RP3beta against its definition, EASE + RP3beta mixed
by share, and the eval half's widened targets."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

import numpy as np
import scipy.sparse as sp

from trainer.evaluation.protocol import WarmSet, with_part
from trainer.models.item_item import ItemItemFitter, ItemItemParams, fit_item_item
from trainer.models.rp3 import Walk
from trainer.snapshot import Snapshot


def _binary(seed: int = 0, users: int = 60, items: int = 25) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((users, items)) < 0.25).astype(np.float32)
    dense[:, 0] = 1.0  # one book everyone read
    return sp.csr_matrix(dense)


def test_rp3beta_is_the_two_step_walk_divided_by_popularity() -> None:
    x = _binary()
    dense = x.toarray().astype(np.float64)
    alpha, beta = 0.7, 0.4
    readers, degrees = dense.sum(axis=0), dense.sum(axis=1)
    p_iu = (dense / np.maximum(readers, 1)[None, :]).T ** alpha
    p_ui = (dense / np.maximum(degrees, 1)[:, None]) ** alpha
    want = (p_iu @ p_ui) / np.maximum(readers, 1)[None, :] ** beta
    np.fill_diagonal(want, 0.0)
    got = Walk(x, np.arange(x.shape[1], dtype=np.int64)).fit(alpha, beta)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_beta_moves_weight_off_the_book_everyone_read() -> None:
    walk = Walk(_binary(), np.arange(25, dtype=np.int64))
    flat, damped = walk.fit(1.0, 0.0), walk.fit(1.0, 0.8)

    def share(w: np.ndarray) -> float:
        return float(w[1:, 0].sum() / w[1:].sum())

    assert share(damped) < share(flat)


def test_the_share_picks_ease_rp3beta_or_a_mix() -> None:
    x = _binary(1)
    params = ItemItemParams(l2=10.0, neighbours=5)
    fitter = ItemItemFitter(x, params)
    ease = fitter.fit(params).matrix
    rp3 = fitter.fit(ItemItemParams(l2=10.0, neighbours=5, rp3_share=1.0)).matrix
    half = fitter.fit(ItemItemParams(l2=10.0, neighbours=5, rp3_share=0.5)).matrix
    # Each alone is its own model's sparse rows, rescaled: same pattern, one factor.
    assert (ease != 0).sum() > 0 and (rp3 != 0).sum() > 0
    raw = fitter.ease(10.0)
    ratio = ease.data / raw.data
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)
    # The mix is the (scaled) sum of both: its pattern is their union.
    assert ((half != 0) != ((ease != 0) + (rp3 != 0))).nnz == 0
    np.testing.assert_allclose((0.5 * ease + 0.5 * rp3).toarray(), half.toarray(), rtol=1e-5)
    # Typical scales make a share mean the same on any data: a user's best score is ~1.
    best = np.asarray((x @ rp3).max(axis=1).toarray()).ravel()
    assert 0.5 < float(np.median(best[best > 0])) < 2.0


def test_fit_item_item_equals_the_fitter_at_the_same_params() -> None:
    x = _binary(2)
    params = ItemItemParams(l2=30.0, neighbours=4, rp3_share=0.7, rp3_alpha=0.9, rp3_beta=0.2)
    a = fit_item_item(x, params).matrix
    b = ItemItemFitter(x, params).fit(params).matrix
    assert (a != b).nnz == 0


def test_eval_targets_take_the_test_part_too() -> None:
    users = np.array([0, 0, 0, 1, 1], dtype=np.int32)
    items = np.array([0, 1, 2, 1, 3], dtype=np.int32)
    parts = np.array([0, 1, 2, 1, 2], dtype=np.int8)
    # with_part reads only the interaction columns.
    snap = cast(Snapshot, SimpleNamespace(users=users, items=items, parts=parts))
    got = with_part(WarmSet(np.array([0, 1], np.int32), [{1}, {1}]), snap, 2)
    assert got.targets == [{1, 2}, {1, 3}]
