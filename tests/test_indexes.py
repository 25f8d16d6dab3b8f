"""The artifact's FAISS indexes: exact when small, IVF with high recall when large,
and both kinds read back memory-mapped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

from trainer.publish import indexes
from trainer.publish.indexes import EXACT_LIMIT, RECALL_TARGET, ann_index, recall


def clustered(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(200, d))
    rows = centers[rng.integers(0, 200, n)] + rng.normal(0, 0.5, (n, d))
    return rows.astype(np.float32)


def test_small_catalogues_get_an_exact_index() -> None:
    vectors = clustered(1000, 16)
    index, measured = ann_index(vectors, vectors[:50])
    assert isinstance(index, faiss.IndexFlatIP)
    assert measured == 1.0 == recall(index, vectors, vectors[:50], 100)


def test_large_catalogues_get_ivf_with_high_recall_and_map_from_disk(tmp_path: Path) -> None:
    vectors = clustered(EXACT_LIMIT + 10_000, 16)
    queries = clustered(100, 16, seed=1)
    index: Any
    index, measured = ann_index(vectors, queries)
    assert isinstance(index, faiss.IndexIVFFlat)
    assert measured >= RECALL_TARGET
    assert recall(index, vectors, queries, 100) == measured
    path = tmp_path / "ivf.faiss"
    faiss.write_index(index, str(path))
    mapped: Any = faiss.read_index(str(path), faiss.IO_FLAG_MMAP)
    assert mapped.nprobe == index.nprobe
    a = index.search(queries[:5], 10)[1]
    b = mapped.search(queries[:5], 10)[1]
    assert (a == b).all()


def test_hnsw_when_ivf_cannot_reach_the_recall_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexes, "EXACT_LIMIT", 1_000)
    monkeypatch.setattr(indexes, "MAX_NPROBE", 8)  # IVF stops short of the target
    monkeypatch.setattr(indexes, "RECALL_TARGET", 0.99)
    vectors = clustered(5_000, 16)
    queries = clustered(50, 16, seed=2)
    index: Any
    index, measured = ann_index(vectors, queries)
    assert isinstance(index, faiss.IndexHNSWSQ)
    assert measured >= 0.9
    path = tmp_path / "hnsw.faiss"
    faiss.write_index(index, str(path))
    again: Any = faiss.read_index(str(path), faiss.IO_FLAG_MMAP)
    assert again.hnsw.efSearch == index.hnsw.efSearch
    assert recall(again, vectors, queries, 100) == measured
