"""The served item-item model: EASE (Steck, 2019) mixed with RP3beta
(trainer/models/rp3.py) over the head of the catalogue, kept sparse for serving.

EASE solves for an item x item matrix ``W`` with a zero diagonal that best
rebuilds the binary user x item matrix ``X`` from itself:
``P = (XᵀX + λI)⁻¹``, ``W = -P / diag(P)`` column-wise. It is dense in the
number of items: fitted on every book read by at least ``min_readers`` users
whenever the dense matrices fit the memory budget (``head_limit``: at most
``BYTES_PER_ENTRY * n²`` bytes against ``memory_mb``, or half the memory the
machine has free when that is less), else on the most-read books up to that
limit (every book outside gets no row and no column). Each row keeps its
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
import math
import os
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits

from bookrec.log import kv
from trainer.errors import ModelFitError
from trainer.models.rp3 import Walk

log = logging.getLogger("trainer.models.item_item")


@dataclass(frozen=True)
class ItemItemParams:
    l2: float = 100.0  # EASE's lambda
    max_items: int = 0  # a fixed cap on the head; 0: as many as memory_mb allows
    memory_mb: float = 2048.0  # the dense fit's budget: BYTES_PER_ENTRY * head² bytes
    neighbours: int = 200  # positive weights kept per row
    min_readers: int = 2  # a book read by one user has nothing to learn from
    rp3_alpha: float = 0.8
    rp3_beta: float = 0.35
    rp3_share: float = 0.0  # r above: 0 is EASE alone, 1 RP3beta alone


SCALE_USERS = 2000  # users whose best scores set each model's typical score
# Peak bytes per entry of the head x head matrices: XᵀX kept (float64, 8), the
# factorised copy that becomes P (8), W in float32 (4), and 4 to spare for the
# RP3beta walk's float32 result beside XᵀX and the row blocks of the sparse cut.
BYTES_PER_ENTRY = 24
SPARSE_BLOCK = 1024  # rows cut to their top weights at a time


@dataclass(frozen=True)
class ItemItem:
    """Row r: the books that reading r points to, with their weights (CSR, sorted)."""

    matrix: sp.csr_matrix
    head: npt.NDArray[np.int64]  # the books fitted, as catalogue rows


def available_bytes() -> int | None:
    """The memory the machine has free (MemAvailable), None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def head_limit(params: ItemItemParams, available: int | None = None) -> int:
    """The most books the dense fit may take: ``BYTES_PER_ENTRY * n² <= budget``, the
    budget being ``memory_mb``, or half of ``available`` bytes when that is less (a
    busy machine gets a smaller head rather than an out-of-memory kill); never more
    than ``max_items`` when that is set."""
    budget = params.memory_mb * 2**20
    if available is not None:
        budget = min(budget, available / 2)
    limit = math.isqrt(max(int(budget), 0) // BYTES_PER_ENTRY)
    return min(limit, params.max_items) if params.max_items > 0 else limit


def head_of(
    binary: sp.csr_matrix, params: ItemItemParams, available: int | None = None
) -> npt.NDArray[np.int64]:
    """Every book read by at least ``min_readers`` users when they fit ``head_limit``,
    else the most-read of them (ties by row) up to it."""
    readers = np.asarray(binary.getnnz(axis=0)).ravel()
    order = np.lexsort((np.arange(len(readers)), -readers))
    eligible = order[readers[order] >= params.min_readers]
    limit = head_limit(params, available)
    if len(eligible) > limit:
        log.warning(
            "item-item head cut to the memory budget",
            extra=kv(
                eligible=len(eligible),
                kept=limit,
                memory_mb=params.memory_mb,
                bytes_per_entry=BYTES_PER_ENTRY,
            ),
        )
    return np.sort(eligible[:limit]).astype(np.int64)


class ItemItemFitter:
    """XᵀX and the random walk of the head, computed once: every setting a study
    tries reuses them. The last setting of each model is kept, sparse, with its
    typical score, so the share grid fits neither model again."""

    def __init__(self, binary: sp.csr_matrix, params: ItemItemParams) -> None:
        self.head = head_of(binary, params, available_bytes())
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
        if n == 0:
            return np.zeros((0, 0), np.float32)
        # Fortran order (XᵀX is symmetric, so its transpose is itself): LAPACK works in place.
        g = np.array(self.gram.T, order="F", copy=True)
        g[np.diag_indices(n)] += l2
        # Cholesky, then its inverse (potrf + potri): half the time of a general inverse.
        with threadpool_limits(None, "blas"):  # large LAPACK calls: let them use the cores
            c, info = lapack.dpotrf(g, lower=False, overwrite_a=True, clean=False)
            if info == 0:
                c, info = lapack.dpotri(c, lower=False, overwrite_c=True)
        if info != 0:
            raise ModelFitError(f"EASE: XᵀX + {l2:g}·I is not positive definite (LAPACK {info})")
        _mirror_upper(c)
        p: npt.NDArray[np.float64] = c
        p /= -np.diag(p).copy()[None, :]
        np.fill_diagonal(p, 0.0)
        return p.astype(np.float32, order="C")

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


def _mirror_upper(a: npt.NDArray[np.float64]) -> None:
    """Copy the upper triangle onto the lower one in place (potri fills only the upper),
    a block of rows at a time so no second n x n array is made."""
    n = a.shape[0]
    for s in range(0, n, SPARSE_BLOCK):
        e = min(n, s + SPARSE_BLOCK)
        a[s:e, :s] = a[:s, s:e].T
        block = a[s:e, s:e]
        a[s:e, s:e] = np.triu(block) + np.triu(block, 1).T


def _sparse_rows(
    w: npt.NDArray[np.float32], head: npt.NDArray[np.int64], n_items: int, keep: int
) -> sp.csr_matrix:
    """The ``keep`` largest positive weights of each row, in catalogue coordinates (a
    block of rows at a time: the partition's indices are 8 bytes an entry)."""
    k = min(keep, w.shape[1] - 1) if w.shape[1] > 1 else 0
    if k <= 0:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    parts_r, parts_c, parts_v = [], [], []
    for s in range(0, w.shape[0], SPARSE_BLOCK):
        block = w[s : s + SPARSE_BLOCK]
        top = np.argpartition(-block, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(block, top, axis=1).reshape(-1)
        rows = np.repeat(np.arange(s, s + len(block)), k)
        pos = vals > 0
        parts_r.append(head[rows[pos]])
        parts_c.append(head[top.reshape(-1)[pos]])
        parts_v.append(vals[pos])
    out = sp.csr_matrix(
        (np.concatenate(parts_v), (np.concatenate(parts_r), np.concatenate(parts_c))),
        shape=(n_items, n_items),
        dtype=np.float32,
    )
    out.sort_indices()
    return out
