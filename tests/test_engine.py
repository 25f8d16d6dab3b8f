"""Engine pipelines on fake in-memory bundles (tests/fake_bundle.py): retrieval,
Recommend with fold-in and the new-user path, Similar's modes, the result cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bookrec import cold_score
from server.engine.bundle import Bundle
from server.engine.errors import InvalidArgument
from server.engine.foldin import RatingsOverlay
from server.engine.personal import Personal
from server.engine.ranking import allowed_mask
from server.engine.recommend import recommend
from server.engine.retrieval import candidates
from server.engine.similar import similar
from server.engine.types import Filters, ReasonKind, SimilarMode, Source
from tests.fake_bundle import NO_ALS, PER_CLUSTER, cluster_of, fake_bundle

NONE = Filters()


def exact_top(scores: np.ndarray, allowed: np.ndarray, n: int) -> list[int]:
    rows = np.flatnonzero(allowed)
    top: list[int] = rows[np.argsort(-scores[rows], kind="stable")][:n].tolist()
    return top


@pytest.mark.parametrize("n", [5, 30, 56])
def test_candidates_are_the_exact_top_minus_rated_and_non_als(n: int) -> None:
    bundle = fake_bundle()
    vector = np.asarray(bundle.user_factors[0])
    rated = bundle.rated_items(0)
    ids, scores = candidates(bundle, vector, n, rated, None)
    allowed = np.asarray(bundle.item_in_als).copy()
    allowed[rated] = False
    expected = exact_top(np.asarray(bundle.item_factors) @ vector, allowed, n)
    assert ids.tolist() == expected
    assert np.all(np.diff(scores) <= 1e-6)
    assert not set(ids.tolist()) & (set(rated.tolist()) | set(NO_ALS))


def test_candidates_respect_a_filter_mask() -> None:
    bundle = fake_bundle()
    mask = allowed_mask(bundle, Filters(subject_ids=frozenset({"2-a"})))
    assert mask is not None
    ids, _ = candidates(bundle, np.asarray(bundle.user_factors[0]), 10, bundle.rated_items(0), mask)
    assert ids.size == 10 and all(cluster_of(int(i)) == 2 for i in ids)


def test_recommend_ranks_the_users_cluster_first_and_never_a_rated_book() -> None:
    bundle = fake_bundle()
    ranked = recommend(bundle, "u1", 10, NONE, explain=True)
    assert ranked.source is Source.ALS
    items = [s.item for s in ranked.items]
    assert all(cluster_of(i) == 1 for i in items)
    assert not set(items) & set(bundle.rated_items(1).tolist())
    assert all(s.reasons for s in ranked.items)


def test_new_ratings_fold_into_the_user_vector() -> None:
    bundle = fake_bundle()
    # u0 likes cluster 0; ten top ratings in cluster 2 must pull cluster 2 up.
    fresh = {f"b{2 * PER_CLUSTER + j}": 10 for j in range(10)}
    before = recommend(bundle, "u0", 10, NONE, explain=False)
    after = recommend(bundle, "u0", 10, NONE, explain=False, new_ratings=fresh)
    assert sum(cluster_of(s.item) == 2 for s in before.items) == 0
    assert sum(cluster_of(s.item) == 2 for s in after.items) >= 5
    assert not {bundle.book_ids[s.item] for s in after.items} & set(fresh)


def test_unknown_user_gets_cold_start_from_rated_subjects_or_popularity() -> None:
    bundle = fake_bundle()
    cold = recommend(bundle, "stranger", 5, NONE, explain=False, new_ratings={"b45": 9})
    assert cold.source is Source.COLD_START
    assert all(cluster_of(s.item) == 2 for s in cold.items)
    assert 45 not in [s.item for s in cold.items]
    popular = recommend(bundle, "stranger", 5, NONE, explain=False)
    assert popular.source is Source.POPULARITY
    assert [s.item for s in popular.items] == [0, 1, 2, 3, 4]
    page2 = recommend(bundle, "stranger", 5, NONE, explain=False, offset=5)
    assert [s.rank for s in page2.items] == [6, 7, 8, 9, 10] and page2.has_more


@pytest.mark.parametrize(
    ("mode", "source"),
    [
        (SimilarMode.ALS, Source.ALS),
        (SimilarMode.SUBJECT, Source.SUBJECT),
        (SimilarMode.HYBRID, Source.HYBRID),
    ],
)
def test_similar_modes_stay_in_the_cluster(mode: SimilarMode, source: Source) -> None:
    bundle = fake_bundle()
    ranked = similar(bundle, "b25", 10, mode, 0.5, NONE, explain=True)
    assert ranked.source is source
    items = [s.item for s in ranked.items]
    assert 25 not in items and len(items) == 10
    assert all(cluster_of(i) == 1 for i in items)


@pytest.mark.parametrize(
    ("mode", "weight", "co_read"),
    [
        (SimilarMode.ALS, 0.5, True),
        (SimilarMode.HYBRID, 0.5, True),
        (SimilarMode.HYBRID, 0.0, False),
        (SimilarMode.SUBJECT, 0.5, False),
    ],
)
def test_co_reading_is_a_reason_only_when_als_ranked_the_list(
    mode: SimilarMode, weight: float, co_read: bool
) -> None:
    ranked = similar(fake_bundle(), "b25", 10, mode, weight, NONE, explain=True)
    kinds = {r.kind for s in ranked.items for r in s.reasons}
    assert (ReasonKind.CO_READ in kinds) is co_read


def test_hybrid_is_the_weighted_sum_of_both_scores() -> None:
    bundle = fake_bundle()
    als = {
        s.item: s.score for s in similar(bundle, "b3", 50, SimilarMode.ALS, 0, NONE, False).items
    }
    subj = {
        s.item: s.score
        for s in similar(bundle, "b3", 50, SimilarMode.SUBJECT, 0, NONE, False).items
    }
    hybrid = similar(bundle, "b3", 10, SimilarMode.HYBRID, 0.3, NONE, False)
    for s in hybrid.items:
        assert s.score == pytest.approx(0.3 * als[s.item] + 0.7 * subj[s.item], abs=1e-5)


def test_a_book_without_als_vector_falls_back_to_subject() -> None:
    bundle = fake_bundle()
    ranked = similar(bundle, f"b{NO_ALS[0]}", 5, SimilarMode.HYBRID, 0.9, NONE, False)
    assert ranked.source is Source.SUBJECT
    assert all(cluster_of(s.item) == cluster_of(NO_ALS[0]) for s in ranked.items)


def test_personal_caches_by_version_and_new_ratings(tmp_path: Path) -> None:
    log = tmp_path / "ratings.jsonl"
    personal = Personal(RatingsOverlay(log), cache_size=8)
    bundle = fake_bundle()
    first = personal.recommend(bundle, "u0", 10, NONE, False, 0)
    assert personal.recommend(bundle, "u0", 10, NONE, False, 0) is first
    assert personal.cache.hits == 1
    newer = fake_bundle("20260102T000000Z-00000000")
    assert personal.recommend(newer, "u0", 10, NONE, False, 0) is not first
    log.write_text(
        "".join(
            json.dumps({"user_id": "u0", "book_id": f"b{40 + j}", "rating": 10}) + "\n"
            for j in range(10)
        )
    )
    changed = personal.recommend(bundle, "u0", 10, NONE, False, 0)
    assert changed is not first
    assert [s.item for s in changed.items] != [s.item for s in first.items]


def test_personal_caches_similar_and_cold_start_by_version_and_request(tmp_path: Path) -> None:
    personal = Personal(RatingsOverlay(tmp_path / "ratings.jsonl"), cache_size=8)
    bundle = fake_bundle()
    names = [bundle.subject_names[0], bundle.subject_names[1]]
    first = personal.cold_start(bundle, names, None, 5, NONE, False)
    assert personal.cold_start(bundle, names[::-1], None, 5, NONE, False) is first
    assert personal.cold_start(bundle, names, 0.5, 5, NONE, False) is not first
    alike = personal.similar(bundle, "b3", 5, SimilarMode.ALS, 0.5, NONE, False)
    assert personal.similar(bundle, "b3", 5, SimilarMode.ALS, 0.5, NONE, False) is alike
    assert personal.similar(bundle, "b3", 5, SimilarMode.SUBJECT, 0.5, NONE, False) is not alike
    assert personal.cache.hits == 2
    newer = fake_bundle("20260102T000000Z-00000000")
    assert personal.cold_start(newer, names, None, 5, NONE, False) is not first
    assert personal.similar(newer, "b3", 5, SimilarMode.ALS, 0.5, NONE, False) is not alike
    assert personal.cache.hits == 2
    with pytest.raises(InvalidArgument):  # a refusal is not remembered as an answer
        personal.cold_start(bundle, ["no such subject"], None, 5, NONE, False)


def trainers_lift(bundle: Bundle) -> cold_score.SubjectLift:
    """The lift as the trainer's evaluation computes it, from the bundle's arrays."""
    return cold_score.SubjectLift(bundle.book_subjects, bundle.rating_count, bundle.n_subjects)


@pytest.mark.parametrize("subjects", [[0], [2, 5], [1, 3, 4], [0, 1, 2, 3, 4, 5]])
def test_cold_start_lift_from_bitsets_equals_the_trainers_bit_for_bit(
    subjects: list[int],
) -> None:
    from server.engine import cold_start as cs

    bundle = fake_bundle()
    lift = trainers_lift(bundle)
    rows = np.arange(bundle.n_books, dtype=np.int64)[::-1]
    weights = cold_score.favourite_weights(bundle.subject_inverse_share, subjects)
    np.testing.assert_array_equal(
        cs._lift_at(bundle, subjects, weights, rows), lift.at(subjects, rows)
    )
    carriers = set(cs._multi_carriers(bundle, subjects).tolist())
    want = {
        i
        for i in range(bundle.n_books)
        if len(set(bundle.subjects_of(i).tolist()) & set(subjects)) > 1
    }
    assert carriers == want


@pytest.mark.parametrize("w", [0.0, 0.3, 0.9, 1.0])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("subjects", [[0], [2, 5], [1, 3, 4]])
def test_cold_start_threshold_search_equals_the_exact_blend(
    monkeypatch: pytest.MonkeyPatch, w: float, k: int, subjects: list[int]
) -> None:
    from server.engine import cold_start as cs

    bundle = fake_bundle()
    monkeypatch.setattr(cs, "THRESHOLD_START", 2)  # 60 books: force the threshold path
    user = bundle.subjects.user_vector(subjects)
    lift = trainers_lift(bundle)
    # The whole catalogue scored the way the trainer evaluates it (bookrec/cold_score.py).
    sim = cold_score.similarity(user, np.asarray(bundle.subjects.book_vectors), lift([subjects]))
    exact = cold_score.blend(sim[0], bundle.prior01, w)
    np.testing.assert_array_equal(lift.at(subjects, np.arange(bundle.n_books)), lift([subjects])[0])
    for mask in (None, np.arange(bundle.n_books) % 2 == 0):
        page, scores = cs._best_blend(bundle, subjects, w, k, mask)
        allowed = np.ones(bundle.n_books, bool) if mask is None else mask
        want = np.sort(exact[allowed])[::-1][:k]
        np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-6)
        assert all(allowed[page])


def test_an_unsorted_history_is_refused() -> None:
    """Recommend's exclusion of rated books relies on each user's list being sorted."""
    from bookrec.artifact import ArtifactError

    with pytest.raises(ArtifactError, match="not sorted"):
        fake_bundle(history_order=-1)
