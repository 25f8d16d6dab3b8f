"""Write a trained model as an artifact directory (format: bookrec.artifact)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from bookrec.artifact import ArtifactWriter, new_model_version
from trainer.als import ALSModel
from trainer.catalog import MAX_SUBJECTS_PER_BOOK, Catalog
from trainer.interactions import Interactions
from trainer.popularity import Popularity


def _normalized(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: npt.NDArray[np.float32] = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    return out


def _padded(rows: list[list[int]], width: int) -> npt.NDArray[np.int32]:
    out = np.full((len(rows), width), -1, dtype=np.int32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def _subject_idf(book_subjects: npt.NDArray[np.int32], n_subjects: int) -> npt.NDArray[np.float32]:
    df = np.bincount(book_subjects[book_subjects >= 0], minlength=n_subjects)
    return np.log((1 + len(book_subjects)) / (1 + df)).astype(np.float32) + 1.0


def _warmup(
    catalog: Catalog, inter: Interactions, pop: Popularity, n: int = 5
) -> dict[str, list[str]]:
    """Queries the server runs on a new bundle before it may serve."""
    top_items = np.argsort(-pop.prior, kind="stable")[:n]
    users = np.unique(inter.users)[:n]
    return {
        "user_ids": [inter.user_ids[int(u)] for u in users],
        "book_ids": [catalog.works[int(i)].work_id for i in top_items],
        "subject_ids": list(catalog.vocab.slugs[:n]),
    }


def write_artifact(
    root: Path,
    catalog: Catalog,
    inter: Interactions,
    user_items: sp.csr_matrix,
    als: ALSModel,
    pop: Popularity,
    split_id: str,
    params: dict[str, Any],
    counts: dict[str, int],
) -> Path:
    n_books = len(catalog.works)
    version = new_model_version(f"{split_id}|{json.dumps(params, sort_keys=True)}")
    writer = ArtifactWriter(root, version)
    try:
        in_als = pop.count > 0
        item_factors = np.where(in_als[:, None], als.item_factors, 0.0).astype(np.float32)
        writer.save_array("item_factors", item_factors)
        writer.save_array("item_in_als", in_als)
        writer.save_array("user_factors", als.user_factors)
        rated = (user_items > 0).astype(np.int8).tocsr()
        rated.sort_indices()
        writer.save_array("user_items_indptr", rated.indptr.astype(np.int64))
        writer.save_array("user_items_indices", rated.indices.astype(np.int32))
        writer.save_array("popularity", pop.prior)
        writer.save_array("rating_count", pop.count)
        writer.save_array("mean_rating", pop.mean_rating)
        writer.save_array("year", np.array([w.year for w in catalog.works], dtype=np.int16))
        writer.save_array(
            "series_volume", np.array([w.series_volume for w in catalog.works], dtype=np.int16)
        )
        subjects = _padded(catalog.book_subjects, MAX_SUBJECTS_PER_BOOK)
        writer.save_array("book_subjects", subjects)
        writer.save_array("subject_idf", _subject_idf(subjects, len(catalog.vocab.slugs)))
        writer.save_strings("book_ids", [w.work_id for w in catalog.works])
        writer.save_strings("titles", [w.title for w in catalog.works])
        writer.save_strings("authors", [w.author for w in catalog.works])
        writer.save_strings("series", [w.series for w in catalog.works])
        writer.save_strings("isbns", [" ".join(w.isbns) for w in catalog.works])
        writer.save_strings("user_ids", inter.user_ids)
        writer.save_strings("subject_ids", list(catalog.vocab.slugs))
        writer.save_strings("subject_names", list(catalog.vocab.names))
        # Exact inner product over unit vectors = cosine; flat indexes can be memory-mapped.
        index = faiss.IndexFlatIP(item_factors.shape[1])
        index.add(_normalized(item_factors))
        faiss.write_index(index, str(writer.path_for("item_index.faiss")))
        writer.record_file("item_index.faiss")
        warmup = _warmup(catalog, inter, pop)
        writer.save_bytes("warmup.json", json.dumps(warmup, indent=1).encode())
        return writer.publish(split_id, params, {**counts, "books": n_books}, metrics={})
    except BaseException:
        writer.discard()
        raise


def params_of(obj: Any) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(obj).items()}
