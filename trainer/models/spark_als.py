"""ALS fitted by Spark MLlib on a cluster (``trainer run --als-engine spark``).

The interactions the trainer would give implicit go to Spark instead, as
``(user_idx, item_idx, r)`` rows; MLlib's implicit ALS fits them, and the factors come
back as arrays in ``user_idx`` / ``item_idx`` order, so everything after the fit (the
study's scoring, the refit, the artifact, its FAISS indexes and checks) is the same as
for implicit. Two differences between the libraries are handled here and recorded in
the manifest (``params.als``, docs/artifact-format.md), so that the server's fold-in
(bookrec/fold_in.py) solves the problem MLlib solved:

- **Confidence.** MLlib builds ``c = 1 + alpha * r`` from its rating column; implicit
  takes ``c`` itself. MLlib is given ``r = (c - 1) / alpha`` of the same ``c``
  (bookrec/confidence.py), so ``user_items_confidence.npy`` is unchanged.
- **Regularisation.** MLlib scales ``regParam`` by the number of ratings in every
  least-squares solve (ALS-WR): ``regularization_scaling = "count"``, and fold-in
  solves with ``λ·n`` for a user of ``n`` ratings.

MLlib also solves items first and users last in each iteration, each step exactly
(Cholesky), so a fold-in of a trained user's own ratings gives back that user's
factors (tests/test_spark_als.py).

The session is made once per process from ``configure`` (the master URL and the heap
of the driver and of each executor) and reused by every fit of the study and the
refit; the data of one confidence scheme is sent to the cluster once.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from bookrec.log import kv
from trainer.errors import InputError, ModelFitError

if TYPE_CHECKING:
    from trainer.models.als import ALSModel, ALSParams

log = logging.getLogger("trainer.models.spark_als")
ROWS_PER_SLICE = 200_000  # rows of one task's slice when the data goes to the cluster


@dataclass(frozen=True)
class SparkSettings:
    master: str  # spark://HOST:7077, or local[N] on this machine
    memory: str = "512m"  # the driver's heap and each executor's


@dataclass
class _State:
    settings: SparkSettings | None = None
    session: Any = None
    cached: dict[tuple[Any, ...], Any] = field(default_factory=dict)


_state = _State()  # one session per process


def configure(settings: SparkSettings) -> None:
    """The cluster the next fits run on; checked here so a bad setting fails first."""
    if not settings.master:
        raise InputError(
            "--als-engine spark needs --spark-master: spark://HOST:7077 for a standalone "
            "cluster, local[N] for N cores of this machine"
        )
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise InputError(
            "--als-engine spark needs pyspark and a Java runtime: "
            "pip install -e '.[spark]' and apt-get install openjdk-17-jre-headless"
        ) from None
    _state.settings = settings


def session() -> Any:
    """The process's Spark session (made at the first fit, stopped at exit)."""
    if _state.session is not None:
        return _state.session
    settings = _state.settings
    if settings is None:
        raise InputError("Spark ALS is not configured: give --als-engine spark --spark-master")
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    start = time.perf_counter()
    builder = (
        SparkSession.builder.master(settings.master)
        .appName("bookrec-als")
        .config("spark.driver.memory", settings.memory)
        .config("spark.executor.memory", settings.memory)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "8")
    )
    if host := os.environ.get("SPARK_LOCAL_IP"):  # the address executors reach us at
        builder = builder.config("spark.driver.host", host).config("spark.driver.bindAddress", host)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    atexit.register(stop)
    log.info(
        "spark session",
        extra=kv(
            master=settings.master,
            memory=settings.memory,
            parallelism=spark.sparkContext.defaultParallelism,
            seconds=round(time.perf_counter() - start, 1),
        ),
    )
    _state.session = spark
    return spark


def stop() -> None:
    if _state.session is not None:
        _state.session.stop()
        _state.session = None
        _state.cached.clear()


def mllib_ratings(conf: npt.NDArray[np.float32], alpha: float) -> npt.NDArray[np.float64]:
    """MLlib's rating column for the confidences ``conf``: ``r = (c - 1) / alpha``, so
    that MLlib's ``1 + alpha * r`` is ``c`` again."""
    out: npt.NDArray[np.float64] = (conf.astype(np.float64) - 1.0) / alpha
    return out


def _frame(user_items: sp.csr_matrix, params: ALSParams) -> Any:
    """The interactions as a cached DataFrame (user, item, rating). ``r`` does not depend
    on alpha (``c - 1`` is alpha times the strength), so one frame serves every trial
    of a scheme and threshold."""
    key = (params.scheme, params.min_rating, user_items.shape, user_items.nnz)
    if key in _state.cached:
        return _state.cached[key]
    spark = session()
    for old in _state.cached.values():  # the last scheme's rows: not needed by this fit
        old.unpersist()
    _state.cached.clear()
    coo = user_items.tocoo()
    r = mllib_ratings(coo.data, params.alpha)
    rows = list(zip(coo.row.tolist(), coo.col.tolist(), r.tolist(), strict=True))
    slices = max(2, len(rows) // ROWS_PER_SLICE)
    frame = spark.createDataFrame(
        spark.sparkContext.parallelize(rows, slices), "user INT, item INT, rating DOUBLE"
    ).cache()
    frame.count()  # sent once, here
    _state.cached[key] = frame
    return frame


def fit(user_items: sp.csr_matrix, params: ALSParams) -> ALSModel:
    """MLlib's implicit ALS on ``user_items`` (implicit's confidence matrix); the
    factors in row order, zero rows for users and items without interactions."""
    from pyspark.ml.recommendation import ALS

    from trainer.models.als import ALSModel

    if params.regularization_scaling != "count":
        raise ModelFitError("Spark MLlib scales regularisation by counts: params disagree")
    start = time.perf_counter()
    frame = _frame(user_items, params)
    parallelism = session().sparkContext.defaultParallelism
    als = ALS(
        rank=params.factors,
        maxIter=params.iterations,
        regParam=params.regularization,
        implicitPrefs=True,
        alpha=params.alpha,
        userCol="user",
        itemCol="item",
        ratingCol="rating",
        seed=params.seed,
        nonnegative=False,
        numUserBlocks=parallelism,
        numItemBlocks=parallelism,
    )
    model = als.fit(frame)
    n_users, n_items = user_items.shape
    uf = _collect(model.userFactors, n_users, params.factors)
    itf = _collect(model.itemFactors, n_items, params.factors)
    if not (np.isfinite(uf).all() and np.isfinite(itf).all()):
        raise ModelFitError("Spark ALS produced NaN/inf factors: lower alpha or raise regParam")
    log.info(
        "spark als fit",
        extra=kv(
            factors=params.factors,
            iterations=params.iterations,
            interactions=user_items.nnz,
            seconds=round(time.perf_counter() - start, 2),
        ),
    )
    return ALSModel(uf, itf)


def manifest_params(params: ALSParams) -> dict[str, str]:
    """What the manifest's ``params.als`` adds for a Spark fit: the rating column MLlib
    was given (fold-in reads ``regularization_scaling``, already in the params)."""
    return {"mllib_rating": "(c - 1) / alpha"} if params.engine == "spark" else {}


def _collect(factors: Any, n: int, rank: int) -> npt.NDArray[np.float32]:
    """MLlib's (id, features) rows as an (n, rank) array in id order, streamed."""
    out = np.zeros((n, rank), dtype=np.float32)
    for row in factors.toLocalIterator():
        out[int(row["id"])] = row["features"]
    return out
