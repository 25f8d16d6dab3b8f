"""The artifact contract: atomic publish, verification, newest valid version."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from bookrec import artifact
from bookrec.artifact import ArtifactError, ArtifactWriter


def _version(minute: int) -> str:
    return artifact.new_model_version("x", dt.datetime(2026, 1, 1, 12, minute, tzinfo=dt.UTC))


def test_string_columns_round_trip() -> None:
    values = ["", "Dune", "Der Zauberberg — Mann", "naïve"]
    offsets, blob = artifact.encode_strings(values)
    col = artifact.StringColumn(offsets, blob)
    assert [col[i] for i in range(len(col))] == values
    assert col.to_list() == values


def test_unpublished_artifact_is_invisible_and_discard_removes_it(tmp_path: Path) -> None:
    writer = ArtifactWriter(tmp_path, _version(0))
    writer.save_array("item_factors", np.zeros((2, 2), dtype=np.float32))
    assert artifact.complete_versions(tmp_path) == []
    writer.discard()
    assert list(tmp_path.iterdir()) == []


def test_publish_refuses_an_incomplete_artifact(tmp_path: Path) -> None:
    writer = ArtifactWriter(tmp_path, _version(0))
    writer.save_array("item_factors", np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ArtifactError, match="lacks required files"):
        writer.publish("s", {}, {}, {})
    assert artifact.complete_versions(tmp_path) == []


def test_published_artifact_verifies_and_maps(tiny_artifact: Path) -> None:
    manifest = artifact.read_manifest(tiny_artifact)
    artifact.verify(tiny_artifact, manifest)
    factors = artifact.load_array(tiny_artifact, manifest, "item_factors")
    assert isinstance(factors, np.memmap)
    assert factors.dtype == np.float32
    assert re.fullmatch(r"[0-9a-f]{16}", manifest.split_id)
    assert manifest.model_version == tiny_artifact.name


def test_corruption_is_detected_and_newest_valid_falls_back(
    tiny_artifact: Path, tmp_path: Path
) -> None:
    old = tmp_path / _version(1)
    new = tmp_path / _version(2)
    shutil.copytree(tiny_artifact, old)
    shutil.copytree(tiny_artifact, new)
    with (new / "popularity.npy").open("r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x00\x80\x7f")  # same size, different bytes
    with pytest.raises(ArtifactError, match="sha256"):
        artifact.verify(new, artifact.read_manifest(new))
    found = artifact.newest_valid(tmp_path)
    assert found is not None and found[0] == old


def test_other_format_version_is_refused(tiny_artifact: Path, tmp_path: Path) -> None:
    copy = tmp_path / tiny_artifact.name
    shutil.copytree(tiny_artifact, copy)
    text = (
        (copy / "manifest.json")
        .read_text()
        .replace(f'"format_version": {artifact.FORMAT_VERSION}', '"format_version": 99')
    )
    (copy / "manifest.json").write_text(text)
    with pytest.raises(ArtifactError, match="format version 99"):
        artifact.read_manifest(copy)
