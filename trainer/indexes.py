"""The FAISS indexes of an artifact, built in one place so every writer agrees.

- ``item_index.faiss``: inner product over L2-normalised item factors (cosine),
  for Similar in ALS mode.
- ``subject_index.faiss``: inner product over book subject vectors, for Similar
  in SUBJECT mode.
- ``retrieval_index.faiss``: inner product over raw item factors, for Recommend's
  candidates.

Each is exact (flat) up to ``EXACT_LIMIT`` books, where a scan costs well under a
millisecond; above it, an IVF index whose ``nprobe`` is saved in the file, since
a scan of 300k+ rows costs several milliseconds of memory bandwidth per query.
The recall of each against exact search is measured on sample queries and
recorded in the manifest. Flat and IVF-flat indexes both read with
``faiss.IO_FLAG_MMAP``: the server maps them instead of copying them.
"""

from __future__ import annotations

import math
from pathlib import Path

import faiss
import numpy as np
import numpy.typing as npt

from bookrec.artifact import ArtifactWriter
from bookrec.pooling import normalise

F32 = npt.NDArray[np.float32]

EXACT_LIMIT = 50_000
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
    index.nprobe = max(8, nlist // 16)
    return index


def recall(index: faiss.Index, vectors: F32, queries: F32, k: int) -> float:
    """Share of the exact top-k (by inner product) the index returns, over ``queries``."""
    if len(queries) == 0:
        return 1.0
    k = min(k, len(vectors))
    exact = np.argpartition(-(queries @ vectors.T), k - 1, axis=1)[:, :k]
    _, found = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    hits = sum(len(np.intersect1d(e, f)) for e, f in zip(exact, found, strict=True))
    return hits / exact.size


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
        _write(writer, f"{name}.faiss", index)
        report[f"{name}_recall_at_100"] = round(recall(index, vectors, queries, 100), 4)
    return report
