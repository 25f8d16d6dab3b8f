"""Implicit-feedback ALS (the implicit library) over user x work interactions.

Every observed interaction is a positive preference; its confidence (how sure
we are) follows one of the schemes of bookrec/confidence.py.

The scheme, factors, regularisation, iterations and alpha are tuned on the
validation split (trainer/tuning.py); the grid and its results are recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from bookrec.confidence import confidence
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
    conf = confidence(ratings, alpha, scheme)
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
