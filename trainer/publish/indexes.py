"""The FAISS indexes of an artifact, built in one place so every writer agrees.

- ``item_index.faiss``: inner product over L2-normalised item factors (cosine),
  for Similar in ALS mode.
- ``subject_index.faiss``: inner product over book subject vectors, for Similar
  in SUBJECT mode.
- ``retrieval_index.faiss``: inner product over raw item factors, for Recommend's
  candidates.

Each is exact (flat) up to ``EXACT_LIMIT`` books, where a scan costs well under a
millisecond; above it a scan of 300k rows costs 3-7 ms of memory bandwidth per
query, so ``ann_index`` picks an approximate index by measured recall@100 on
sample queries (``RECALL_TARGET``) and records the recall in the manifest:
IVF-flat when it gets there (its ``nprobe`` saved in the file), HNSW over 8-bit
quantised vectors when it does not. Servers map flat and IVF indexes
(``IO_FLAG_MMAP``) and hold HNSW ones in memory.
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
MAX_NPROBE = 256
QUERIES = 200  # sample queries per index for the recall measurement
TRAIN_SAMPLE = 100_000


def flat_index(vectors: F32) -> faiss.Index:
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def ann_index(vectors: F32, queries: F32, seed: int = 0) -> tuple[faiss.Index, float]:
    """The cheapest index that reaches ``RECALL_TARGET`` recall@100 on ``queries``, and
    its measured recall.

    Flat up to ``EXACT_LIMIT`` rows. Above: IVF-flat (mapped by the server, cheap to
    build) with the smallest nprobe up to ``MAX_NPROBE`` that reaches the target;
    when none does (ALS factors searched by user vectors, a maximum-inner-product
    search, cluster badly: 0.79 recall at 512 of 1,743 lists on the bookcrossing
    demo), HNSW over 8-bit scalar-quantised vectors (0.96 at efSearch 256, 0.7 ms;
    held in memory, a quarter of the float size). Servers rescore candidates
    exactly, so quantisation only decides which rows come back."""
    n, d = vectors.shape
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if n <= EXACT_LIMIT:
        return flat_index(vectors), 1.0
    kth = _kth_scores(vectors, queries, 100)
    rng = np.random.default_rng(seed)
    sample = vectors[rng.choice(n, size=min(n, TRAIN_SAMPLE), replace=False)]
    nlist = int(4 * math.sqrt(n))
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.train(sample)
    ivf.add(vectors)
    recall = 0.0
    for nprobe in (8, 16, 32, 64, 128, 256, 512):
        if nprobe > MAX_NPROBE:
            break
        ivf.nprobe = nprobe
        recall = _recall(ivf, vectors, kth, queries, 100)
        if recall >= RECALL_TARGET:
            return ivf, recall
    hnsw = faiss.IndexHNSWSQ(
        d,
        faiss.ScalarQuantizer.QT_8bit,  # type: ignore[arg-type]  # the stubs want an object
        32,
        faiss.METRIC_INNER_PRODUCT,
    )
    hnsw.train(sample)
    hnsw.add(vectors)
    for ef in (64, 128, 256, 512, 1024):
        hnsw.hnsw.efSearch = ef
        recall = _recall(hnsw, vectors, kth, queries, 100)
        if recall >= RECALL_TARGET:
            break
    return hnsw, recall


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
    every = max(1, len(unit) // QUERIES)
    built = {
        "item_index": (unit, unit[::every][:QUERIES]),
        "subject_index": (book_subject_vectors, book_subject_vectors[::every][:QUERIES]),
        "retrieval_index": (item_factors, user_sample),
    }
    report = {}
    for name, (vectors, queries) in built.items():
        index, recall = ann_index(vectors, queries)
        _write(writer, f"{name}.faiss", index)
        report[f"{name}_recall_at_100"] = round(recall, 4)
    return report
