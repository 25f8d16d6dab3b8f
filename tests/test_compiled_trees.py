"""The reranker's compiled trees: equal to LightGBM, cached, and never in the way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pytest

from server.engine import compiled_trees


@pytest.fixture(scope="module")
def booster() -> Any:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 6))
    x[:, 5] = rng.integers(0, 5, 600)  # an integer-valued feature, as counts are
    x[rng.random(x.shape) < 0.05] = np.nan
    y = (x[:, 0] + (x[:, 5] > 2) + rng.normal(0, 0.3, 600) > 1).astype(int)
    data = lightgbm.Dataset(x, y, group=[20] * 30)
    params = {"objective": "lambdarank", "num_leaves": 7, "verbose": -1, "seed": 0}
    return lightgbm.train(params, data, num_boost_round=25)


def test_compiled_trees_predict_what_lightgbm_predicts(booster: Any, tmp_path: Path) -> None:
    predict = compiled_trees.compiled_predict(booster, booster.model_to_string(), tmp_path)
    assert predict is not None
    rng = np.random.default_rng(1)
    rows = np.vstack(
        [
            compiled_trees.check_rows(booster.model_to_string(), 6, seed=7),
            rng.standard_normal((300, 6)),
        ]
    ).astype(np.float32)
    want = compiled_trees.lightgbm_predict(booster)(rows)
    np.testing.assert_array_equal(predict(rows), want)
    assert len(list(tmp_path.glob("reranker-*.so"))) == 1


def test_check_rows_sit_on_the_split_thresholds(booster: Any) -> None:
    text = booster.model_to_string()
    rows = compiled_trees.check_rows(text, 6)
    dumped = []
    stack = [t["tree_structure"] for t in booster.dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_feature" in node:
            dumped.append((node["split_feature"], node["threshold"]))
            stack += [node["left_child"], node["right_child"]]
    read = list(compiled_trees.splits(text))
    assert len(read) == len(dumped)
    real = {(f, np.float32(t)) for f, t in dumped if abs(t) < 1e38}  # not +-1e300 routing
    assert {(f, np.float32(t)) for f, t in read if abs(t) < 1e38} == real  # the text, read right
    assert real
    assert sum(np.any(rows[:, f] == t) for f, t in real) >= 0.9 * len(real)
    assert np.isnan(rows).any()


def test_a_second_worker_reuses_the_library(
    booster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = booster.model_to_string()
    assert compiled_trees.compiled_predict(booster, text, tmp_path) is not None
    import tl2cgen

    def no_compiler(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("compiled twice")

    monkeypatch.setattr(tl2cgen, "export_lib", no_compiler)
    assert compiled_trees.compiled_predict(booster, text, tmp_path) is not None


def test_without_a_compiler_lightgbm_answers(
    booster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import tl2cgen

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("gcc: command not found")

    monkeypatch.setattr(tl2cgen, "export_lib", broken)
    assert compiled_trees.compiled_predict(booster, booster.model_to_string(), tmp_path) is None
    assert any("gcc: command not found" in str(r.__dict__) for r in caplog.records)
    assert not list(tmp_path.glob("*.so"))


def test_a_library_that_disagrees_is_refused(
    booster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import tl2cgen

    real = tl2cgen.Predictor

    class OffByOne:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.inner = real(*args, **kwargs)

        def predict(self, matrix: Any) -> Any:
            return self.inner.predict(matrix) + 1e-12

    monkeypatch.setattr(tl2cgen, "Predictor", OffByOne)
    assert compiled_trees.compiled_predict(booster, booster.model_to_string(), tmp_path) is None
    assert "disagrees" in caplog.text


def test_the_cache_keeps_the_newest_libraries(booster: Any, tmp_path: Path) -> None:
    import os

    for i in range(compiled_trees.KEEP_LIBRARIES + 2):
        old = tmp_path / f"reranker-old{i}.so"
        old.write_bytes(b"")
        os.utime(old, ns=(i, i))
    assert compiled_trees.compiled_predict(booster, booster.model_to_string(), tmp_path)
    kept = sorted(p.name for p in tmp_path.glob("reranker-*.so"))
    assert len(kept) == compiled_trees.KEEP_LIBRARIES
    assert not any(name in kept for name in ("reranker-old0.so", "reranker-old1.so"))


def test_compiled_trees_agree_on_the_reranker_features(tmp_path: Path) -> None:
    """A model of the trainer's (train_booster) on bookrec.rerank_features' matrix, as the
    trainer builds it: the compiled trees predict exactly what LightGBM predicts on it."""
    from bookrec import rerank_features as rf
    from trainer.models import reranker as rr

    rng = np.random.default_rng(2)
    n_books, users, depth = 400, 60, 40
    count = rng.integers(0, 300, n_books).astype(np.int32)
    table = rf.ItemTable(
        author_id=rng.integers(0, 40, n_books).astype(np.int32),
        series_id=np.where(rng.random(n_books) < 0.2, rng.integers(1, 30, n_books), 0).astype(
            np.int32
        ),
        series_volume=rng.integers(0, 6, n_books).astype(np.int16),
        book_subjects=np.where(
            rng.random((n_books, 3)) < 0.6, rng.integers(0, 12, (n_books, 3)), -1
        ).astype(np.int32),
        subject_vectors=rng.standard_normal((n_books, 4)).astype(np.float32),
        year_bucket=rng.integers(0, 14, n_books).astype(np.int8),
        prior=rng.random(n_books).astype(np.float32),
        count=count,
        count_pct=rf.count_percentile(count),
        recency=rf.book_recency(
            rng.integers(0, n_books, 5000).astype(np.int32),
            rng.integers(0, 10**9, 5000),
            n_books,
        ),
        mean=rng.uniform(0, 10, n_books).astype(np.float32),
        std=rng.uniform(0, 3, n_books).astype(np.float32),
    )
    items = np.stack([rng.choice(n_books, depth, replace=False) for _ in range(users)])
    scores = -np.sort(-rng.standard_normal((users, depth)), axis=1).astype(np.float32)
    ii = np.where(rng.random((users, depth)) < 0.5, rng.random((users, depth)), 0.0)
    got = rr.Retrieved(items.astype(np.int64), scores, scores * 0.7, ii.astype(np.float32))
    contexts = [
        rf.UserContext(
            history=rng.choice(n_books, int(rng.integers(1, 30)), replace=False).astype(np.int32),
            favourite_subjects=np.array([0, 3, -1, -1, -1], np.int32),
            subject_vector=rng.standard_normal(4).astype(np.float32),
            count=float(rng.integers(1, 100)),
            mean=float(rng.uniform(0, 10)),
            std=float(rng.uniform(0, 3)),
        )
        for _ in range(users)
    ]
    q = rr.queries(table, contexts, got)
    assert q.x.shape == (users * depth, len(rf.FEATURES))
    signal = q.x[:, rf.FEATURES.index("book_recency")] + q.x[:, rf.FEATURES.index("score_share")]
    labels = (signal + rng.normal(0, 0.3, len(signal)) > 1.3).astype(np.int32)
    data = lightgbm.Dataset(q.x, labels, group=[depth] * users, feature_name=list(rf.FEATURES))
    model = rr.train_booster(data, rr.RerankerParams(n_estimators=40, min_data_in_leaf=5))
    text = model.model_to_string()
    predict = compiled_trees.compiled_predict(model, text, tmp_path)
    assert predict is not None
    rows = np.vstack([q.x, compiled_trees.check_rows(text, len(rf.FEATURES), seed=3)])
    rows = rows.astype(np.float32)
    np.testing.assert_array_equal(predict(rows), compiled_trees.lightgbm_predict(model)(rows))
