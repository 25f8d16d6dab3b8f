"""A valid artifact of the current format at any size, in minutes, without training.

    .venv/bin/python -m bench.scale_artifact --books 1000000 --users 100000 --out DIR [--check]
        [--pipeline als|als+reranker|als+item_item|als+item_item+reranker]

The scale benchmark needs to know how serving time grows with the catalogue,
which depends on array sizes and index types, not on model quality. So the
factors are random but clustered (books and users of a cluster point the same
way, as ALS factors do), histories are drawn from the user's cluster with a
popularity skew, subjects follow clusters, and the LightGBM reranker is trained
with the trainer's parameters on synthetic features. The FAISS files come from
trainer.publish.indexes.write_indexes, so flat vs IVF is chosen exactly as in training.
``--pipeline`` picks what Recommend serves: ALS alone, with the reranker (the default),
with an item-item model (a synthetic one over the ``item_item_head`` most read books,
``item_item_neighbours`` a row, mostly within the book's cluster: the configuration
the trainer served on every real set so far), or with both.
The result passes ``Bundle.open`` and the server's warm-up (``--check``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bookrec.artifact import POOL_PREFIX, ArtifactWriter, new_model_version
from bookrec.confidence import confidence
from bookrec.pooling import normalise, pool, weight_shapes
from bookrec.rerank_features import FEATURES
from trainer.models.reranker import RerankerParams, train_booster
from trainer.publish.indexes import write_indexes

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]

MAX_SUBJECTS = 8  # book_subjects columns, as the trainer writes them
FAVOURITES = 5  # user_favourite_subjects columns
POOLING = "attention"
# The ALS settings the server's fold-in needs (params.als); those of the Makefile's RUN_GRID.
ALS_ALPHA, ALS_SCHEME, ALS_REGULARIZATION = 10.0, "log", 1.0
_NAMED_SUBJECTS = (
    "fiction", "romance", "mystery", "fantasy", "science-fiction", "historical-fiction",
    "thriller", "horror", "biography", "history", "poetry", "young-adult", "children",
    "classics", "humor", "philosophy", "religion", "science", "travel", "cooking",
)  # fmt: skip
PIPELINES = ("als", "als+reranker", "als+item_item", "als+item_item+reranker")
DEFAULT_PIPELINE = "als+reranker"
# The blend the synthetic item-item model is served with (params.item_item_blend and
# blend_candidates; the trainer chooses both per data set).
ITEM_ITEM_BLEND, BLEND_CANDIDATES = 0.5, 200
_SYLLABLES = (
    "ka", "lo", "mi", "ra", "the", "sun", "dar", "vel", "mor", "an", "is", "tor",
    "en", "sha", "gle", "win", "ter", "bro", "ok", "ley", "na", "fel", "quin", "ro",
)  # fmt: skip


@dataclass(frozen=True)
class ScaleSpec:
    books: int
    users: int = 100_000
    factors: int = 64
    subject_dim: int = 32
    subjects: int = 300
    clusters: int = 64
    mean_history: int = 20
    rerank_groups: int = 200
    seed: int = 0
    pipeline: str = DEFAULT_PIPELINE
    item_item_head: int = 6000
    item_item_neighbours: int = 200

    def __post_init__(self) -> None:
        if self.books < 100 or self.users < 10:
            raise ValueError("need at least 100 books and 10 users")
        if self.pipeline not in PIPELINES:
            raise ValueError(f"pipeline {self.pipeline!r}: choose one of {', '.join(PIPELINES)}")
        if self.subjects < self.clusters // 4 or self.subjects < FAVOURITES:
            raise ValueError("too few subjects for the clusters")


def _clustered(
    rng: np.random.Generator, centroids: F32, cluster: I64, noise: float, scale: F32 | None = None
) -> F32:
    out = centroids[cluster] + noise * rng.standard_normal(
        (len(cluster), centroids.shape[1]), dtype=np.float32
    )
    if scale is not None:
        out *= scale[:, None]
    return out.astype(np.float32)


def _zipf_choice(rng: np.random.Generator, n: int, size: int, s: float = 1.0) -> I64:
    p = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s
    out: I64 = rng.choice(n, size=size, p=p / p.sum()).astype(np.int64)
    return out


def _histories(
    rng: np.random.Generator,
    spec: ScaleSpec,
    book_cluster: I64,
    user_cluster: I64,
    in_als: npt.NDArray[np.bool_],
) -> tuple[I64, I32]:
    """CSR (indptr, indices) of the books each user rated: mostly their own cluster,
    skewed towards the head of each cluster; sorted and without duplicates."""
    lengths = np.minimum(1 + rng.geometric(1.0 / spec.mean_history, spec.users), 500)
    users = np.repeat(np.arange(spec.users, dtype=np.int64), lengths)
    cluster = user_cluster[users].copy()
    wander = rng.random(len(users)) < 0.2
    cluster[wander] = rng.integers(0, spec.clusters, int(wander.sum()))
    eligible = np.flatnonzero(in_als)
    order = eligible[np.argsort(book_cluster[eligible], kind="stable")]
    sizes = np.bincount(book_cluster[eligible], minlength=spec.clusters)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    empty = sizes[cluster] == 0
    cluster[empty] = int(np.argmax(sizes))
    # u**2 puts the first books of each cluster at the head: a popularity skew.
    offset = (rng.random(len(users)) ** 2 * sizes[cluster]).astype(np.int64)
    items = order[starts[cluster] + offset]
    keys = np.unique(users * spec.books + items)
    rows, cols = keys // spec.books, keys % spec.books
    indptr = np.zeros(spec.users + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=spec.users), out=indptr[1:])
    return indptr, cols.astype(np.int32)


def _book_subjects(rng: np.random.Generator, spec: ScaleSpec, book_cluster: I64) -> I32:
    """(books, 8) subject indices, first = the cluster's main subject, -1 padded, no repeats."""
    n = spec.books
    main = (book_cluster * 7919) % spec.subjects
    cand = _zipf_choice(rng, spec.subjects, n * MAX_SUBJECTS, 0.8).reshape(n, MAX_SUBJECTS)
    near = rng.random((n, MAX_SUBJECTS)) < 0.5  # half the extras from the cluster's neighbours
    cand = np.where(
        near, (main[:, None] + rng.integers(1, 4, (n, MAX_SUBJECTS))) % spec.subjects, cand
    )
    cand[:, 0] = main
    wanted = 1 + rng.binomial(MAX_SUBJECTS - 1, 0.35, n)
    cand[np.arange(MAX_SUBJECTS)[None, :] >= wanted[:, None]] = -1
    for j in range(1, MAX_SUBJECTS):
        dup = (cand[:, :j] == cand[:, j : j + 1]).any(axis=1)
        cand[dup, j] = -1
    # Compact each row (keep order, padding last).
    order = np.argsort(cand < 0, axis=1, kind="stable")
    out: I32 = np.take_along_axis(cand, order, axis=1).astype(np.int32)
    return out


