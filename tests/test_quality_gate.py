"""The quality gate fails closed: when the served NDCG@10 of the published artifact or of
the new run is missing or malformed, it cannot decide, so it refuses to publish."""

from __future__ import annotations

import asyncio
import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bookrec.artifact import REJECTED_PREFIX, newest_valid, read_manifest
from tests.conftest import tiny_config
from tests.fault_table import record_fault
from trainer.config import TrainerConfig
from trainer.pipeline import run
from trainer.publish.gate import quality_gate
from trainer.store.store import Store

Breaker = Callable[[dict[str, Any]], str]  # breaks metrics in place, returns what is wrong


def _served_row(metrics: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = metrics["warm"][metrics["served"]]
    return row


def _missing(metrics: dict[str, Any]) -> str:
    del _served_row(metrics)["ndcg@10"]
    return "ndcg@10 is missing"


def _string(metrics: dict[str, Any]) -> str:
    _served_row(metrics)["ndcg@10"] = "0.3"
    return "ndcg@10 is '0.3', not a number"


def _nan(metrics: dict[str, Any]) -> str:
    _served_row(metrics)["ndcg@10"] = float("nan")
    return "ndcg@10 is nan, outside [0, 1]"


def _negative(metrics: dict[str, Any]) -> str:
    _served_row(metrics)["ndcg@10"] = -0.2
    return "ndcg@10 is -0.2, outside [0, 1]"


def _no_served(metrics: dict[str, Any]) -> str:
    del metrics["served"]
    return "metrics.served is missing"


def _served_row_gone(metrics: dict[str, Any]) -> str:
    del metrics["warm"][metrics["served"]]
    return "(the served strategy's row) is missing"


BREAKERS = [_missing, _string, _nan, _negative, _no_served, _served_row_gone]


def _break_published(root: Path, break_metrics: Breaker) -> str:
    """Break the published artifact's manifest as written (NaN as json writes it)."""
    [published] = [p for p in root.iterdir() if (p / "manifest.json").is_file()]
    path = published / "manifest.json"
    doc = json.loads(path.read_text())
    wrong = break_metrics(doc["metrics"])
    path.write_text(json.dumps(doc, indent=2))
    return wrong


def test_the_gate_passes_a_run_as_good_as_the_published_one(
    tiny_artifact: Path, artifact_root: Path
) -> None:
    manifest = read_manifest(tiny_artifact)
    cfg = TrainerConfig(artifacts_dir=artifact_root)
    assert quality_gate(cfg, manifest.split_id, dict(manifest.metrics)) is None


@pytest.mark.parametrize("break_metrics", BREAKERS)
def test_an_unreadable_published_figure_refuses(
    break_metrics: Breaker, tiny_artifact: Path, artifact_root: Path
) -> None:
    manifest = read_manifest(tiny_artifact)
    wrong = _break_published(artifact_root, break_metrics)
    assert newest_valid(artifact_root) is not None  # still a valid, served artifact
    refused = quality_gate(
        TrainerConfig(artifacts_dir=artifact_root), manifest.split_id, dict(manifest.metrics)
    )
    assert refused is not None and refused.startswith("the quality gate cannot decide")
    assert f"the published {tiny_artifact.name}'s manifest.json" in refused and wrong in refused
    assert f"rename its directory from {REJECTED_PREFIX}<version> to <version>" in refused


@pytest.mark.parametrize("break_metrics", BREAKERS)
@pytest.mark.parametrize("published", [True, False])
def test_an_unreadable_figure_of_the_new_run_refuses(
    break_metrics: Breaker, published: bool, tiny_artifact: Path, artifact_root: Path
) -> None:
    """Whether or not there is a published model to compare with."""
    manifest = read_manifest(tiny_artifact)
    if not published:
        shutil.rmtree(artifact_root / tiny_artifact.name)
    metrics = copy.deepcopy(dict(manifest.metrics))
    wrong = break_metrics(metrics)
    refused = quality_gate(TrainerConfig(artifacts_dir=artifact_root), manifest.split_id, metrics)
    assert refused is not None and refused.startswith("the quality gate cannot decide")
    assert "this run's evaluation is unreadable" in refused and wrong in refused


@pytest.mark.parametrize("break_metrics", [_missing, _string, _nan, _negative])
def test_a_run_against_an_unreadable_published_figure_is_not_published(
    break_metrics: Breaker,
    tiny_data: Path,
    tiny_artifact: Path,
    tiny_store: str,
    tmp_path: Path,
) -> None:
    """The whole run: kept as .rejected-<version>, recorded as rejected, old one served."""
    artifacts = tmp_path / "artifacts"
    shutil.copytree(tiny_artifact.parent, artifacts)
    store = tmp_path / "store.sqlite"
    shutil.copy(tiny_store.removeprefix("sqlite:///"), store)
    wrong = _break_published(artifacts, break_metrics)
    result = asyncio.run(run(tiny_config(tiny_data, artifacts, f"sqlite:///{store}")))
    assert result.refused and result.refused.startswith("the quality gate cannot decide")
    assert wrong in result.refused
    assert result.artifact.name.startswith(REJECTED_PREFIX)
    assert (result.artifact / "manifest.json").is_file()  # complete, to publish by hand
    found = newest_valid(artifacts)
    assert found is not None and found[0].name == tiny_artifact.name

    async def last() -> dict[str, Any]:
        async with await Store.open(f"sqlite:///{store}") as s:
            return (await s.runs())[-1]

    record = asyncio.run(last())
    assert record["status"] == "rejected" and record["published_version"] is None
    assert wrong in str(record["message"])
    # Published by hand, as the reason says: the rename makes it the newest valid version.
    version = result.artifact.name.removeprefix(REJECTED_PREFIX)
    result.artifact.rename(artifacts / version)
    found = newest_valid(artifacts)
    assert found is not None and found[0].name == version > tiny_artifact.name
    record_fault(
        f"published manifest's served NDCG@10 {wrong.removeprefix('ndcg@10 is ')}",
        "quality gate cannot decide, so it refuses: new model kept as .rejected-<version>, "
        "run recorded rejected with what is missing and how to publish by hand; old version "
        "still served",
    )
