"""bench/scale_artifact.py builds artifacts the server accepts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.scale_artifact import ScaleSpec, build
from bookrec import artifact
from bookrec.rerank_features import FEATURES
from server.engine.bundle import Bundle
from server.engine.warmup import run_warmup


def test_small_scale_artifact_opens_and_warms_up(tmp_path: Path) -> None:
    spec = ScaleSpec(books=2000, users=1000, factors=32, subject_dim=16, subjects=60, clusters=16)
    path = build(tmp_path, spec)

    assert artifact.complete_versions(tmp_path) == [path]
    manifest = artifact.read_manifest(path)
    artifact.verify(path, manifest)
    assert manifest.counts["books"] == 2000 and manifest.counts["users"] == 1000
    assert artifact.has_reranker(manifest)
    assert json.loads((path / "reranker_features.json").read_text()) == list(FEATURES)

    bundle = Bundle.open(path)
    assert bundle.n_books == 2000
    assert len(bundle.user_row) == 1000
    warmup = json.loads((path / "warmup.json").read_text())
    assert warmup["user_ids"] and all(u in bundle.user_row for u in warmup["user_ids"])
    assert warmup["book_ids"] and all(b in bundle.book_row for b in warmup["book_ids"])
    assert all(bundle.subject(s) >= 0 for s in warmup["subject_ids"])
    run_warmup(bundle)

    # Rows are consistent: histories only name books with ALS vectors, subjects are
    # compacted (no gaps before padding) and never repeated within a book.
    rated = np.asarray(bundle.user_items_indices)
    assert np.asarray(bundle.item_in_als)[rated].all()
    subjects = np.asarray(bundle.book_subjects)
    assert (subjects[:, 0] >= 0).all()
    padded = subjects < 0
    assert not (padded[:, :-1] & ~padded[:, 1:]).any()
    for row in subjects[:200]:
        real = row[row >= 0]
        assert len(set(real.tolist())) == len(real)


def test_same_spec_same_arrays(tmp_path: Path) -> None:
    spec = ScaleSpec(books=500, users=100, factors=16, subject_dim=8, subjects=40, clusters=8)
    a = build(tmp_path / "a", spec)
    b = build(tmp_path / "b", spec)
    for name in ("item_factors", "user_items_indices", "book_subjects"):
        assert np.array_equal(np.load(a / f"{name}.npy"), np.load(b / f"{name}.npy"))


@pytest.mark.parametrize("pipeline", ["als", "als+item_item", "als+item_item+reranker"])
def test_each_pipeline_is_served_as_built(tmp_path: Path, pipeline: str) -> None:
    """--pipeline decides what Recommend serves: the server finds the reranker and the
    item-item model exactly when the pipeline names them, and warms up on them."""
    spec = ScaleSpec(
        books=2000,
        users=500,
        factors=16,
        subject_dim=8,
        subjects=60,
        clusters=16,
        pipeline=pipeline,
        item_item_head=300,
        item_item_neighbours=20,
    )
    bundle = Bundle.open(build(tmp_path, spec))
    assert bundle.manifest.metrics["served"] == pipeline
    assert (bundle.reranker is not None) == pipeline.endswith("+reranker")
    assert (bundle.item_item is not None) == ("item_item" in pipeline)
    if bundle.item_item is not None:
        model = bundle.item_item
        rows = np.flatnonzero(np.diff(model.indptr))
        assert 250 <= len(rows) <= 300 and np.asarray(bundle.item_in_als)[rows].all()
        assert (model.weights > 0).all() and len(model.indices) > 250 * 15
    run_warmup(bundle)


def test_an_unknown_pipeline_is_refused() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        ScaleSpec(books=500, pipeline="als+magic")
