"""Recommend with the item-item model, the new-user fold-in and ALS's min_rating, on fake
bundles (tests/fake_bundle.py): the served lists are the trainer's evaluated lists
(trainer/evaluation/lists.py ``candidate_pool`` + ``blend_lists``) on the same arrays."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import scipy.sparse as sp

from bookrec.artifact import ArtifactError
from bookrec.confidence import confidence
from bookrec.fold_in import fold_in
from server.engine.bundle import Bundle
from server.engine.recommend import _new_user_vector, _user_vector, recommend
from server.engine.types import Filters, Source
from tests.fake_bundle import (
    CLUSTERS,
    NO_ALS,
    PER_CLUSTER,
    USERS,
    cluster_of,
    fake_bundle,
    fake_item_item,
)
from trainer.evaluation.lists import blend_lists, blend_scores, candidate_pool
from trainer.evaluation.protocol import top_lists
from trainer.models import reranker as rr

NONE = Filters()
N_BOOKS = CLUSTERS * PER_CLUSTER


def blended_bundle(weight: float, n: int, **params: Any) -> tuple[Bundle, sp.csr_matrix]:
    m = fake_item_item()
    bundle = fake_bundle(
        item_item=m, params={"item_item_blend": weight, "blend_candidates": n, **params}
    )
    return bundle, m


def rated_matrix(rows: list[np.ndarray]) -> sp.csr_matrix:
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    indices = np.concatenate(rows).astype(np.int32)
    out = sp.csr_matrix(
        (np.ones(len(indices), np.float32), indices, indptr), shape=(len(rows), N_BOOKS)
    )
    out.sort_indices()
    return out


def trainers_lists(
    bundle: Bundle, m: sp.csr_matrix, vectors: np.ndarray, rated: list[np.ndarray], w: float, k: int
) -> tuple[list[list[int]], list[np.ndarray]]:
    """What the trainer evaluates for these users: their top k, and their blended scores."""
    n = bundle.item_item.candidates if bundle.item_item is not None else 0
    users = np.arange(len(vectors), dtype=np.int32)
    pool = candidate_pool(
        vectors.astype(np.float32),
        np.asarray(bundle.item_factors),
        m,
        users,
        rated_matrix(rated),
        n,
    )
    lists = blend_lists(pool, w, k)
    _, scores = blend_scores(pool, w, k)
    return [row[row >= 0].tolist() for row in lists], [
        s[: int((row >= 0).sum())] for s, row in zip(scores, lists, strict=True)
    ]


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.7, 1.0])
@pytest.mark.parametrize("n", [5, 15])
def test_blended_list_is_the_trainers_evaluated_list(weight: float, n: int) -> None:
    bundle, m = blended_bundle(weight, n)
    rated = [np.asarray(bundle.rated_items(u)) for u in range(USERS)]
    for k in (10, 2 * n):
        want, want_scores = trainers_lists(
            bundle, m, np.asarray(bundle.user_factors), rated, weight, k
        )
        for u in range(USERS):
            ranked = recommend(bundle, f"u{u}", k, NONE, explain=False)
            assert ranked.source is Source.ALS
            got = [s.item for s in ranked.items]
            # Past the union (at most 2n books) the list goes on in ALS order.
            assert got[: len(want[u])] == want[u], (u, k)
            np.testing.assert_allclose(
                [s.score for s in ranked.items[: len(want[u])]], want_scores[u], rtol=0, atol=1e-6
            )
            assert not set(got) & set(rated[u].tolist())


def test_the_blend_changes_the_list() -> None:
    """The planted item-item links cross clusters: blending must not be ALS alone."""
    bundle, _ = blended_bundle(0.3, 15)
    plain = fake_bundle()
    changed = sum(
        [s.item for s in recommend(bundle, f"u{u}", 10, NONE, False).items]
        != [s.item for s in recommend(plain, f"u{u}", 10, NONE, False).items]
        for u in range(USERS)
    )
    assert changed == USERS


def test_new_ratings_are_excluded_and_seed_item_item() -> None:
    bundle, m = blended_bundle(0.4, 10)
    fresh_rows = [2 * PER_CLUSTER + j for j in (0, 4, 9)]
    fresh = {f"b{r}": 10 for r in fresh_rows}
    vector, rated = _user_vector(bundle, 0, dict.fromkeys(fresh_rows, 10))
    assert set(fresh_rows) <= set(rated.tolist())
    want, _ = trainers_lists(bundle, m, vector[None, :], [np.asarray(rated)], 0.4, 10)
    got = recommend(bundle, "u0", 10, NONE, explain=False, new_ratings=fresh)
    assert [s.item for s in got.items] == want[0]
    assert not {s.item for s in got.items} & set(rated.tolist())


def test_filters_hold_on_both_sources() -> None:
    bundle, _ = blended_bundle(0.2, 10)
    ranked = recommend(bundle, "u0", 10, Filters(subject_ids=frozenset({"1-a"})), False)
    assert len(ranked.items) == 10
    assert all(cluster_of(s.item) == 1 for s in ranked.items)


def test_item_item_never_lists_a_book_without_an_als_vector() -> None:
    m = fake_item_item().tolil()
    m[:, NO_ALS[0]] = 50.0  # every book points hard at one without an ALS vector
    bundle = fake_bundle(item_item=m.tocsr(), params={"item_item_blend": 0.0})
    for u in range(USERS):
        assert NO_ALS[0] not in [s.item for s in recommend(bundle, f"u{u}", 60, NONE, False).items]


def test_pages_beyond_the_union_continue_in_als_order_without_repeats() -> None:
    bundle, _ = blended_bundle(0.5, 5)
    whole = recommend(bundle, "u1", 100, NONE, explain=False)
    eligible = N_BOOKS - len(NO_ALS) - len(bundle.rated_items(1))
    items = [s.item for s in whole.items]
    assert len(items) == len(set(items)) == eligible and not whole.has_more
    pages, offset = [], 0
    while True:
        page = recommend(bundle, "u1", 7, NONE, explain=False, offset=offset)
        pages += [s.item for s in page.items]
        assert [s.rank for s in page.items] == list(range(offset + 1, offset + 1 + len(page.items)))
        offset += 7
        if not page.has_more:
            break
    assert pages == items
    # The tail (after the union, at most 10 books here) is ALS order.
    tail = items[10:]
    als = np.asarray(bundle.item_factors)[tail] @ np.asarray(bundle.user_factors[1])
    assert np.all(np.diff(als) <= 1e-6)


@dataclass
class StubReranker:
    """Stands in for the LightGBM reranker: records what it is given, returns it reversed."""

    candidates: int
    calls: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=list
    )

    def rank(
        self,
        space: Any,
        user: int,
        history: np.ndarray,
        cand: np.ndarray,
        scores: np.ndarray,
        als_scores: np.ndarray,
        item_item_scores: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append(
            (user, cand.copy(), scores.copy(), als_scores.copy(), item_item_scores.copy())
        )
        return cand[::-1], np.arange(len(cand), dtype=np.float32)


def test_the_reranker_reranks_the_top_of_the_blended_list_with_blended_scores() -> None:
    bundle, m = blended_bundle(0.6, 8)
    stub = StubReranker(candidates=12)
    reranked = dataclasses.replace(bundle, reranker=cast(Any, stub))
    plain = recommend(bundle, "u2", 12, NONE, explain=False)
    first = recommend(reranked, "u2", 10, NONE, explain=False)
    assert first.source is Source.ALS_RERANKED and first.has_more
    user, cand, scores, als, ii = stub.calls[-1]
    assert user == 2
    assert cand.tolist() == [s.item for s in plain.items]
    np.testing.assert_array_equal(scores, np.array([s.score for s in plain.items], np.float32))
    # Both sources' scores, as the trainer hands them to the reranker (reranker.blended).
    pool = candidate_pool(
        np.asarray(bundle.user_factors)[[2]],
        np.asarray(bundle.item_factors),
        m,
        np.zeros(1, np.int32),
        rated_matrix([np.asarray(bundle.rated_items(2))]),
        8,
    )
    want = rr.blended(pool, 0.6, 12)
    assert want.items[0].tolist() == cand.tolist()
    np.testing.assert_allclose(scores, want.scores[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(als, want.als[0], rtol=0, atol=1e-5)
    np.testing.assert_allclose(ii, want.item_item[0], rtol=0, atol=1e-6)
    assert (ii > 0).any() and (als != scores).any()
    assert [s.item for s in first.items] == cand[::-1][:10].tolist()
    # A page across the reranked 12's end: its last two, then the blended order past
    # them; the books one large page holds there (one list, issue 20).
    deeper = recommend(reranked, "u2", 5, NONE, explain=False, offset=10)
    assert deeper.source is Source.ALS_RERANKED
    past = recommend(bundle, "u2", 3, NONE, False, offset=12)
    assert [s.item for s in deeper.items] == cand[::-1][10:12].tolist() + [
        s.item for s in past.items
    ]
    large = recommend(reranked, "u2", 15, NONE, False)
    assert [s.item for s in deeper.items] == [s.item for s in large.items][10:15]
    # A user the model does not know is never reranked (no per-user statistics).
    calls = len(stub.calls)
    stranger = dataclasses.replace(reranked, new_user_foldin=True)
    cold = recommend(stranger, "stranger", 10, NONE, False, new_ratings={"b45": 9})
    assert cold.source is Source.ALS and len(stub.calls) == calls


def test_with_als_alone_the_reranker_gets_als_scores_and_no_item_item() -> None:
    bundle = fake_bundle()
    stub = StubReranker(candidates=12)
    first = recommend(
        dataclasses.replace(bundle, reranker=cast(Any, stub)), "u1", 10, NONE, explain=False
    )
    assert first.source is Source.ALS_RERANKED
    _, cand, scores, als, ii = stub.calls[-1]
    want = rr.candidates(
        np.asarray(bundle.user_factors),
        np.asarray(bundle.item_factors),
        np.array([1], np.int32),
        rated_matrix([np.asarray(bundle.rated_items(u)) for u in range(USERS)]),
        12,
    )
    assert cand.tolist() == want.items[0].tolist()
    np.testing.assert_allclose(scores, want.scores[0], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(als, scores)
    assert not ii.any()


def test_the_reranker_list_ends_with_a_short_union() -> None:
    """A union shorter than the reranker's candidates: it reranks the union, as the trainer
    did; the pages after it continue in plain blended order."""
    bundle, _ = blended_bundle(0.6, 5)
    stub = StubReranker(candidates=300)
    reranked = dataclasses.replace(bundle, reranker=cast(Any, stub))
    first = recommend(reranked, "u0", 5, NONE, explain=False)
    union = len(stub.calls[-1][1])
    assert 5 <= union <= 10 and first.source is Source.ALS_RERANKED and first.has_more
    past = recommend(reranked, "u0", 5, NONE, explain=False, offset=union)
    assert past.source is Source.ALS and len(past.items) == 5


def _defect(field_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = fake_item_item()
    indptr, indices, weights = m.indptr.copy(), m.indices.copy(), m.data.copy()
    if field_name == "nan":
        weights[3] = np.nan
    elif field_name == "inf":
        weights[0] = np.inf
    elif field_name == "zero":
        weights[5] = 0.0
    elif field_name == "index":
        indices[7] = N_BOOKS
    elif field_name == "indptr":
        indptr = indptr[:-1]
    elif field_name == "count":
        weights = weights[:-1]
    return indptr, indices, weights


@pytest.mark.parametrize(
    ("defect", "message"),
    [
        ("nan", "NaN or inf"),
        ("inf", "NaN or inf"),
        ("zero", "<= 0"),
        ("index", "outside"),
        ("indptr", "shape"),
        ("count", "weights for"),
    ],
)
def test_a_broken_item_item_model_refuses_the_load(defect: str, message: str) -> None:
    with pytest.raises(ArtifactError, match=message):
        fake_bundle(item_item=_defect(defect))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"item_item_blend": 1.5}, "outside"),
        ({"item_item_blend": float("nan")}, "outside"),
        ({"blend_candidates": 0}, "below 1"),
        ({"new_user_foldin": "yes"}, "not a bool"),
    ],
)
def test_bad_blend_params_refuse_the_load(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ArtifactError, match=message):
        fake_bundle(item_item=fake_item_item(), params=params)


def test_defaults_for_an_artifact_without_the_new_params() -> None:
    old = fake_bundle()
    assert old.item_item is None and not old.new_user_foldin and old.als.min_rating == 0
    arrays_only = fake_bundle(item_item=fake_item_item())
    assert arrays_only.item_item is not None
    assert (arrays_only.item_item.weight, arrays_only.item_item.candidates) == (1.0, 200)


def trainers_history_vector(bundle: Bundle, rows: list[int], ratings: list[int]) -> np.ndarray:
    """trainer/models/cold.py ``history_vectors`` for one user, on the bundle's arrays."""
    items = np.asarray(bundle.item_factors)
    yty = items.astype(np.float64).T @ items.astype(np.float64)
    r = np.array(ratings)
    keep = (r == 0) | (r >= bundle.als.min_rating)
    conf = confidence(r[keep], bundle.als.alpha, bundle.als.scheme)
    return fold_in(items, yty, bundle.als.regularization, np.array(rows, np.int32)[keep], conf)


