"""Write a trained model as an artifact directory (format: bookrec.artifact)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from bookrec.artifact import POOL_PREFIX, ArtifactWriter, new_model_version
from bookrec.confidence import confidence
from bookrec.rerank_features import FEATURES, book_recency
from trainer.evaluation.plots import ndcg_curves, study_plot
from trainer.modeling import Models
from trainer.models.als import is_positive
from trainer.models.cold import artifact_params, served_popularity
from trainer.models.refit import Published
from trainer.publish.indexes import write_indexes
from trainer.snapshot import Snapshot


def _subject_idf(book_subjects: npt.NDArray[np.int32], n_subjects: int) -> npt.NDArray[np.float32]:
    df = np.bincount(book_subjects[book_subjects >= 0], minlength=n_subjects)
    return np.log((1 + len(book_subjects)) / (1 + df)).astype(np.float32) + 1.0


def write_artifact(
    root: Path,
    snap: Snapshot,
    published: Published,
    models: Models,
    params: dict[str, Any],
    counts: dict[str, int],
    visible: bool = True,
) -> Path:
    """The refit models (``published``): every user with an interaction gets a row.

    ``visible=False`` publishes it as ``.rejected-<version>`` (quality gate)."""
    version = new_model_version(f"{snap.split_id}|{json.dumps(params, sort_keys=True)}")
    writer = ArtifactWriter(root, version)
    als, feats = published.als, published.feats
    try:
        served_users = np.unique(snap.users)
        in_als = feats.book.count > 0
        item_factors = np.where(in_als[:, None], als.item_factors, 0.0).astype(np.float32)
        writer.save_array("item_factors", item_factors)
        writer.save_array("item_in_als", in_als)
        user_factors = als.user_factors[served_users]
        writer.save_array("user_factors", user_factors)
        # Never recommend what a user rated; the confidences ALS was fitted with let
        # the server fold new ratings into a user vector.
        row_of = np.full(snap.n_users, -1, dtype=np.int64)
        row_of[served_users] = np.arange(len(served_users))
        keep = row_of[snap.users] >= 0
        p = models.als_params
        fitted = is_positive(snap.ratings, p.min_rating)
        conf = np.where(fitted, confidence(snap.ratings, p.alpha, p.scheme, snap.weights), 0.0)
        conf = conf[keep]
        rated = sp.csr_matrix(
            (conf.astype(np.float32), (row_of[snap.users[keep]], snap.items[keep])),
            shape=(len(served_users), snap.n_items),
        )
        rated.sum_duplicates()
        rated.sort_indices()
        writer.save_array("user_items_indptr", rated.indptr.astype(np.int64))
        writer.save_array("user_items_indices", rated.indices.astype(np.int32))
        writer.save_array("user_items_confidence", rated.data.astype(np.float32))
        writer.save_array("popularity", feats.popularity.prior)
        # The popularity the journeys chose, for ColdStart and new users (issue 22).
        strength = float(params.get("prior_strength", 10.0))
        form = models.new_users.popularity_form
        writer.save_array("served_popularity", served_popularity(snap, form, strength))
        writer.save_array("rating_count", feats.book.count)
        writer.save_array("mean_rating", feats.book.mean)
        writer.save_array("year", snap.years.astype(np.int16))
        writer.save_array("series_volume", snap.series_volume.astype(np.int16))
        writer.save_array("book_subjects", feats.book_subjects)
        writer.save_array("subject_idf", _subject_idf(feats.book_subjects, len(feats.vocab.slugs)))
        writer.save_strings("book_ids", snap.work_ids)
        writer.save_strings("titles", snap.titles)
        writer.save_strings("authors", snap.authors)
        writer.save_strings("series", snap.series)
        writer.save_strings("isbns", [" ".join(i) for i in snap.isbns])
        writer.save_strings("user_ids", [snap.user_ids[u] for u in served_users.tolist()])
        writer.save_strings("subject_ids", list(feats.vocab.slugs))
        writer.save_strings("subject_names", list(feats.vocab.names))
        writer.save_array("subject_vectors", models.subject.subject_vectors)
        for name, weights in sorted(models.subject.weights.items()):
            writer.save_array(f"{POOL_PREFIX}{name}", weights.astype(np.float32))
        writer.save_array("book_subject_vectors", models.book_subject_vectors)
        sample = user_factors[:: max(1, len(user_factors) // 200)][:200]
        index_report = write_indexes(
            writer, item_factors, models.book_subject_vectors, sample.astype(np.float32)
        )
        writer.save_array("book_rating_std", feats.book.std)
        stats = np.stack([feats.user.count, feats.user.mean, feats.user.std], axis=1)
        writer.save_array("user_stats", stats[served_users].astype(np.float32))
        writer.save_array("user_favourite_subjects", feats.favourite_subjects[served_users])
        if published.item_item is not None:
            m = published.item_item.matrix
            writer.save_array("item_item_indptr", m.indptr.astype(np.int64))
            writer.save_array("item_item_indices", m.indices.astype(np.int32))
            writer.save_array("item_item_weights", m.data.astype(np.float32))
        rerank_params: dict[str, Any] = {}
        if models.use_reranker and models.booster is not None:
            writer.save_bytes("reranker.txt", models.booster.model_to_string().encode())
            writer.save_bytes("reranker_features.json", json.dumps(list(FEATURES)).encode())
            # Recency of every interaction (the refit's rows), as the split's fit saw it of
            # the training part (trainer/models/reranker.py item_table).
            writer.save_array(
                "book_recency", book_recency(snap.items, snap.timestamps, snap.n_items)
            )
            # The depth the study chose (metrics.reranker.params): what the server reranks.
            rerank_params["rerank_candidates"] = int(
                models.metrics["reranker"]["params"]["candidates"]
            )
        writer.save_bytes("evaluation.json", json.dumps(models.metrics, indent=1).encode())
        ndcg_curves(models.curves, writer.path_for("ndcg_at_k.png"), f"split {snap.split_id}")
        writer.record_file("ndcg_at_k.png")
        study_plot(models.studies, writer.path_for("study.png"))
        writer.record_file("study.png")
        top = np.argsort(-feats.popularity.prior, kind="stable")[:5]
        warmup = {
            "user_ids": [snap.user_ids[int(u)] for u in served_users[:5]],
            "book_ids": [snap.work_ids[int(i)] for i in top],
            "subject_ids": list(feats.vocab.slugs[:5]),
        }
        writer.save_bytes("warmup.json", json.dumps(warmup, indent=1).encode())
        params = {
            **params,
            "subject_pooling": models.subject.pooling,
            "subject_pool_weights": sorted(models.subject.weights),
            "cold_start_popularity_weight": models.popularity_weight,
            # The ALS share of the blend with item-item (bookrec/blend.py), and the top n
            # taken from each source; absent arrays mean ALS alone.
            "item_item_blend": models.blend_weight,
            "blend_candidates": models.blend_candidates,
            # Users the model does not know but who rated books: fold-in (else cold start).
            "new_user_foldin": models.history_foldin,
            **artifact_params(models.new_users),
            **index_report,
            **rerank_params,
        }
        return writer.publish(
            snap.split_id,
            params,
            {**counts, **feats.subject_report, "books": snap.n_items, "users": len(served_users)},
            models.metrics,
            visible=visible,
        )
    except BaseException:
        writer.discard()
        raise


def params_of(obj: Any) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(obj).items()}
