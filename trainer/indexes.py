"""The FAISS indexes of an artifact, built in one place so every writer agrees.

- ``item_index.faiss``: inner product over L2-normalised item factors (cosine),
  for Similar in ALS mode.
- ``subject_index.faiss``: inner product over book subject vectors, for Similar
  in SUBJECT mode.
- ``retrieval_index.faiss``: inner product over raw item factors, for Recommend's
  candidates.

Each is exact (flat) up to ``EXACT_LIMIT`` books, where a scan costs well under a
millisecond; above it, an IVF index, since a scan of 300k rows costs ~3 ms of memory
bandwidth per query and an IVF search ~0.2-0.4 ms. Its ``nprobe`` (saved in the
file) is the smallest that reaches ``RECALL_TARGET`` recall@100 against exact
search on sample queries; the recall is recorded in the manifest. The server
maps flat indexes (``IO_FLAG_MMAP``) and reads IVF ones into memory: a mapped
IVF index searched 6x slower (2.6 ms against 0.4 ms at 300k rows).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from bookrec.artifact import ArtifactWriter
from bookrec.pooling import normalise

F32 = npt.NDArray[np.float32]

EXACT_LIMIT = 50_000
RECALL_TARGET = 0.95
TRAIN_SAMPLE = 100_000


def flat_index(vectors: F32) -> faiss.Index:
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def ann_index(vectors: F32, seed: int = 0) -> faiss.Index:
    """Flat when small (exact, and fast enough); IVF above ``EXACT_LIMIT`` rows."""
    n, d = vectors.shape
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if n <= EXACT_LIMIT:
        return flat_index(vectors)
    nlist = int(4 * math.sqrt(n))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    sample = vectors[rng.choice(n, size=min(n, TRAIN_SAMPLE), replace=False)]
    index.train(sample)
    index.add(vectors)
    index.nprobe = max(8, nlist // 16)  # until tune_nprobe measures better
    return index


def tune_nprobe(index: Any, vectors: F32, queries: F32, target: float = RECALL_TARGET) -> None:
    """The smallest nprobe (lists scanned per query) whose recall@100 reaches ``target``.

    Search time grows with nprobe; recall depends on how the vectors cluster, so
    it is measured on the model's own vectors rather than fixed."""
    if not isinstance(index, faiss.IndexIVF) or len(queries) == 0:
        return
    kth = _kth_scores(vectors, queries, 100)
    for nprobe in (8, 16, 32, 64, 128, 256, 512, index.nlist):
        index.nprobe = min(nprobe, index.nlist)
        if _recall(index, vectors, kth, queries, 100) >= target:
            return


def _kth_scores(vectors: F32, queries: F32, k: int) -> F32:
    """The k-th best exact score per query: the bar a true top-k result clears."""
    k = min(k, len(vectors))
    scores = queries @ vectors.T
    kth: F32 = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
    return kth


def _recall(index: Any, vectors: F32, kth: F32, queries: F32, k: int) -> float:
    """Share of returned rows that belong in the exact top-k; scored by value, so rows
    tied with the k-th best (duplicate vectors are common) count as correct."""
    q = np.ascontiguousarray(queries, dtype=np.float32)
    _, found = index.search(q, min(k, len(vectors)))
    valid = found >= 0
    scores = np.einsum("qd,qkd->qk", q, vectors[np.where(valid, found, 0)])
    good = valid & (scores >= kth[:, None] - 1e-5)
    return float(good.sum() / found.size)


def recall(index: Any, vectors: F32, queries: F32, k: int) -> float:
    """Share of the exact top-k (by inner product) the index returns, over ``queries``."""
    if len(queries) == 0:
        return 1.0
    return _recall(index, vectors, _kth_scores(vectors, queries, k), queries, k)


def _write(writer: ArtifactWriter, name: str, index: faiss.Index) -> None:
    path: Path = writer.path_for(name)
    faiss.write_index(index, str(path))
    writer.record_file(name)


def write_indexes(
    writer: ArtifactWriter, item_factors: F32, book_subject_vectors: F32, user_sample: F32
) -> dict[str, float]:
    """Write all three indexes; return each one's measured recall@100 (manifest params)."""
    unit = normalise(item_factors)
    every = max(1, len(unit) // 200)
    built = {
        "item_index": (ann_index(unit), unit, unit[::every][:200]),
        "subject_index": (
            ann_index(book_subject_vectors),
            book_subject_vectors,
            book_subject_vectors[::every][:200],
        ),
        "retrieval_index": (ann_index(item_factors), item_factors, user_sample),
    }
    report = {}
    for name, (index, vectors, queries) in built.items():
        tune_nprobe(index, vectors, queries)
        _write(writer, f"{name}.faiss", index)
        report[f"{name}_recall_at_100"] = round(recall(index, vectors, queries, 100), 4)
    return report