@pytest.mark.parametrize("with_item_item", [False, True])
def test_an_unknown_user_with_two_ratings_is_folded_in(with_item_item: bool) -> None:
    params = {"new_user_foldin": True, "item_item_blend": 0.5, "blend_candidates": 10}
    bundle = fake_bundle(item_item=fake_item_item() if with_item_item else None, params=params)
    fresh = {"b45": 9, "b47": 10}
    ranked = recommend(bundle, "stranger", 10, NONE, explain=True, new_ratings=fresh)
    assert ranked.source is Source.ALS
    items = [s.item for s in ranked.items]
    assert len(items) == 10 and not {45, 47} & set(items)
    assert all(s.reasons for s in ranked.items)
    popular = recommend(bundle, "stranger", 10, NONE, explain=False)
    assert popular.source is Source.POPULARITY and items != [s.item for s in popular.items]
    vector = trainers_history_vector(bundle, [45, 47], [9, 10])
    served = _new_user_vector(bundle, {45: 9, 47: 10})
    assert served is not None
    np.testing.assert_allclose(served, vector, rtol=1e-5, atol=1e-6)
    seen = np.array([45, 47], np.int32)
    if with_item_item:
        m = fake_item_item()
        want, _ = trainers_lists(bundle, m, vector[None, :], [seen], 0.5, 10)
        assert items == want[0]
    else:
        pos = np.zeros(1, np.int32)
        lists = top_lists(
            lambda b: vector[None, :] @ np.asarray(bundle.item_factors).T,
            pos,
            rated_matrix([seen]),
            k=10,
        )
        assert items == lists[0].tolist()


