"""The reranker's trees compiled to native code (treelite + tl2cgen, gcc -O1).

LightGBM's own ``predict`` walks 150 trees for 300 candidates in about 1.1 ms;
the same trees compiled to C answer in about 0.28 ms, equal bit for bit
(bench figures at 300k books in docs/serving.md). The artifact stays data: the
server compiles the model text it was given into a cache beside the artifacts,
once per model (workers share it through a file lock), and uses the library only
if it predicts exactly what LightGBM predicts on rows built from the model's own
split thresholds (every boundary, both sides, and missing values). Anything else
(no compiler, no tl2cgen, a mismatch) leaves LightGBM's predict in place.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bookrec.log import kv
from server.engine import filelock

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Predict = Callable[[F32], F64]

log = logging.getLogger(__name__)

GCC_OPTIONS = ("-O1",)  # -O2: 2x the compile time, no faster here
CHECK_ROWS = 512
KEEP_LIBRARIES = 5  # the newest compiled models kept in the cache (one a day is trained)
_F32_LIMIT = 1e38  # below float32's largest, so its neighbours exist


def lightgbm_predict(booster: Any) -> Predict:
    """LightGBM's own predict, one thread (concurrency comes from processes)."""

    def predict(x: F32) -> F64:
        return np.asarray(booster.predict(x, num_threads=1), dtype=np.float64)

    return predict


def compiled_predict(booster: Any, model_text: str, cache_dir: Path) -> Predict | None:
    """The compiled trees of ``booster`` (whose text is ``model_text``), or None with
    the reason logged."""
    try:
        import tl2cgen
        import treelite

        # A store shared by machines of other kinds keeps one library per kind.
        build = (tl2cgen.__version__, platform.machine(), *GCC_OPTIONS)
        key = hashlib.sha256("\n".join((model_text, *build)).encode()).hexdigest()[:20]
        _quiet(tl2cgen)
        library = cache_dir / f"reranker-{key}.so"
        with filelock.exclusive(cache_dir / f"reranker-{key}.lock"):
            if not library.exists():
                partial = library.with_suffix(f".{os.getpid()}.tmp.so")
                model = treelite.frontend.from_lightgbm(booster)
                tl2cgen.export_lib(
                    model, toolchain="gcc", libpath=str(partial), options=list(GCC_OPTIONS)
                )
                os.replace(partial, library)
                _prune(cache_dir, keep=KEEP_LIBRARIES)
        predictor = tl2cgen.Predictor(str(library), nthread=1)
    except Exception as e:  # any failure: LightGBM still answers
        log.warning("reranker not compiled, using LightGBM", extra=kv(error=str(e)))
        return None
    lock = threading.Lock()  # one predictor handle: threads take turns (rare: loads only)

    def predict(x: F32) -> F64:
        matrix = tl2cgen.DMatrix(np.asarray(x, dtype=np.float64))
        with lock:
            out = predictor.predict(matrix)
        return np.asarray(out, dtype=np.float64).reshape(len(x))

    rows = check_rows(model_text, booster.num_feature())
    want = lightgbm_predict(booster)(rows)
    got = predict(rows)
    if not np.array_equal(want, got):
        worst = float(np.nanmax(np.abs(want - got)))
        log.warning("compiled reranker disagrees with LightGBM", extra=kv(max_diff=worst))
        return None
    return predict


def check_rows(model_text: str, n_features: int, n: int = CHECK_ROWS, seed: int = 0) -> F32:
    """Rows whose values sit on, just below and just above the model's split
    thresholds (as float32, the features' type), with some missing: where a compiled
    comparison could differ from LightGBM's, it shows here."""
    rng = np.random.default_rng(seed)
    near: list[list[float]] = [[0.0] for _ in range(n_features)]
    for feature, threshold in splits(model_text):
        if abs(threshold) > _F32_LIMIT:  # LightGBM's +-1e300 (missing-value routing)
            continue
        t = np.float32(threshold)
        near[feature] += [
            float(t),
            float(np.nextafter(t, np.float32(-np.inf))),
            float(np.nextafter(t, np.float32(np.inf))),
        ]
    rows = np.empty((n, n_features), dtype=np.float32)
    for f, values in enumerate(near):
        rows[:, f] = rng.choice(np.array(values, dtype=np.float32), size=n)
    rows[rng.random(rows.shape) < 0.05] = np.nan
    return rows


def splits(model_text: str) -> Iterator[tuple[int, float]]:
    """(feature, threshold) of every numerical split, read from LightGBM's model text
    (``dump_model`` would parse 10x more JSON, holding the GIL for tens of ms)."""
    features: list[str] = []
    thresholds: list[str] = []
    for line in model_text.splitlines():
        key, _, value = line.partition("=")
        if key == "split_feature":
            features = value.split()
        elif key == "threshold":
            thresholds = value.split()
        elif key == "decision_type":
            for f, t, kind in zip(features, thresholds, value.split(), strict=True):
                if not int(kind) & 1:  # bit 0: a categorical split (threshold = a set)
                    yield int(f), float(t)
            features, thresholds = [], []


def _prune(cache_dir: Path, keep: int) -> None:
    """Drop all but the ``keep`` newest libraries (a worker that still maps an older
    one keeps its mapping; one that needs it again compiles it again)."""
    libraries = sorted(cache_dir.glob("reranker-*.so"), key=lambda p: p.stat().st_mtime_ns)
    for old in libraries[:-keep]:
        old.unlink(missing_ok=True)
        old.with_suffix(".lock").unlink(missing_ok=True)


def _debug_log(message: bytes) -> None:
    log.debug("tl2cgen", extra=kv(message=message.decode("utf-8", "replace")))


_DEBUG_LOG = ctypes.CFUNCTYPE(None, ctypes.c_char_p)(_debug_log)  # kept alive here


def _quiet(tl2cgen: Any) -> None:
    """tl2cgen prints its native log lines on stdout; ours is structured: send them
    to this module's debug log."""
    lib = getattr(getattr(tl2cgen, "libloader", None), "_LIB", None)
    if lib is not None:
        lib.TL2cgenRegisterLogCallback(_DEBUG_LOG)
