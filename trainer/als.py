"""Implicit-feedback ALS (the implicit library) over user x work interactions.

Every observed interaction is a positive preference; its confidence says how
sure we are. With s_ui = 1 for an implicit interaction (rating 0) and
s_ui = rating / 5 for an explicit rating 1..10 (a 10 counts twice an implicit
read, a 1 a fifth of it), the confidence schemes are:

- ``rating``: c_ui = 1 + alpha * s_ui
- ``log``:    c_ui = 1 + alpha * log(1 + s_ui)   (flattens the explicit scale)
- ``binary``: c_ui = 1 + alpha                   (ignores the rating value)

The scheme, factors, regularisation, iterations and alpha are tuned on the
validation split (trainer/tuning.py); the grid and its results are recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from trainer.errors import ModelFitError


@dataclass(frozen=True)
class ALSParams:
    factors: int = 64
    regularization: float = 0.05
    iterations: int = 15
    alpha: float = 10.0
    scheme: str = "rating"
    seed: int = 0
    threads: int = 0  # 0 = all cores


@dataclass(frozen=True)
class ALSModel:
    user_factors: npt.NDArray[np.float32]
    item_factors: npt.NDArray[np.float32]


def confidence_matrix(
    users: npt.NDArray[np.int32],
    items: npt.NDArray[np.int32],
    ratings: npt.NDArray[np.int8],
    n_users: int,
    n_items: int,
    alpha: float,
    scheme: str = "rating",
) -> sp.csr_matrix:
    strength = np.where(ratings > 0, ratings.astype(np.float32) / 5.0, 1.0)
    if scheme == "rating":
        conf = 1.0 + alpha * strength
    elif scheme == "log":
        conf = 1.0 + alpha * np.log1p(strength)
    elif scheme == "binary":
        conf = np.full(len(ratings), 1.0 + alpha)
    else:
        raise ValueError(f"unknown confidence scheme {scheme!r}: use rating, log or binary")
    conf = conf.astype(np.float32)
    return sp.csr_matrix((conf, (users, items)), shape=(n_users, n_items), dtype=np.float32)


def train_als(user_items: sp.csr_matrix, params: ALSParams) -> ALSModel:
    from implicit.cpu.als import AlternatingLeastSquares

    if user_items.nnz == 0:
        raise ModelFitError("no interactions to train ALS on: check the ratings file")
    # BLAS threads fight implicit's own OpenMP loop; it warns unless limited.
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=params.factors,
            regularization=params.regularization,
            iterations=params.iterations,
            random_state=params.seed,
            num_threads=params.threads,
            calculate_training_loss=False,
        )
        model.fit(user_items, show_progress=False)
    uf = np.asarray(model.user_factors, dtype=np.float32)
    itf = np.asarray(model.item_factors, dtype=np.float32)
    if not (np.isfinite(uf).all() and np.isfinite(itf).all()):
        raise ModelFitError("ALS produced NaN/inf factors: lower alpha or raise regularization")
    return ALSModel(uf, itf)