def _subject_idf(book_subjects: I32, n_subjects: int) -> F32:
    """Same formula as trainer/publish/export.py."""
    df = np.bincount(book_subjects[book_subjects >= 0], minlength=n_subjects)
    out: F32 = np.log((1 + len(book_subjects)) / (1 + df)).astype(np.float32) + 1.0
    return out


def _favourites(rng: np.random.Generator, spec: ScaleSpec, user_cluster: I64, n_users: int) -> I32:
    main = (user_cluster * 7919) % spec.subjects
    steps = np.arange(FAVOURITES)[None, :]
    fav = (main[:, None] + steps) % spec.subjects
    count = rng.integers(1, FAVOURITES + 1, n_users)
    fav[steps >= count[:, None]] = -1
    return fav.astype(np.int32)


def _isbn13(numbers: I64) -> list[str]:
    """Valid ISBN-13s (978 prefix) for distinct 9-digit numbers."""
    body = 978_000_000_000 + numbers % 1_000_000_000
    digits = (body[:, None] // 10 ** np.arange(11, -1, -1)) % 10
    weights = np.tile([1, 3], 6)
    check = (10 - (digits * weights).sum(axis=1) % 10) % 10
    return [f"{b}{c}" for b, c in zip(body.tolist(), check.tolist(), strict=True)]


def _titles(rng: np.random.Generator, n: int) -> list[str]:
    vocab_size = 3000
    syl = np.array(_SYLLABLES)
    parts = rng.integers(0, len(syl), (vocab_size, 3))
    vocab = ["".join(syl[p]).capitalize() for p in parts]
    lengths = rng.integers(1, 5, n)
    words = _zipf_choice(rng, vocab_size, int(lengths.sum()), 0.9).tolist()
    out, pos = [], 0
    for length in lengths.tolist():
        out.append(" ".join(vocab[w] for w in words[pos : pos + length]))
        pos += length
    return out


def _reranker_model(rng: np.random.Generator, spec: ScaleSpec, candidates: int) -> str:
    """A lambdarank model with the trainer's parameters, on features shaped like the real ones."""
    import lightgbm as lgb

    params = RerankerParams(candidates=candidates, seed=spec.seed)
    groups, n = spec.rerank_groups, candidates
    rows = groups * n
    x = np.empty((rows, len(FEATURES)), dtype=np.float32)
    rank = np.tile(np.arange(n, dtype=np.float32), groups)
    columns: dict[str, Any] = {
        "als_score": 1.0 - rank / n + 0.1 * rng.standard_normal(rows),
        "als_rank": rank,
        "subject_cos": rng.uniform(-0.2, 1.0, rows),
        "favourite_overlap": rng.binomial(3, 0.3, rows),
        "book_log_count": rng.exponential(2.0, rows),
        "book_mean": rng.uniform(0, 10, rows),
        "book_std": rng.uniform(0, 3, rows),
        "user_log_count": np.repeat(rng.exponential(3.0, groups), n),
        "user_mean": np.repeat(rng.uniform(4, 9, groups), n),
        "user_std": np.repeat(rng.uniform(0, 3, groups), n),
        "same_author": rng.poisson(0.2, rows),
        "same_series": rng.poisson(0.05, rows),
        "next_in_series": rng.random(rows) < 0.01,
        "year_bucket": rng.integers(0, 14, rows),
        "prior": rng.uniform(0, 1, rows),
    }
    for j, name in enumerate(FEATURES):  # a new feature gets noise until it is named here
        x[:, j] = columns[name] if name in columns else rng.standard_normal(rows)
    signal = x[:, FEATURES.index("als_score")] + 0.5 * x[:, FEATURES.index("subject_cos")]
    signal += 0.3 * x[:, FEATURES.index("same_author")] + rng.standard_normal(rows) * 0.5
    labels = (signal > np.quantile(signal, 0.97)).astype(np.int32)
    data = lgb.Dataset(x, labels, group=[n] * groups, feature_name=list(FEATURES))
    booster = train_booster(data, params)
    return str(booster.model_to_string())


def _item_item(
    spec: ScaleSpec, count: I32, in_als: npt.NDArray[np.bool_], book_cluster: I64
) -> tuple[I64, I32, F32]:
    """A CSR (indptr, indices, weights) as the trainer exports item-item: rows of the
    ``item_item_head`` most read books with an ALS vector, each pointing to about
    ``item_item_neighbours`` others of the head (80% of them of its own cluster),
    ascending, weights > 0. Its own generator, so the other arrays stay as they are."""
    rng = np.random.default_rng(spec.seed + 1)
    n = spec.books
    eligible = np.flatnonzero(in_als)
    head = eligible[np.argsort(-count[eligible], kind="stable")[: spec.item_item_head]]
    m = min(spec.item_item_neighbours, len(head) - 1)
    indptr = np.zeros(n + 1, dtype=np.int64)
    if m <= 0:
        return indptr, np.zeros(0, np.int32), np.zeros(0, np.float32)
    by_cluster = head[np.argsort(book_cluster[head], kind="stable")]
    sizes = np.bincount(book_cluster[by_cluster], minlength=spec.clusters)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    own = np.repeat(book_cluster[head], m)
    near = by_cluster[starts[own] + (rng.random(len(own)) * sizes[own]).astype(np.int64)]
    anywhere = head[rng.integers(0, len(head), len(own))]
    cols = np.where(rng.random(len(own)) < 0.8, near, anywhere)
    rows = np.repeat(head, m)
    keys = np.unique(rows[rows != cols].astype(np.int64) * n + cols[rows != cols])
    np.cumsum(np.bincount(keys // n, minlength=n), out=indptr[1:])
    weights = rng.uniform(0.01, 1.0, len(keys)).astype(np.float32)
    return indptr, (keys % n).astype(np.int32), weights


def build(root: Path, spec: ScaleSpec) -> Path:
    """Write and publish one synthetic artifact under ``root``; return its directory."""
    rng = np.random.default_rng(spec.seed)
    started = time.perf_counter()
    f, n_books, n_users = spec.factors, spec.books, spec.users
    centroids = rng.standard_normal((spec.clusters, f), dtype=np.float32) / np.sqrt(f)
    book_cluster = _zipf_choice(rng, spec.clusters, n_books, 0.5)
    user_cluster = _zipf_choice(rng, spec.clusters, n_users, 0.5)
    in_als = rng.random(n_books) >= 0.03
    norms = rng.lognormal(0.0, 0.3, n_books).astype(np.float32)
    item_factors = _clustered(rng, centroids, book_cluster, 0.6 / np.sqrt(f), norms)
    item_factors[~in_als] = 0.0
    user_factors = _clustered(rng, centroids, user_cluster, 0.6 / np.sqrt(f))
    indptr, indices = _histories(rng, spec, book_cluster, user_cluster, in_als)

    count = (np.bincount(indices, minlength=n_books) + in_als).astype(np.int32)
    has_mean = in_als & (rng.random(n_books) < 0.7)
    mean = np.where(has_mean, rng.uniform(4.0, 9.5, n_books), 0.0).astype(np.float32)
    std = np.where(has_mean, rng.uniform(0.3, 2.5, n_books), 0.0).astype(np.float32)
    bayes01 = (np.where(has_mean, mean, 7.0) - 1.0) / 9.0
    reach = np.log1p(count) / np.log1p(max(int(count.max()), 1))
    popularity = (0.5 * bayes01 + 0.5 * reach).astype(np.float32)
    year = np.where(rng.random(n_books) < 0.05, 0, rng.integers(1850, 2025, n_books))
    in_series = rng.random(n_books) < 0.08
    series_id = rng.integers(0, max(n_books // 40, 1), n_books)
    series_volume = np.where(in_series, rng.integers(1, 8, n_books), 0).astype(np.int16)

    book_subjects = _book_subjects(rng, spec, book_cluster)
    subject_vectors = normalise(
        rng.standard_normal((spec.subjects, spec.subject_dim), dtype=np.float32)
    )
    weights = {
        name: (0.2 * rng.standard_normal(shape)).astype(np.float32)
        for name, shape in weight_shapes(POOLING, spec.subjects, spec.subject_dim).items()
    }
    book_subject_vectors = normalise(pool(POOLING, subject_vectors, weights, book_subjects))

    history_len = np.diff(indptr).astype(np.float32)
    user_stats = np.stack(
        [history_len, rng.uniform(4.0, 9.0, n_users), rng.uniform(0.0, 2.5, n_users)], axis=1
    ).astype(np.float32)
    favourites = _favourites(rng, spec, user_cluster, n_users)

    n_authors = max(n_books // 6, 1)
    author_of = _zipf_choice(rng, n_authors, n_books, 0.7)
    author_of[rng.random(n_books) < 0.02] = -1
    slugs = [*_NAMED_SUBJECTS, *(f"topic-{j}" for j in range(len(_NAMED_SUBJECTS), spec.subjects))]
    slugs = slugs[: spec.subjects]
    book_ids = [f"OL{10_000_000 + i}W" for i in range(n_books)]
    user_ids = [str(100_000 + i) for i in range(n_users)]
    isbns = _isbn13(np.arange(n_books, dtype=np.int64) * 997 + 13)  # distinct below 1M books

    identity = json.dumps(asdict(spec), sort_keys=True)
    version = new_model_version(f"synthetic|{identity}")
    writer = ArtifactWriter(root, version)
    try:
        writer.save_array("item_factors", item_factors)
        writer.save_array("item_in_als", in_als)
        writer.save_array("user_factors", user_factors)
        writer.save_array("user_items_indptr", indptr)
        writer.save_array("user_items_indices", indices)
        # 60% implicit reads (rating 0), the rest explicit 1..10, weighed as ALS did.
        ratings = np.where(rng.random(len(indices)) < 0.6, 0, rng.integers(1, 11, len(indices)))
        writer.save_array(
            "user_items_confidence", confidence(ratings, ALS_ALPHA, ALS_SCHEME).astype(np.float32)
        )
        writer.save_array("popularity", popularity)
        writer.save_array("rating_count", count)
        writer.save_array("mean_rating", mean)
        writer.save_array("year", year.astype(np.int16))
        writer.save_array("series_volume", series_volume)
        writer.save_array("book_subjects", book_subjects)
        writer.save_array("subject_idf", _subject_idf(book_subjects, spec.subjects))
        writer.save_array("subject_vectors", subject_vectors)
        for name, w in sorted(weights.items()):
            writer.save_array(f"{POOL_PREFIX}{name}", w)
        writer.save_array("book_subject_vectors", book_subject_vectors)
        writer.save_array("book_rating_std", std)
        writer.save_array("user_stats", user_stats)
        writer.save_array("user_favourite_subjects", favourites)
        writer.save_strings("book_ids", book_ids)
        writer.save_strings("titles", _titles(rng, n_books))
        writer.save_strings(
            "authors",
            ["Unknown Author" if a < 0 else f"Author {a}" for a in author_of.tolist()],
        )
        writer.save_strings(
            "series",
            [
                f"Saga {s}" if on else ""
                for s, on in zip(series_id.tolist(), in_series.tolist(), strict=True)
            ],
        )
        writer.save_strings("isbns", isbns)
        writer.save_strings("user_ids", user_ids)
        writer.save_strings("subject_ids", slugs)
        writer.save_strings("subject_names", [s.replace("-", " ").title() for s in slugs])
        # Exact recall costs queries x books floats: fewer sample users for big catalogues.
        n_sample = int(min(200, max(20, 50_000_000 // n_books)))
        sample = user_factors[:: max(1, n_users // n_sample)][:n_sample]
        index_report = write_indexes(writer, item_factors, book_subject_vectors, sample)
        candidates = RerankerParams().candidates
        served: dict[str, Any] = {}
        if spec.pipeline.endswith("+reranker"):
            writer.save_bytes("reranker.txt", _reranker_model(rng, spec, candidates).encode())
            writer.save_bytes("reranker_features.json", json.dumps(list(FEATURES)).encode())
            served["rerank_candidates"] = candidates
        if "+item_item" in spec.pipeline:
            ii_indptr, ii_indices, ii_weights = _item_item(spec, count, in_als, book_cluster)
            writer.save_array("item_item_indptr", ii_indptr)
            writer.save_array("item_item_indices", ii_indices)
            writer.save_array("item_item_weights", ii_weights)
            served |= {"item_item_blend": ITEM_ITEM_BLEND, "blend_candidates": BLEND_CANDIDATES}
        metrics = {
            "served": spec.pipeline,
            "synthetic": True,
            "note": "synthetic scale artifact (bench/scale_artifact.py): no quality figures",
        }
        writer.save_bytes("evaluation.json", json.dumps(metrics, indent=1).encode())
        top = np.argsort(-popularity, kind="stable")[:5]
        warm_users = np.flatnonzero(np.diff(indptr) > 0)[:5]
        warmup = {
            "user_ids": [user_ids[int(u)] for u in warm_users],
            "book_ids": [book_ids[int(i)] for i in top],
            "subject_ids": slugs[:5],
        }
        writer.save_bytes("warmup.json", json.dumps(warmup, indent=1).encode())
        params = {
            "synthetic": asdict(spec),
            "als": {
                "factors": f,
                "alpha": ALS_ALPHA,
                "scheme": ALS_SCHEME,
                "regularization": ALS_REGULARIZATION,
            },
            "prior_strength": 10.0,
            **served,
            "subject_pooling": POOLING,
            "subject_pool_weights": sorted(weights),
            "cold_start_popularity_weight": 0.3,
            "build_seconds": round(time.perf_counter() - started, 1),
            **index_report,
        }
        counts = {
            "books": n_books,
            "users": n_users,
            "subjects": spec.subjects,
            "train": len(indices),
        }
        split_id = hashlib.sha256(identity.encode()).hexdigest()[:16]
        return writer.publish(split_id, params, counts, metrics)
    except BaseException:
        writer.discard()
        raise


def check(path: Path) -> None:
    """Open the artifact as the server does and run its warm-up queries."""
    from server.engine.bundle import Bundle
    from server.engine.warmup import run_warmup

    run_warmup(Bundle.open(path))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--books", type=int, required=True)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--factors", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="artifact root to publish into")
    p.add_argument("--check", action="store_true", help="open it like the server and warm up")
    p.add_argument(
        "--pipeline",
        choices=PIPELINES,
        default=DEFAULT_PIPELINE,
        help=f"what Recommend serves (default {DEFAULT_PIPELINE})",
    )
    args = p.parse_args(argv)
    spec = ScaleSpec(
        books=args.books,
        users=args.users,
        factors=args.factors,
        seed=args.seed,
        pipeline=args.pipeline,
    )
    start = time.perf_counter()
    path = build(args.out, spec)
    built = time.perf_counter() - start
    if args.check:
        check(path)
    print(
        json.dumps({"artifact": str(path), "build_seconds": round(built, 1), "checked": args.check})
    )


if __name__ == "__main__":
    main()
