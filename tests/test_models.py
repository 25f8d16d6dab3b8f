"""Models and evaluation on the tiny set: metrics, decisions, determinism, quality gate."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bookrec.artifact import REJECTED_PREFIX, newest_valid, read_manifest
from tests.conftest import tiny_config
from trainer.als import ALSParams
from trainer.features import build_features
from trainer.modeling import ModelConfig, train_models
from trainer.pipeline import run
from trainer.snapshot import Snapshot
from trainer.split import SplitConfig
from trainer.store.store import Store
from trainer.subject_model import SubjectModelParams


def _snapshot(url: str) -> Snapshot:
    async def export() -> Snapshot:
        async with await Store.open(url) as store:
            return await store.export(await store.freeze_split(SplitConfig()))

    return asyncio.run(export())


def test_manifest_holds_every_strategy_and_the_decisions(tiny_artifact: Path) -> None:
    metrics = read_manifest(tiny_artifact).metrics
    assert set(metrics["warm"]) >= {"popularity", "als"}
    assert set(metrics["cold"]) == {"popularity", "subject", "subject+prior"}
    for row in [*metrics["warm"].values(), *metrics["cold"].values()]:
        assert set(row) == {"users", "recall@10", "recall@50", "ndcg@10", "map@10", "coverage@10"}
        assert 0.0 <= row["ndcg@10"] <= 1.0
    assert len(metrics["als"]["grid"]) == 2  # the two points of TINY_ALS_GRID
    assert metrics["reranker"]["reason"]
    assert metrics["served"] in ("als", "als+reranker")
    assert (metrics["served"] == "als+reranker") == metrics["reranker"]["used"]
    assert set(metrics["test_baselines_once"]) == {"test/popularity", "test/als"}
    assert (tiny_artifact / "ndcg_at_k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tiny_artifact / "evaluation.json").read_text())["warm"] == metrics["warm"]


def test_tiny_models_beat_popularity(tiny_artifact: Path) -> None:
    """On planted structure the learned models must find something popularity cannot."""
    metrics = read_manifest(tiny_artifact).metrics
    assert metrics["warm"]["als"]["ndcg@10"] > metrics["warm"]["popularity"]["ndcg@10"]
    assert metrics["warm"]["als"]["coverage@10"] > metrics["warm"]["popularity"]["coverage@10"]


def test_same_seed_same_metrics(tiny_artifact: Path, tiny_store: str) -> None:
    snap = _snapshot(tiny_store)
    feats = build_features(snap)
    cfg = ModelConfig(
        als_grid=[ALSParams(factors=32, iterations=5, threads=1)],
        subject=SubjectModelParams(epochs=1, threads=1),
    )
    a = train_models(snap, feats, cfg).metrics
    b = train_models(snap, feats, cfg).metrics
    for group in ("warm", "cold"):
        assert a[group] == b[group]  # rows are rounded to 4 decimals


def _copy_world(tiny_artifact: Path, tiny_store: str, tmp_path: Path) -> tuple[Path, str]:
    artifacts = tmp_path / "artifacts"
    shutil.copytree(tiny_artifact.parent, artifacts)
    store = tmp_path / "store.sqlite"
    shutil.copy(tiny_store.removeprefix("sqlite:///"), store)
    return artifacts, f"sqlite:///{store}"


def test_quality_gate_keeps_a_worse_model_unpublished(
    tiny_data: Path, tiny_artifact: Path, tiny_store: str, tmp_path: Path
) -> None:
    artifacts, store = _copy_world(tiny_artifact, tiny_store, tmp_path)
    worse = tiny_config(
        tiny_data,
        artifacts,
        store,
        als_grid="factors=2;iterations=1;alpha=1",
        reranker_min_gain=100.0,  # serve ALS alone
    )
    result = asyncio.run(run(worse))
    assert result.refused and "below the published" in result.refused
    assert result.artifact.name.startswith(REJECTED_PREFIX)
    assert (result.artifact / "manifest.json").is_file()  # complete, inspectable
    found = newest_valid(artifacts)
    assert found is not None and found[0].name == tiny_artifact.name  # still serving the old one

    async def statuses() -> list[str]:
        async with await Store.open(store) as s:
            return [r["status"] for r in await s.runs()]

    assert asyncio.run(statuses())[-1] == "rejected"
    # The test split was evaluated once, by the first run on this split, not again.
    assert "test_baselines_once" not in result.metrics


def test_a_failing_run_leaves_nothing_visible(
    tiny_data: Path,
    tiny_artifact: Path,
    tiny_store: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    artifacts, store = _copy_world(tiny_artifact, tiny_store, tmp_path)
    before = sorted(p.name for p in artifacts.iterdir())

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("trainer.export.ndcg_curves", boom)
    with pytest.raises(OSError, match="disk full"):
        asyncio.run(run(tiny_config(tiny_data, artifacts, store)))
    assert sorted(p.name for p in artifacts.iterdir()) == before

    async def last() -> dict[str, object]:
        async with await Store.open(store) as s:
            return (await s.runs())[-1]

    record = asyncio.run(last())
    assert record["status"] == "failed" and "disk full" in str(record["message"])
    assert record["published_version"] is None


def test_subject_vectors_put_favourite_subjects_first(tiny_artifact: Path) -> None:
    """Cold start's ingredients: a book is closest to users who favour its subjects."""
    manifest = read_manifest(tiny_artifact)
    books = np.load(tiny_artifact / "book_subject_vectors.npy")
    subjects = np.load(tiny_artifact / "book_subjects.npy")
    assert books.shape[0] == subjects.shape[0] == manifest.counts["books"]
    norms = np.linalg.norm(books, axis=1)
    has = subjects[:, 0] >= 0
    assert np.allclose(norms[has], 1.0, atol=1e-4)
    assert np.allclose(norms[~has], 0.0)


def test_cold_score_lift_favours_narrow_subjects_and_matches_row_by_row() -> None:
    """bookrec/cold_score.py: the lift of a match grows as its subject's reach shrinks, is
    zero without a match, and the per-row path the server uses equals the batch path the
    trainer evaluates, bit for bit."""
    from bookrec import cold_score

    book_subjects = np.array([[0, -1], [0, 1], [1, -1], [2, -1], [-1, -1]], dtype=np.int32)
    counts = np.array([50, 10, 5, 1, 3], dtype=np.int32)  # subject 0 is read most
    lift = cold_score.SubjectLift(book_subjects, counts, 3)
    full = lift([[0], [1], [0, 2], []])
    assert full.shape == (4, 5) and full.dtype == np.float32
    assert full[0, 0] > 0 and full[0, 2] == 0 and full[0, 4] == 0
    assert full[1, 2] > full[0, 0]  # subject 1 reaches fewer reads than subject 0
    assert full[2, 3] > full[2, 0] > 0 and not full[3].any()
    for row, fav in enumerate([[0], [1], [0, 2], []]):
        rows = np.array([4, 0, 3, 1], dtype=np.int64)
        np.testing.assert_array_equal(lift.at(fav, rows), full[row, rows])
    prior01 = cold_score.rescale_prior(np.array([0.2, 0.6, 0.4, 1.0, 0.2], np.float32))
    np.testing.assert_allclose(prior01, [0.0, 0.5, 0.25, 1.0, 0.0], atol=1e-6)
    sim = cold_score.similarity(
        np.ones((1, 2), np.float32), np.eye(5, 2, dtype=np.float32), full[:1]
    )
    np.testing.assert_array_equal(cold_score.blend(sim, prior01, 1.0), prior01[None, :])
