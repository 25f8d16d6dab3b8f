"""ALS's user step for one user: shared by the server (new ratings, users the model
has not met) and the trainer (scoring those users), so both solve the same thing.

    x_u = (YᵀY + λI + Σ_i (c_ui - 1) y_i y_iᵀ)⁻¹ Σ_i c_ui y_i

over the user's rated items with the confidences c of bookrec/confidence.py and
the trained λ; this is implicit's ``recalculate_user``. A model fitted by Spark MLlib
(manifest ``params.als.regularization_scaling = "count"``) weighed λ by the number of
the user's ratings n in every solve (ALS-WR), so its fold-in solves with λ·n.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]


SCALINGS = ("none", "count")  # how λ is weighed: as is, or times the user's ratings


def scaled(regularization: float, scaling: str, n: int) -> float:
    """The λ of one solve over ``n`` ratings under ``scaling`` (SCALINGS)."""
    if scaling == "count":
        return regularization * n
    if scaling != "none":
        raise ValueError(f"unknown regularization scaling {scaling!r}: one of {SCALINGS}")
    return regularization


def fold_in(
    item_factors: F32,
    yty: F64,
    regularization: float,
    items: I32,
    conf: F32,
    scaling: str = "none",
) -> F32:
    """The least-squares user vector for ``items`` rated with confidences ``conf``."""
    y = np.asarray(item_factors[items], dtype=np.float64)
    c = np.asarray(conf, dtype=np.float64)
    lam = scaled(regularization, scaling, len(c))
    a = yty + lam * np.eye(yty.shape[0]) + (y.T * (c - 1.0)) @ y
    b = c @ y
    out: F32 = np.linalg.solve(a, b).astype(np.float32)
    return out


class FewRatings:
    """``fold_in`` for many users of a few ratings each (the trainer's journeys): the
    same solution by the Woodbury identity around ``A0 = YᵀY + λI``, inverted once,

        x = z - G (I + D M)⁻¹ D (Y_u z),  z = A0⁻¹ Y_uᵀ c,  G = A0⁻¹ Y_uᵀ,  M = Y_u G,

    with ``D = diag(c - 1)``: an n x n solve per user instead of an f x f one. Equal to
    ``fold_in`` up to float64 rounding (tests/test_journeys.py). Under ``scaling``
    "count", λ and so ``A0`` depend on the user's n: one inverse per n met."""

    def __init__(
        self, item_factors: F32, yty: F64, regularization: float, scaling: str = "none"
    ) -> None:
        self.y = np.asarray(item_factors, dtype=np.float64)
        self.yty, self.regularization, self.scaling = yty, regularization, scaling
        self._inverses: dict[float, F64] = {}
        self.a0_inv = self.inverse(1)

    def inverse(self, n: int) -> F64:
        """``A0⁻¹`` for a user of ``n`` ratings."""
        lam = scaled(self.regularization, self.scaling, n)
        if lam not in self._inverses:
            a0 = self.yty + lam * np.eye(self.yty.shape[0])
            self._inverses[lam] = np.asarray(np.linalg.inv(a0), dtype=np.float64)
        return self._inverses[lam]

    def many(self, items: list[I32], conf: list[F32]) -> F32:
        """One vector per user (zeros for a user with no items)."""
        f = self.y.shape[1]
        out = np.zeros((len(items), f), dtype=np.float32)
        sizes = np.array([len(i) for i in items], dtype=np.int64)
        if sizes.sum() == 0:
            return out
        flat = np.concatenate([np.asarray(i, dtype=np.int64) for i in items])
        y_all = self.y[flat]
        g_all = y_all @ self.a0_inv  # rows: (A0⁻¹ y_i)ᵀ, A0 symmetric
        starts = np.concatenate([[0], np.cumsum(sizes)])
        for u, (s, e) in enumerate(zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True)):
            if e == s:
                continue
            yu = y_all[s:e]
            gu = g_all[s:e] if self.scaling == "none" else yu @ self.inverse(e - s)
            c = np.asarray(conf[u], dtype=np.float64)
            z = gu.T @ c
            d = c - 1.0
            m = yu @ gu.T
            inner = np.eye(e - s) + d[:, None] * m
            x = z - gu.T @ np.linalg.solve(inner, d * (yu @ z))
            out[u] = x.astype(np.float32)
        return out