def test_an_unknown_user_gets_cold_start_without_foldin_or_positive_ratings() -> None:
    off = fake_bundle(item_item=fake_item_item())
    fresh = {"b45": 9, "b47": 10}
    assert recommend(off, "stranger", 5, NONE, False, new_ratings=fresh).source is (
        Source.COLD_START
    )
    on = fake_bundle(params={"new_user_foldin": True, "als": {"min_rating": 6}})
    low = recommend(on, "stranger", 5, NONE, False, new_ratings={"b45": 3, "b47": 5})
    assert low.source is Source.COLD_START and not {45, 47} & {s.item for s in low.items}
    no_als = recommend(on, "stranger", 5, NONE, False, new_ratings={f"b{NO_ALS[0]}": 9})
    assert no_als.source is Source.COLD_START
    implicit = recommend(on, "stranger", 5, NONE, False, new_ratings={"b45": 0})
    assert implicit.source is Source.ALS, "an implicit read (0) always counts"


def test_a_fresh_rating_below_min_rating_does_not_move_the_vector() -> None:
    strict = fake_bundle(params={"als": {"min_rating": 6}})
    trained = np.asarray(strict.user_factors[0])
    low, rated = _user_vector(strict, 0, {45: 3})
    np.testing.assert_array_equal(low, trained)
    assert 45 in rated.tolist()
    assert 45 not in [
        s.item for s in recommend(strict, "u0", 60, NONE, False, new_ratings={"b45": 3}).items
    ]
    high, _ = _user_vector(strict, 0, {47: 10})
    both, rated = _user_vector(strict, 0, {47: 10, 45: 3})
    np.testing.assert_array_equal(both, high)
    assert {45, 47} <= set(rated.tolist())
    assert not np.allclose(high, trained)
    # The same rating moves it where every rating counts, and an implicit read always does.
    moved, _ = _user_vector(fake_bundle(), 0, {45: 3})
    assert not np.allclose(moved, trained)
    implicit, _ = _user_vector(strict, 0, {45: 0})
    assert not np.allclose(implicit, trained)
    # A user the model does not know: the low rating is left out of the fold-in too.
    on = fake_bundle(params={"new_user_foldin": True, "als": {"min_rating": 6}})
    a, b = _new_user_vector(on, {47: 10, 45: 3}), _new_user_vector(on, {47: 10})
    assert a is not None and b is not None
    np.testing.assert_array_equal(a, b)


