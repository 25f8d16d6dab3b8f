"""The served item-item model: EASE (Steck, 2019) mixed with RP3beta
(trainer/models/rp3.py) over the head of the catalogue, kept sparse for serving.

EASE solves for an item x item matrix ``W`` with a zero diagonal that best
rebuilds the binary user x item matrix ``X`` from itself:
``P = (XᵀX + λI)⁻¹``, ``W = -P / diag(P)`` column-wise. It is dense in the
number of items, so it is fitted on the ``max_items`` books with the most
readers (every book outside gets no row and no column), and each row keeps its
``neighbours`` largest positive weights: the server sums the rows of what a
user rated (bookrec/blend.py), so a row's size is its cost.

The two are mixed as ``(1 - r) * W_ease / s_ease + r * W_rp3 / s_rp3``, each
divided by its typical score (the median over users of a user's best score),
so the share ``r`` means the same on any data. On Last.fm (the benchmark's outer
holdout, 1,877 users) EASE alone scored 0.239 NDCG@10 against 0.241 for a tuned
ALS; ALS blended with EASE and RP3beta at share 0.7 scored 0.255, +0.013
[+0.010, +0.017] over the tuned ALS, paired.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from bookrec.log import kv
from trainer.models.rp3 import Walk

log = logging.getLogger("trainer.models.item_item")


@dataclass(frozen=True)
class ItemItemParams:
    l2: float = 100.0  # EASE's lambda
    max_items: int = 6000  # the head fitted: memory 24 * max_items² bytes, time ~ max_items³
    neighbours: int = 200  # positive weights kept per row
    min_readers: int = 2  # a book read by one user has nothing to learn from
    rp3_alpha: float = 0.8
    rp3_beta: float = 0.35
    rp3_share: float = 0.0  # r above: 0 is EASE alone, 1 RP3beta alone


SCALE_USERS = 2000  # users whose best scores set each model's typical score


@dataclass(frozen=True)
class ItemItem:
    """Row r: the books that reading r points to, with their weights (CSR, sorted)."""

    matrix: sp.csr_matrix
    head: npt.NDArray[np.int64]  # the books fitted, as catalogue rows


def head_of(binary: sp.csr_matrix, params: ItemItemParams) -> npt.NDArray[np.int64]:
    """The most-read books (ties by row), at most ``max_items``, each read by enough users."""
    readers = np.asarray(binary.getnnz(axis=0)).ravel()
    order = np.lexsort((np.arange(len(readers)), -readers))
    order = order[readers[order] >= params.min_readers][: params.max_items]
    return np.sort(order).astype(np.int64)


class ItemItemFitter:
    """XᵀX and the random walk of the head, computed once: every setting a study
    tries reuses them. The last setting of each model is kept, sparse, with its
    typical score, so the share grid fits neither model again."""

    def __init__(self, binary: sp.csr_matrix, params: ItemItemParams) -> None:
        self.head = head_of(binary, params)
        self.n_items = binary.shape[1]
        self.binary = binary
        sub = binary[:, self.head].astype(np.float64)
        self.gram = np.asarray((sub.T @ sub).toarray(), dtype=np.float64)
        self.walk = Walk(binary, self.head)
        self.neighbours = params.neighbours
        self._ease: dict[float, tuple[sp.csr_matrix, float]] = {}
        self._rp3: dict[tuple[float, float], tuple[sp.csr_matrix, float]] = {}

    def ease(self, l2: float) -> sp.csr_matrix:
        return self._ease_part(l2)[0]

    def rp3(self, alpha: float, beta: float) -> sp.csr_matrix:
        return self._rp3_part(alpha, beta)[0]

    def _ease_part(self, l2: float) -> tuple[sp.csr_matrix, float]:
        if l2 not in self._ease:
            self._ease = {l2: self._with_typical(self._sparse(self._ease_dense(l2)))}
        return self._ease[l2]

    def _rp3_part(self, alpha: float, beta: float) -> tuple[sp.csr_matrix, float]:
        if (alpha, beta) not in self._rp3:
            matrix = self._sparse(self.walk.fit(alpha, beta))
            self._rp3 = {(alpha, beta): self._with_typical(matrix)}
        return self._rp3[(alpha, beta)]

    def fit(self, params: ItemItemParams) -> ItemItem:
        start = time.perf_counter()
        r = params.rp3_share
        parts = []
        if r < 1.0:
            parts.append((1.0 - r, *self._ease_part(params.l2)))
        if r > 0.0:
            parts.append((r, *self._rp3_part(params.rp3_alpha, params.rp3_beta)))
        matrix = sp.csr_matrix((self.n_items, self.n_items), dtype=np.float32)
        for share, part, typical in parts:
            if typical > 0:
                matrix = matrix + part * np.float32(share / typical)
        matrix = sp.csr_matrix(matrix, dtype=np.float32)
        matrix.sort_indices()
        log.info(
            "item-item fitted",
            extra=kv(
                items=len(self.head),
                l2=params.l2,
                rp3_share=r,
                nnz=matrix.nnz,
                seconds=round(time.perf_counter() - start, 2),
            ),
        )
        return ItemItem(matrix, self.head)

    def _ease_dense(self, l2: float) -> npt.NDArray[np.float32]:
        n = len(self.head)
        g = self.gram.copy()
        g[np.diag_indices(n)] += l2
        with threadpool_limits(None, "blas"):  # one large LAPACK call: let it use the cores
            p = np.linalg.inv(g)
        del g
        w = -p / np.diag(p)[None, :]
        del p
        np.fill_diagonal(w, 0.0)
        return w.astype(np.float32)

    def _sparse(self, w: npt.NDArray[np.float32]) -> sp.csr_matrix:
        if len(self.head) == 0:
            return sp.csr_matrix((self.n_items, self.n_items), dtype=np.float32)
        return _sparse_rows(w, self.head, self.n_items, self.neighbours)

    def _with_typical(self, matrix: sp.csr_matrix) -> tuple[sp.csr_matrix, float]:
        """``matrix`` and the median over the first SCALE_USERS readers of the head of
        their best score by it."""
        users = np.flatnonzero(self.walk.degrees > 0)[:SCALE_USERS]
        if len(users) == 0:
            return matrix, 0.0
        rows = sp.csr_matrix(self.binary[users].astype(bool), dtype=np.float64)
        reached = rows @ matrix.astype(np.float64)
        best = np.asarray(reached.max(axis=1).toarray()).ravel()
        best = best[best > 0]
        return matrix, float(np.median(best)) if len(best) else 0.0


def fit_item_item(binary: sp.csr_matrix, params: ItemItemParams) -> ItemItem:
    return ItemItemFitter(binary, params).fit(params)


def _sparse_rows(
    w: npt.NDArray[np.float32], head: npt.NDArray[np.int64], n_items: int, keep: int
) -> sp.csr_matrix:
    """The ``keep`` largest positive weights of each row, in catalogue coordinates."""
    k = min(keep, w.shape[1] - 1) if w.shape[1] > 1 else 0
    if k <= 0:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    top = np.argpartition(-w, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(w, top, axis=1)
    rows = np.repeat(np.arange(len(head)), k)
    cols, data = top.reshape(-1), vals.reshape(-1)
    pos = data > 0
    out = sp.csr_matrix(
        (data[pos], (head[rows[pos]], head[cols[pos]])), shape=(n_items, n_items), dtype=np.float32
    )
    out.sort_indices()
    return out
