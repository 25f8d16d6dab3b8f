"""The batched engine (server/engine/batch_*.py) answers every call exactly as the
call-at-a-time functions do: the same books in the same order, the same scores to the
bit, the same reasons, sources, ``has_more`` and errors, over many users, k, pages,
filters, new ratings, unknown users and batch sizes; on flat, IVF and HNSW indexes,
with and without item-item and the reranker. Built on bench/scale_artifact.py's
synthetic artifact (a LightGBM reranker trained on its features)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, TypeVar

import faiss
import numpy as np
import pytest

from bench.scale_artifact import ScaleSpec, build
from server.engine.batch_cold_start import ColdStartCall, cold_start_many
from server.engine.batch_recommend import RecommendCall, recommend_many
from server.engine.batch_search import search_many
from server.engine.batch_similar import SimilarCall, similar_many
from server.engine.bundle import Bundle
from server.engine.cold_start import cold_start
from server.engine.models import ItemItem
from server.engine.recommend import recommend
from server.engine.similar import similar
from server.engine.types import Filters, RankedList, SimilarMode, Source

T = TypeVar("T")
BATCH_SIZES = (1, 2, 3, 5, 8, 13, 32)


@pytest.fixture(scope="module")
def flat(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    spec = ScaleSpec(books=3000, users=600, factors=16, subject_dim=8, subjects=60, clusters=12)
    return Bundle.open(build(tmp_path_factory.mktemp("batch-engine"), spec))


def _item_item(bundle: Bundle, seed: int = 5) -> ItemItem:
    """A sparse item-item model over the head of the catalogue, as the trainer's format
    holds it (rows ascending, weights > 0)."""
    rng = np.random.default_rng(seed)
    n = bundle.n_books
    head = np.flatnonzero(np.asarray(bundle.item_in_als))[:800]
    rows, cols = [], []
    for r in head.tolist():
        picked = np.unique(rng.choice(head, 12, replace=False))
        picked = picked[picked != r]
        rows += [r] * len(picked)
        cols += picked.tolist()
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(np.array(rows), minlength=n), out=indptr[1:])
    weights = rng.uniform(0.01, 1.0, len(cols)).astype(np.float32)
    return ItemItem(indptr, np.array(cols, np.int32), weights, 0.6, 60)


def _ivf(vectors: np.ndarray, nlist: int = 24, nprobe: int = 5) -> Any:
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(x.shape[1]), x.shape[1], nlist, 1)
    index.train(x)
    index.add(x)
    index.nprobe = nprobe
    return index


def _hnsw(vectors: np.ndarray) -> Any:
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexHNSWFlat(x.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efSearch = 24
    index.add(x)
    return index


def _variants(flat: Bundle) -> dict[str, Bundle]:
    item_item = _item_item(flat)
    ivf = dataclasses.replace(
        flat,
        retrieval_index=_ivf(np.asarray(flat.item_factors)),
        item_index=_ivf(flat.unit(np.arange(flat.n_books))),
        subject_index=_ivf(np.asarray(flat.subjects.book_vectors)),
    )
    hnsw = dataclasses.replace(
        flat,
        retrieval_index=_hnsw(np.asarray(flat.item_factors)),
        item_index=_hnsw(flat.unit(np.arange(flat.n_books))),
    )
    return {
        "als+reranker": flat,
        "als": dataclasses.replace(flat, reranker=None),
        "als+item_item": dataclasses.replace(flat, reranker=None, item_item=item_item),
        "als+item_item+reranker": dataclasses.replace(flat, item_item=item_item),
        "ivf als+reranker, new-user fold-in": dataclasses.replace(ivf, new_user_foldin=True),
        "ivf als+item_item+reranker": dataclasses.replace(ivf, item_item=item_item),
        "hnsw als+reranker": hnsw,
    }


def _batches(items: Sequence[T]) -> Iterator[list[T]]:
    """``items`` cut into batches of every size in BATCH_SIZES, in turn."""
    start, turn = 0, 0
    while start < len(items):
        size = BATCH_SIZES[turn % len(BATCH_SIZES)]
        yield list(items[start : start + size])
        start, turn = start + size, turn + 1


def _same(got: RankedList | Exception, want: Callable[[], RankedList]) -> None:
    try:
        expected = want()
    except Exception as e:
        assert isinstance(got, Exception), f"wanted {e!r}, got a list"
        assert type(got) is type(e) and str(got) == str(e)
        return
    assert isinstance(got, RankedList), f"wanted a list, got {got!r}"
    assert got.source is expected.source and got.has_more == expected.has_more
    assert got.items == expected.items  # item, score (exact float), rank, reasons


def _filters(bundle: Bundle, rng: np.random.Generator) -> Filters:
    kind = int(rng.integers(0, 7))
    if kind == 1:
        return Filters(subject_ids=frozenset({bundle.subject_ids[int(rng.integers(0, 20))]}))
    if kind == 2:
        return Filters(min_year=1950, max_year=2000)
    if kind == 3:
        return Filters(exclude_book_ids=frozenset(bundle.book_ids[int(i)] for i in range(0, 90, 3)))
    if kind == 4:
        return Filters(min_year=2001, max_year=1990)  # INVALID_ARGUMENT
    if kind == 5:
        return Filters(subject_ids=frozenset({"no-such-subject"}))  # INVALID_ARGUMENT
    return Filters()


def _recommend_calls(bundle: Bundle, n: int, seed: int) -> list[RecommendCall]:
    rng = np.random.default_rng(seed)
    known = list(bundle.user_row)
    users = [known[int(u)] for u in rng.choice(len(known), n)]
    calls = []
    for i, known_user in enumerate(users):
        user = known_user
        k = int(rng.choice([1, 3, 5, 10, 25, 100]))
        # 290 + 10 and 295 + 5 end at the reranker's 300 candidates: the last reranked page
        offset = int(rng.choice([0, 0, 0, k, 250, 290, 295, 600]))
        fresh = None
        if i % 5 == 0:  # new ratings: books already rated, new ones, one unknown id
            books = rng.choice(bundle.n_books, 4, replace=False)
            fresh = {bundle.book_ids[int(b)]: int(rng.choice([0, 3, 8])) for b in books}
            fresh["no-such-book"] = 9
        if i % 11 == 0:
            user = f"stranger-{i}"  # unknown: folded in from its ratings, or cold start
        filters = _filters(bundle, rng) if i % 3 == 0 else Filters()
        calls.append(RecommendCall(user, k, filters, bool(i % 2), offset, fresh))
    return calls


@pytest.mark.parametrize(
    "variant",
    [
        "als+reranker",
        "als",
        "als+item_item",
        "als+item_item+reranker",
        "ivf als+reranker, new-user fold-in",
        "ivf als+item_item+reranker",
        "hnsw als+reranker",
    ],
)
def test_recommend_many_answers_each_call_as_recommend_does(flat: Bundle, variant: str) -> None:
    bundle = _variants(flat)[variant]
    calls = _recommend_calls(bundle, 180, seed=len(variant))
    sources: set[Source] = set()
    for batch in _batches(calls):
        for call, got in zip(batch, recommend_many(bundle, batch), strict=True):
            c = call
            _same(
                got,
                partial(
                    recommend, bundle, c.user_id, c.k, c.filters, c.explain, c.offset, c.new_ratings
                ),
            )
            if isinstance(got, RankedList):
                sources.add(got.source)
    # Every path was taken: reranked pages, plain pages, and cold start or fold-in.
    want = {Source.ALS} | ({Source.ALS_RERANKED} if bundle.reranker else set())
    assert want <= sources


def _similar_calls(bundle: Bundle, n: int, seed: int) -> list[SimilarCall]:
    rng = np.random.default_rng(seed)
    no_als = np.flatnonzero(~np.asarray(bundle.item_in_als))
    calls = []
    for i in range(n):
        book = int(no_als[i % len(no_als)] if i % 9 == 0 else rng.integers(0, bundle.n_books))
        book_id = "no-such-book" if i % 17 == 0 else bundle.book_ids[book]
        mode = [SimilarMode.ALS, SimilarMode.SUBJECT, SimilarMode.HYBRID][i % 3]
        weight = float(rng.choice([0.0, 0.3, 0.5, 1.0])) if mode is SimilarMode.HYBRID else 0.5
        filters = _filters(bundle, rng) if i % 4 == 0 else Filters()
        k = int(rng.choice([1, 10, 60]))
        calls.append(SimilarCall(book_id, k, mode, weight, filters, bool(i % 2)))
    return calls


@pytest.mark.parametrize(
    "variant", ["als+reranker", "ivf als+reranker, new-user fold-in", "hnsw als+reranker"]
)
def test_similar_many_answers_each_call_as_similar_does(flat: Bundle, variant: str) -> None:
    bundle = _variants(flat)[variant]
    calls = _similar_calls(bundle, 150, seed=7)
    for batch in _batches(calls):
        for call, got in zip(batch, similar_many(bundle, batch), strict=True):
            c = call
            _same(
                got,
                partial(similar, bundle, c.book_id, c.k, c.mode, c.weight, c.filters, c.explain),
            )


def _cold_calls(bundle: Bundle, n: int, seed: int) -> list[ColdStartCall]:
    rng = np.random.default_rng(seed)
    calls = []
    for i in range(n):
        count = int(rng.choice([0, 1, 2, 2, 3, 5]))
        picked = rng.choice(bundle.n_subjects, count, replace=False)
        subjects = [bundle.subject_ids[int(s)] for s in picked]
        if i % 13 == 0:
            subjects.append("no-such-subject")
        weight = None if i % 2 else float(rng.choice([0.0, 0.2, 0.9]))
        filters = _filters(bundle, rng) if i % 4 == 0 else Filters()
        k = int(rng.choice([1, 10, 100]))
        calls.append(ColdStartCall(tuple(subjects), weight, k, filters, bool(i % 3)))
    return calls


@pytest.mark.parametrize("variant", ["als+reranker", "ivf als+reranker, new-user fold-in"])
def test_cold_start_many_answers_each_call_as_cold_start_does(flat: Bundle, variant: str) -> None:
    bundle = _variants(flat)[variant]
    calls = _cold_calls(bundle, 150, seed=11)
    for batch in _batches(calls):
        for call, got in zip(batch, cold_start_many(bundle, batch), strict=True):
            c = call
            _same(
                got,
                partial(
                    cold_start,
                    bundle,
                    c.favourite_subjects,
                    c.popularity_weight,
                    c.k,
                    c.filters,
                    c.explain,
                ),
            )


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_search_many_is_each_query_searched_alone(kind: str) -> None:
    """Depths differ per query, and the database holds duplicate vectors (equal distances
    that a deeper search may order otherwise): each query still gets its own search."""
    rng = np.random.default_rng(3)
    base = rng.standard_normal((2000, 12)).astype(np.float32)
    base[1000:1100] = base[:100]  # duplicates
    base[1500:1520] = base[0]
    index: Any = faiss.IndexFlatIP(12) if kind == "flat" else None
    if kind == "flat":
        index.add(base)
    elif kind == "ivf":
        index = _ivf(base, nlist=16, nprobe=3)
    else:
        index = _hnsw(base)
    queries = np.concatenate([rng.standard_normal((40, 12)), base[:10]]).astype(np.float32)
    ks = [int(k) for k in rng.choice([1, 5, 20, 99, 100, 150, 2000], len(queries))]
    got = search_many(index, queries, ks)
    for q, k, (d, ids) in zip(queries, ks, got, strict=True):
        want_d, want_ids = index.search(q[None, :], k)
        assert np.array_equal(ids, want_ids[0]) and np.array_equal(d, want_d[0])