def test_served_lists_equal_the_trainers_on_the_tiny_artifact(tiny_artifact: Path) -> None:
    """On a trainer's own artifact (its FAISS index, its item-item model and blend weight),
    Recommend's top 10 is the list the trainer evaluated, for every sampled user."""
    # The tiny artifact serves its reranker too (rerank="always"): compare the list below it.
    bundle = dataclasses.replace(Bundle.open(tiny_artifact), reranker=None)
    model = bundle.item_item
    assert model is not None, "the tiny set's study no longer serves item-item: pick a check"
    m = sp.csr_matrix(
        (model.weights, model.indices, model.indptr), shape=(bundle.n_books, bundle.n_books)
    )
    n_users = len(bundle.user_factors)
    rated = sp.csr_matrix(
        (
            np.ones(len(bundle.user_items_indices), np.float32),
            bundle.user_items_indices,
            bundle.user_items_indptr,
        ),
        shape=(n_users, bundle.n_books),
    )
    users = np.arange(0, n_users, max(1, n_users // 100), dtype=np.int32)
    pool = candidate_pool(
        np.asarray(bundle.user_factors),
        np.asarray(bundle.item_factors),
        m,
        users,
        rated,
        model.candidates,
    )
    want = blend_lists(pool, model.weight, 10)
    row_of = {row: user_id for user_id, row in bundle.user_row.items()}
    for row, u in enumerate(users.tolist()):
        got = [s.item for s in recommend(bundle, row_of[u], 10, NONE, False).items]
        assert got == want[row][want[row] >= 0].tolist(), row_of[u]
