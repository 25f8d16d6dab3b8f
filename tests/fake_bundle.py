"""Small in-memory bundles with planted structure, for engine tests without files.

Three clusters of 20 books. Cluster c's books share ALS direction c and subjects
``c-a`` / ``c-b``; users 0..9 like cluster ``user % 3`` and rated three of its
books. Books 57..59 have no ALS vector (too few ratings). ``fake_item_item`` plants
an item-item model to pass as ``item_item``; ``params`` overrides manifest params.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import scipy.sparse as sp

from bookrec.artifact import (
    FORMAT_VERSION,
    ITEM_ITEM_ARRAYS,
    FileEntry,
    Manifest,
    StringColumn,
    encode_strings,
)
from bookrec.pooling import normalise
from server.engine.bundle import Bundle

CLUSTERS, PER_CLUSTER, USERS, DIM = 3, 20, 10, 8
NO_ALS = (57, 58, 59)


def cluster_of(item: int) -> int:
    return item // PER_CLUSTER


def fake_bundle(
    version: str = "20260101T000000Z-00000000",
    history_order: int = 1,
    subject_columns: tuple[Sequence[str], Sequence[str]] | None = None,
    item_item: sp.csr_matrix | tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    params: Mapping[str, Any] | None = None,
    extra: Mapping[str, np.ndarray] | None = None,
) -> Bundle:
    """``subject_columns``: (ids, names) of the 2 * CLUSTERS subjects, for a vocabulary as the
    trainer writes it; by default ids ``c-a``/``c-b``, names ``Subject c-a``.
    ``item_item``: the n x n CSR saved as item_item_{indptr,indices,weights} (listed in
    the manifest, so ``artifact.has_item_item`` sees it), or those three arrays as they
    are (a broken one). ``params``: manifest params over the defaults (``als`` merged
    key by key). ``extra``: optional arrays (``served_popularity``), listed in the manifest."""
    rng = np.random.default_rng(7)
    n = CLUSTERS * PER_CLUSTER
    centers = np.eye(DIM, dtype=np.float32)[:CLUSTERS] * 2.0
    noise = rng.normal(0, 0.2, (n, DIM)).astype(np.float32)
    items = np.repeat(centers, PER_CLUSTER, axis=0) + noise
    in_als = np.ones(n, dtype=bool)
    in_als[list(NO_ALS)] = False
    items[~in_als] = 0.0
    users = centers[np.arange(USERS) % CLUSTERS].astype(np.float32)
    rated = [
        np.array([c * PER_CLUSTER + j for j in (0, 1, 2)][::history_order], np.int32)
        for c in np.arange(USERS) % CLUSTERS
    ]
    indptr = np.zeros(USERS + 1, np.int64)
    np.cumsum([len(r) for r in rated], out=indptr[1:])
    subjects = np.array([[2 * cluster_of(i), 2 * cluster_of(i) + 1] for i in range(n)], np.int32)
    subject_vectors = normalise(rng.normal(size=(2 * CLUSTERS, 4)).astype(np.float32))
    book_vectors = normalise(subject_vectors[subjects].mean(axis=1).astype(np.float32))
    popularity = np.linspace(1.0, 0.0, n, dtype=np.float32)
    arrays: dict[str, Any] = {
        "item_factors": items,
        "item_in_als": in_als,
        "user_factors": users,
        "user_items_indptr": indptr,
        "user_items_indices": np.concatenate(rated),
        "user_items_confidence": np.full(int(indptr[-1]), 11.0, np.float32),
        "popularity": popularity,
        "rating_count": np.where(in_als, 10, 1).astype(np.int32),
        "mean_rating": np.full(n, 7.0, np.float32),
        "year": np.full(n, 2000, np.int16),
        "series_volume": np.zeros(n, np.int16),
        "book_subjects": subjects,
        "subject_idf": np.ones(2 * CLUSTERS, np.float32),
        "subject_vectors": subject_vectors,
        "subject_pool_logits": np.zeros(2 * CLUSTERS, np.float32),
        "book_subject_vectors": book_vectors,
    }
    files: dict[str, FileEntry] = {}
    if item_item is not None:
        parts = (
            item_item
            if isinstance(item_item, tuple)
            else (item_item.indptr, item_item.indices, item_item.data)
        )
        for (name, (dtype, _)), part in zip(ITEM_ITEM_ARRAYS.items(), parts, strict=True):
            arrays[name] = np.asarray(part, dtype)
            files[f"{name}.npy"] = FileEntry("", 0, arrays[name].shape, dtype)
    for name, array in (extra or {}).items():
        arrays[name] = array
        files[f"{name}.npy"] = FileEntry("", 0, array.shape, str(array.dtype))
    manifest_params: dict[str, Any] = {
        "als": {"alpha": 10.0, "scheme": "log", "regularization": 0.1},
        "subject_pooling": "scalar",
        "subject_pool_weights": ["logits"],
        "cold_start_popularity_weight": 0.2,
    }
    for key, value in (params or {}).items():
        manifest_params[key] = {**manifest_params["als"], **value} if key == "als" else value
    names = [f"{c}-{part}" for c in range(CLUSTERS) for part in ("a", "b")]
    ids, display = (
        (names, [f"Subject {s}" for s in names]) if subject_columns is None else subject_columns
    )
    columns = {
        "book_ids": [f"b{i}" for i in range(n)],
        "titles": [f"Title {i}" for i in range(n)],
        "authors": [f"Author {i % 7}" for i in range(n)],
        "series": [""] * n,
        "isbns": [""] * n,
        "user_ids": [f"u{u}" for u in range(USERS)],
        "subject_ids": list(ids),
        "subject_names": list(display),
    }
    indexes = {
        "item_index": normalise(items),
        "subject_index": book_vectors,
        "retrieval_index": items,
    }

    def index(name: str) -> Any:
        flat = faiss.IndexFlatIP(DIM if name != "subject_index" else 4)
        flat.add(np.ascontiguousarray(indexes[name]))
        return flat

    manifest = Manifest(
        format_version=FORMAT_VERSION,
        model_version=version,
        created_at="2026-01-01T00:00:00+00:00",
        split_id="fake",
        files=files,
        params=manifest_params,
    )
    return Bundle.assemble(
        Path("/nonexistent") / version,
        manifest,
        arrays.__getitem__,
        lambda name: StringColumn(*encode_strings(columns[name])),
        index,
        None,
    )


def fake_item_item(seed: int = 3, neighbours: int = 6, cross: int = 2) -> sp.csr_matrix:
    """An item-item CSR as the trainer exports it (rows ascending, weights > 0): each book
    with an ALS vector points to ``neighbours`` books of its own cluster and ``cross`` of
    other clusters, with random weights (no ties for either side to break) and
    never to a book without an ALS vector (the trainer fits only books with readers)."""
    rng = np.random.default_rng(seed)
    n = CLUSTERS * PER_CLUSTER
    in_als = [i for i in range(n) if i not in NO_ALS]
    rows, cols = [], []
    for r in in_als:
        same = [i for i in in_als if cluster_of(i) == cluster_of(r) and i != r]
        other = [i for i in in_als if cluster_of(i) != cluster_of(r)]
        picked = [*rng.choice(same, neighbours, replace=False), *rng.choice(other, cross, False)]
        rows += [r] * len(picked)
        cols += [int(c) for c in picked]
    weights = rng.uniform(0.05, 1.0, len(rows)).astype(np.float32)
    out = sp.csr_matrix((weights, (rows, cols)), shape=(n, n), dtype=np.float32)
    out.sort_indices()
    return out
