"""Workers hash a version once between them; anything changed is hashed again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bookrec import artifact
from server.engine import verified
from server.engine.manager import ModelManager


def _version(tmp_path: Path) -> tuple[Path, list[str]]:
    d = tmp_path / "artifacts" / "20260101T000000Z-00000000"
    d.mkdir(parents=True)
    for name in ("a.npy", "b.npy"):
        (d / name).write_bytes(name.encode() * 100)
    return d, ["a.npy", "b.npy"]


def test_the_second_worker_skips_the_hashes(tmp_path: Path) -> None:
    d, files = _version(tmp_path)
    cache = tmp_path / "artifacts" / ".cache"
    with verified.hashes_needed(d, files, cache) as needed:
        assert needed
    with verified.hashes_needed(d, files, cache) as needed:
        assert not needed


def test_a_rewritten_file_is_hashed_again(tmp_path: Path) -> None:
    d, files = _version(tmp_path)
    cache = tmp_path / "artifacts" / ".cache"
    with verified.hashes_needed(d, files, cache) as needed:
        assert needed
    replacement = d / "b.new"
    replacement.write_bytes(b"b.npy" * 100)  # same size, another inode
    os.replace(replacement, d / "b.npy")
    with verified.hashes_needed(d, files, cache) as needed:
        assert needed


def test_a_failed_check_leaves_no_stamp(tmp_path: Path) -> None:
    d, files = _version(tmp_path)
    cache = tmp_path / "artifacts" / ".cache"
    with pytest.raises(artifact.ArtifactError), verified.hashes_needed(d, files, cache):
        raise artifact.ArtifactError("sha256 differs")
    with verified.hashes_needed(d, files, cache) as needed:
        assert needed


def test_an_unwritable_cache_means_hashing_every_time(tmp_path: Path) -> None:
    d, files = _version(tmp_path)
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the cache would go")
    for _ in range(2):
        with verified.hashes_needed(d, files, blocked) as needed:
            assert needed


def test_two_managers_hash_a_real_artifact_once(
    artifact_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed: list[str] = []
    real = artifact._sha256

    def counting(path: Path) -> str:
        hashed.append(path.name)
        return real(path)

    monkeypatch.setattr(artifact, "_sha256", counting)
    first = ModelManager(artifact_root, compile_reranker=False)
    assert first.poll()
    assert hashed
    count = len(hashed)
    second = ModelManager(artifact_root, compile_reranker=False)
    assert second.poll()
    assert len(hashed) == count  # the stamp spoke for the files
    assert second.serving_version == first.serving_version
