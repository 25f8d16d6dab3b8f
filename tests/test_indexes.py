"""The artifact's FAISS indexes: exact when small, IVF with high recall when large,
and both kinds read back memory-mapped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss
import numpy as np

from trainer.indexes import EXACT_LIMIT, ann_index, recall


def clustered(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(200, d))
    rows = centers[rng.integers(0, 200, n)] + rng.normal(0, 0.5, (n, d))
    return rows.astype(np.float32)


def test_small_catalogues_get_an_exact_index() -> None:
    vectors = clustered(1000, 16)
    index = ann_index(vectors)
    assert isinstance(index, faiss.IndexFlatIP)
    assert recall(index, vectors, vectors[:50], 100) == 1.0


def test_large_catalogues_get_ivf_with_high_recall_and_map_from_disk(tmp_path: Path) -> None:
    vectors = clustered(EXACT_LIMIT + 10_000, 16)
    index: Any = ann_index(vectors)
    assert isinstance(index, faiss.IndexIVFFlat)
    queries = clustered(100, 16, seed=1)
    assert recall(index, vectors, queries, 100) >= 0.9
    path = tmp_path / "ivf.faiss"
    faiss.write_index(index, str(path))
    mapped: Any = faiss.read_index(str(path), faiss.IO_FLAG_MMAP)
    assert mapped.nprobe == index.nprobe
    a = index.search(queries[:5], 10)[1]
    b = mapped.search(queries[:5], 10)[1]
    assert (a == b).all()
