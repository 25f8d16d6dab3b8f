"""Shrink by evidence as served (issue 22): a user the model does not know, with n
ratings, gets ``w(n) * personal + (1 - w(n)) * popularity`` (server/engine/new_user.py),
the lists the trainer's journeys score (trainer/models/cold.py ``shrink_lists``), on the
call-at-a-time and batched paths alike; the served popularity feeds ColdStart; an
artifact without the new field is served as before; a trained artifact carries the
learned curve and a real server answers with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from bookrec import blend, cold_score
from bookrec.artifact import ArtifactError, read_manifest
from bookrec.v1 import common_pb2, feedback_pb2, recommender_pb2
from bookrec.v1.feedback_pb2_grpc import FeedbackServiceStub
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub
from server.engine.batch_cold_start import ColdStartCall, cold_start_many
from server.engine.batch_recommend import RecommendCall, recommend_many
from server.engine.bundle import Bundle
from server.engine.cold_start import cold_start
from server.engine.recommend import _new_user_vector, recommend
from server.engine.types import Filters, Source
from tests.fake_bundle import fake_bundle, fake_item_item
from tests.serverproc import own_connection, running_server
from trainer.models.als import ALSModel, ALSParams
from trainer.models.cold import Personal, shrink_lists

NONE = Filters()
FRESH = {"b45": 9, "b47": 10, "b12": 8}


def _served_popularity(n: int) -> np.ndarray:
    """A popularity unlike the prior's order (which is by row), so using it shows."""
    rng = np.random.default_rng(11)
    return rng.random(n).astype(np.float32)


def _bundle(k: float | None, item_item: bool, extra: bool = True) -> Bundle:
    params: dict[str, Any] = {"new_user_foldin": True, "item_item_blend": 0.5}
    params["blend_candidates"] = 10
    if k is not None:
        params["new_user_shrink_k"] = k
    probe = fake_bundle()
    arrays = {"served_popularity": _served_popularity(probe.n_books)} if extra else None
    return fake_bundle(
        item_item=fake_item_item() if item_item else None, params=params, extra=arrays
    )


def _trainers(bundle: Bundle, fresh: dict[int, int], share: float) -> list[int]:
    """trainer/models/cold.py's lists for the same user on the bundle's arrays."""
    m = bundle.item_item
    ii = None
    if m is not None:
        ii = sp.csr_matrix((m.weights, m.indices, m.indptr), shape=(bundle.n_books,) * 2)
    params = ALSParams(
        alpha=bundle.als.alpha,
        scheme=bundle.als.scheme,
        regularization=bundle.als.regularization,
        min_rating=bundle.als.min_rating,
    )
    model = Personal(
        ALSModel(np.asarray(bundle.user_factors), np.asarray(bundle.item_factors)),
        params,
        np.asarray(bundle.item_in_als),
        ii,
        m.weight if m is not None else 1.0,
        m.candidates if m is not None else 200,
    )
    vector = _new_user_vector(bundle, fresh)
    v = np.zeros((1, bundle.item_factors.shape[1]), np.float32) if vector is None else vector[None]
    seen = np.array(sorted(fresh), np.int32)
    lists = shrink_lists(model, v, [seen], bundle.prior01, [np.array([share], np.float32)])
    return [int(i) for i in lists[0][0] if i >= 0]


@pytest.mark.parametrize("item_item", [False, True])
@pytest.mark.parametrize("k", [0.0, 2.0, 1e9])
def test_served_list_is_the_trainers(item_item: bool, k: float) -> None:
    bundle = _bundle(k, item_item)
    fresh = {bundle.book_row[b]: r for b, r in FRESH.items()}
    got = recommend(bundle, "stranger", 40, NONE, explain=True, new_ratings=FRESH)
    assert got.source is Source.HYBRID
    items = [s.item for s in got.items]
    want = _trainers(bundle, fresh, blend.shrink_weight(len(fresh), k))
    assert items[: len(want)] == want[:40]
    assert not set(fresh) & set(items)
    assert all(s.reasons for s in got.items)
    # Pages are slices of one list.
    page = recommend(bundle, "stranger", 7, NONE, False, offset=5, new_ratings=FRESH)
    assert [s.item for s in page.items] == items[5:12]


def test_share_goes_from_popularity_to_the_personal_list() -> None:
    fresh = {45: 9, 47: 10, 12: 8}
    rated = set(fresh)
    popular = _bundle(1e9, item_item=False)
    order = [int(i) for i in popular.prior_order if popular.item_in_als[i] and i not in rated]
    got = recommend(popular, "stranger", 10, NONE, False, new_ratings=FRESH)
    assert [s.item for s in got.items] == order[:10]
    personal = _bundle(0.0, item_item=False)
    before = _bundle(None, item_item=False)  # today's fold-in for the same user
    assert before.shrink_k is None
    got = recommend(personal, "stranger", 10, NONE, False, new_ratings=FRESH)
    old = recommend(before, "stranger", 10, NONE, False, new_ratings=FRESH)
    assert old.source is Source.ALS
    assert [s.item for s in got.items] == [s.item for s in old.items]


