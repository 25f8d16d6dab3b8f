"""The item-item head: the whole catalogue while the dense fit fits its memory budget
(trainer/models/item_item.py head_limit), and EASE's Cholesky solve equal to the
closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from trainer.errors import ModelFitError
from trainer.models.item_item import (
    BYTES_PER_ENTRY,
    ItemItemFitter,
    ItemItemParams,
    head_limit,
    head_of,
)


def _binary(n_users: int, n_items: int, density: float, seed: int) -> sp.csr_matrix:
    m = sp.random(n_users, n_items, density=density, format="csr", random_state=seed)
    m.data[:] = 1.0
    return sp.csr_matrix(m, dtype=np.float32)


def test_the_limit_is_the_largest_head_whose_dense_fit_fits_the_budget() -> None:
    for mb in (1.0, 64.0, 2048.0, 4096.0):
        n = head_limit(ItemItemParams(memory_mb=mb))
        assert BYTES_PER_ENTRY * n * n <= mb * 2**20 < BYTES_PER_ENTRY * (n + 1) ** 2
    assert head_limit(ItemItemParams()) == 9459  # the default 2 GiB, as docs/models.md says


def test_half_the_free_memory_binds_when_it_is_less_than_the_budget() -> None:
    params = ItemItemParams(memory_mb=2048.0)
    free = 2 * BYTES_PER_ENTRY * 1000**2  # half of it holds a 1,000-book head exactly
    assert head_limit(params, available=free) == 1000
    assert head_limit(params, available=10 * 2**40) == head_limit(params)


def test_a_fixed_cap_still_caps() -> None:
    assert head_limit(ItemItemParams(max_items=300)) == 300
    assert head_limit(ItemItemParams(max_items=10**9, memory_mb=1.0)) == math.isqrt(
        2**20 // BYTES_PER_ENTRY
    )


def test_the_whole_eligible_catalogue_is_the_head_when_it_fits() -> None:
    x = _binary(3000, 8000, 0.002, 0)
    readers = np.asarray(x.getnnz(axis=0)).ravel()
    eligible = np.flatnonzero(readers >= 2)
    assert len(eligible) > 6000  # more books than the old fixed cap
    head = head_of(x, ItemItemParams())
    np.testing.assert_array_equal(head, eligible)


def test_over_the_budget_the_most_read_books_are_kept() -> None:
    x = _binary(300, 2500, 0.01, 0)
    # A budget that holds 100 books: 24 * 100² bytes.
    params = ItemItemParams(memory_mb=BYTES_PER_ENTRY * 100**2 / 2**20)
    head = head_of(x, params)
    assert len(head) == 100
    readers = np.asarray(x.getnnz(axis=0)).ravel()
    outside = np.setdiff1d(np.arange(x.shape[1]), head)
    assert readers[head].min() >= readers[outside].max()


def test_ease_by_cholesky_equals_the_closed_form() -> None:
    x = _binary(400, 900, 0.03, 1)
    fitter = ItemItemFitter(x, ItemItemParams())
    w = fitter._ease_dense(30.0)
    g = fitter.gram.copy()
    g[np.diag_indices(len(g))] += 30.0
    p = np.linalg.inv(g)
    expected = -p / np.diag(p)[None, :]
    np.fill_diagonal(expected, 0.0)
    assert w.dtype == np.float32 and w.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(w, expected, atol=1e-6)


def test_a_matrix_that_is_not_positive_definite_is_a_fit_error() -> None:
    fitter = ItemItemFitter(_binary(200, 300, 0.05, 2), ItemItemParams())
    with pytest.raises(ModelFitError, match="not positive definite"):
        fitter._ease_dense(-1e6)
