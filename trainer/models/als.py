"""Implicit-feedback ALS (the implicit library) over user x work interactions.

Every observed interaction is a positive preference; its confidence (how sure
we are) follows one of the schemes of bookrec/confidence.py.

The scheme, positive threshold, factors, regularisation, iterations and alpha
are searched on the validation split (trainer/models/study.py); every trial is
recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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
    # Explicit ratings below this are not positives: left out of training (0 keeps all).
    # Implicit interactions always count.
    min_rating: int = 0
    seed: int = 0
    threads: int = 0  # 0 = all cores
    # Who fits: "implicit" here, "spark" on Spark MLlib (trainer/models/spark_als.py),
    # and how its least-squares solves weigh the regularisation: "none" (implicit: λ),
    # "count" (MLlib: λ times the ratings of the user or item). Fold-in follows it.
    engine: str = "implicit"
    regularization_scaling: str = "none"


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
    weights: npt.NDArray[np.float32] | None = None,
) -> sp.csr_matrix:
    conf = confidence(ratings, alpha, scheme, weights)
    return sp.csr_matrix((conf, (users, items)), shape=(n_users, n_items), dtype=np.float32)


def is_positive(ratings: npt.NDArray[np.int8], min_rating: int) -> npt.NDArray[np.bool_]:
    """Which interactions train ALS: implicit ones, and explicit ones >= ``min_rating``."""
    out: npt.NDArray[np.bool_] = (ratings == 0) | (ratings >= min_rating)
    return out


def training_matrix(
    users: npt.NDArray[np.int32],
    items: npt.NDArray[np.int32],
    ratings: npt.NDArray[np.int8],
    weights: npt.NDArray[np.float32],
    shape: tuple[int, int],
    params: ALSParams,
) -> sp.csr_matrix:
    """The confidence matrix ALS is fitted on, for ``params``' scheme and threshold."""
    keep = is_positive(ratings, params.min_rating)
    return confidence_matrix(
        users[keep],
        items[keep],
        ratings[keep],
        shape[0],
        shape[1],
        params.alpha,
        params.scheme,
        weights[keep],
    )


def train_als(
    user_items: sp.csr_matrix,
    params: ALSParams,
    checkpoints: Sequence[int] = (),
    report: Callable[[int, ALSModel], None] | None = None,
) -> ALSModel:
    """Fit ALS; with ``checkpoints`` (iteration counts), ``report`` sees the model after
    each of them (the study prunes poor settings there; it may raise to stop)."""
    from implicit.cpu.als import AlternatingLeastSquares

    if user_items.nnz == 0:
        raise ModelFitError("no interactions to train ALS on: check the ratings file")
    if params.engine == "spark":  # one fit on the cluster: no checkpoints to prune at
        from trainer.models import spark_als

        return spark_als.fit(user_items, params)
    stops = sorted({c for c in checkpoints if 0 < c < params.iterations} | {params.iterations})
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
        done = 0
        for stop in stops:
            # implicit keeps its factors between fits, so a fit of n more iterations
            # continues where the last one ended.
            model.iterations = stop - done
            model.fit(user_items, show_progress=False)
            done = stop
            if report is not None and stop != params.iterations:
                report(stop, _factors(model))
    return _factors(model)


def _factors(model: Any) -> ALSModel:
    uf = np.asarray(model.user_factors, dtype=np.float32)
    itf = np.asarray(model.item_factors, dtype=np.float32)
    if not (np.isfinite(uf).all() and np.isfinite(itf).all()):
        raise ModelFitError("ALS produced NaN/inf factors: lower alpha or raise regularization")
    return ALSModel(uf, itf)
