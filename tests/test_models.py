"""Models and evaluation on the tiny set: metrics, decisions, determinism, quality gate."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bookrec.artifact import REJECTED_PREFIX, newest_valid, read_manifest
from tests.conftest import tiny_config
from trainer.evaluation.split import SplitConfig
from trainer.features import build_features
from trainer.modeling import ModelConfig, train_models
from trainer.models.als import ALSParams
from trainer.models.study import StudyBudget
from trainer.models.subject_model import SubjectModelParams
from trainer.pipeline import run
from trainer.snapshot import Snapshot
from trainer.store.store import Store


def _snapshot(url: str) -> Snapshot:
    async def export() -> Snapshot:
        async with await Store.open(url) as store:
            return await store.export(await store.freeze_split(SplitConfig()))

    return asyncio.run(export())


def test_manifest_holds_every_strategy_and_the_decisions(tiny_artifact: Path) -> None:
    metrics = read_manifest(tiny_artifact).metrics
    assert set(metrics["warm"]) >= {"popularity", "als"}
    assert {"popularity", "prior", "subject", "served"} <= set(metrics["cold"])
    journeys = ("n=1", "n=3", "n=5", "n=10")
    assert {
        f"{j}/{s}" for j in journeys for s in ("popularity", "prior", "personal", "served")
    } <= (set(metrics["history"]))
    assert set(metrics["new_users"]["journeys"]) == {"subjects", *journeys}
    rows = [*metrics["warm"].values(), *metrics["cold"].values(), *metrics["history"].values()]
    for row in rows:
        assert {"users", "recall@10", "ndcg@10", "ndcg@10_ci", "coverage@10_ci"} <= set(row)
        assert 0.0 <= row["ndcg@10"] <= 1.0
        low, high = row["ndcg@10_ci"]
        assert low <= row["ndcg@10"] <= high
    study = metrics["als"]["study"]
    assert study["n_trials"] == len(study["trials"]) == 4  # tiny_config's study_trials
    # The two points of TINY_ALS_GRID are tried first, then the sampler's own.
    assert [t["params"]["alpha"] for t in study["trials"][:2]] == [5.0, 20.0]
    assert {t["state"] for t in study["trials"]} <= {"COMPLETE", "PRUNED", "FAIL"}
    for name in ("item_item", "reranker"):
        decision = metrics[name]
        assert decision["reason"]
        if "ndcg@10_gain" in decision and not decision.get("forced"):  # its interval's
            assert decision["served"] == (decision["ndcg@10_gain"]["low"] > 0)
    assert (metrics["served"].endswith("+reranker")) == metrics["reranker"]["served"]
    assert ("item_item" in metrics["served"]) == metrics["item_item"]["served"]
    assert set(metrics["test_baselines_once"]) == {"test/popularity", "test/als"}
    for png in ("ndcg_at_k.png", "study.png"):
        assert (tiny_artifact / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tiny_artifact / "evaluation.json").read_text())["warm"] == metrics["warm"]


def test_tiny_models_beat_popularity(tiny_artifact: Path) -> None:
    """On planted structure the learned models must find something popularity cannot."""
    metrics = read_manifest(tiny_artifact).metrics
    assert metrics["warm"]["als"]["ndcg@10"] > metrics["warm"]["popularity"]["ndcg@10"]
    assert metrics["warm"]["als"]["coverage@10"] > metrics["warm"]["popularity"]["coverage@10"]


def test_same_seed_same_metrics_and_decisions(tiny_artifact: Path, tiny_store: str) -> None:
    snap = _snapshot(tiny_store)
    feats = build_features(snap)
    cfg = ModelConfig(
        als_enqueue=(ALSParams(factors=32, iterations=5, threads=1),),
        als_budget=StudyBudget(trials=3, seconds=120.0),
        item_item_trials=2,
        subject=SubjectModelParams(epochs=1, threads=1),
    )
    a = train_models(snap, feats, cfg).metrics
    b = train_models(snap, feats, cfg).metrics
    for group in ("warm", "cold", "history", "served", "cold_start"):
        assert a[group] == b[group]  # rows are rounded to 4 decimals

    def trials(m: dict[str, Any]) -> list[tuple[object, ...]]:  # all but their durations
        ii = m["item_item"]
        studies = [m["als"]["study"], ii["study"], ii["rp3_study"], m["reranker"]["study"]]
        return [(t["params"], t["value"], t["state"]) for st in studies for t in st["trials"]]

    assert trials(a) == trials(b)
    for group in ("item_item", "reranker"):
        timed = ("study", "rp3_study")
        assert {k: v for k, v in a[group].items() if k not in timed} == {
            k: v for k, v in b[group].items() if k not in timed
        }


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
        als_grid="factors=8;iterations=4;alpha=0.05;regularization=100",
        study_trials=1,  # just that point
        item_item=False,
        rerank="off",  # serve that ALS alone
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

    monkeypatch.setattr("trainer.publish.export.ndcg_curves", boom)
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