def test_batched_calls_answer_as_single_calls() -> None:
    for item_item in (False, True):
        bundle = _bundle(2.0, item_item)
        calls = [
            RecommendCall("stranger", 10, NONE, True, 0, FRESH),
            RecommendCall("u3", 10, NONE, False, 0, {"b45": 9}),
            RecommendCall("nobody", 10, NONE, False, 0, None),
            RecommendCall("other", 5, NONE, False, 3, {"b30": 10}),
            RecommendCall("low", 5, NONE, False, 0, {f"b{i}": 7 for i in range(20, 31)}),
        ]
        for call, got in zip(calls, recommend_many(bundle, calls), strict=True):
            want = recommend(
                bundle,
                call.user_id,
                call.k,
                call.filters,
                call.explain,
                call.offset,
                call.new_ratings,
            )
            assert not isinstance(got, Exception)
            assert got.items == want.items and got.source is want.source
            assert got.has_more == want.has_more


def test_cold_start_serves_the_chosen_popularity() -> None:
    bundle = _bundle(2.0, item_item=False)
    pop01 = _served_popularity(bundle.n_books)
    np.testing.assert_array_equal(bundle.prior01, pop01)
    plain = cold_start(bundle, [], None, 10, NONE, False)
    assert plain.source is Source.POPULARITY
    assert [s.item for s in plain.items] == np.argsort(-pop01, kind="stable")[:10].tolist()
    subjects = [bundle.subject_ids[0], bundle.subject_ids[3]]
    one = cold_start(bundle, subjects, None, 10, NONE, False)
    many = cold_start_many(bundle, [ColdStartCall(tuple(subjects), None, 10, NONE, False)])
    assert not isinstance(many[0], Exception) and many[0].items == one.items
    old = _bundle(None, item_item=False, extra=False)
    np.testing.assert_array_equal(old.prior01, cold_score.rescale_prior(old.popularity))


@pytest.mark.parametrize(
    ("params", "extra", "message"),
    [
        ({"new_user_shrink_k": -1.0}, None, "not a number >= 0"),
        ({"new_user_shrink_k": "two"}, None, "not a number >= 0"),
        ({"new_user_shrink_k": True}, None, "not a number >= 0"),
        ({"new_user_shrink_k": float("inf")}, None, "not a number >= 0"),
        ({}, {"served_popularity": np.full(3, 0.5, np.float32)}, "has shape"),
        ({}, "above one", "outside [0, 1]"),
    ],
)
def test_bad_new_user_fields_are_refused(params: dict[str, Any], extra: Any, message: str) -> None:
    n = fake_bundle().n_books
    if extra == "above one":
        extra = {"served_popularity": np.full(n, 1.5, np.float32)}
    with pytest.raises(ArtifactError, match=message.replace("[", r"\[").replace("]", r"\]")):
        fake_bundle(params=params, extra=extra)


@pytest.mark.timeout(900)  # the session's tiny artifact may be trained here
def test_trained_artifact_serves_its_learned_shrink(tiny_artifact: Path, tmp_path: Path) -> None:
    manifest = read_manifest(tiny_artifact)
    k = manifest.params["new_user_shrink_k"]
    assert isinstance(k, float) and k >= 0
    assert manifest.params["popularity_form"] in ("counts", "recent", "prior")
    assert manifest.params["popularity_form"] == manifest.metrics["popularity_form"]["chosen"]
    assert "served_popularity.npy" in manifest.files
    assert set(manifest.metrics["new_users"]["journeys"]) >= {"n=1", "n=3", "n=5", "n=10"}
    bundle = Bundle.open(tiny_artifact)
    assert bundle.shrink_k == k
    books = [bundle.book_ids[int(i)] for i in bundle.prior_order[100:103]]
    fresh = dict.fromkeys(books, 10)
    want = recommend(bundle, "new-reader", 20, NONE, False, new_ratings=fresh)
    assert want.source is Source.HYBRID
    with running_server(tiny_artifact.parent, tmp_path) as srv:
        channel = own_connection(srv.target)
        feedback = FeedbackServiceStub(channel)
        for book in books:
            rate = feedback_pb2.RateBookRequest(user_id="new-reader", book_id=book, rating=10)
            assert feedback.RateBook(rate).accepted
        reply = RecommenderServiceStub(channel).Recommend(
            recommender_pb2.RecommendRequest(user_id="new-reader", k=20)
        )
        channel.close()
        assert srv.stop() == 0
    assert reply.source == common_pb2.SOURCE_HYBRID
    assert [i.book.book_id for i in reply.items] == [bundle.book_ids[s.item] for s in want.items]
