"""Real-time fold-in: the solve matches implicit's, the overlay tails the shared log,
and rating books of a series lifts the rest of that series without retraining."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from bookrec.v1 import feedback_pb2, recommender_pb2
from bookrec.v1.feedback_pb2_grpc import FeedbackServiceStub
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub
from server.engine.bundle import Bundle
from server.engine.foldin import MAX_FOLDED_RATINGS, RatingsOverlay, fold_in
from server.engine.recommend import _user_vector
from server.engine.scan import gram_and_finite
from tests.serverproc import own_connection, running_server


def test_fold_in_is_implicits_exact_user_solve() -> None:
    from implicit.cpu.als import AlternatingLeastSquares

    rng = np.random.default_rng(0)
    items = rng.normal(size=(60, 8)).astype(np.float32)
    with threadpool_limits(1, "blas"):  # implicit warns (an error here) otherwise
        model = AlternatingLeastSquares(factors=8, regularization=0.5, use_cg=False)
    model.item_factors = items
    model.user_factors = np.zeros((1, 8), np.float32)
    rated = np.array([3, 7, 20, 41], np.int32)
    conf = np.array([2.0, 5.0, 11.0, 1.5], np.float32)
    row = sp.csr_matrix((conf, (np.zeros(4, int), rated)), shape=(1, 60))
    expected = model.recalculate_user(0, row)
    got = fold_in(items, gram_and_finite(items)[0], 0.5, rated, conf)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def _line(user: str, book: str, rating: int) -> str:
    return json.dumps({"user_id": user, "book_id": book, "rating": rating}) + "\n"


def test_overlay_tails_the_log_newest_rating_wins(tmp_path: Path) -> None:
    log = tmp_path / "ratings.jsonl"
    overlay = RatingsOverlay(log)
    overlay.refresh()  # no log yet: nothing, no error
    assert overlay.ratings_of("u") == {}
    log.write_text(_line("u", "b1", 3) + _line("v", "b1", 8))
    overlay.refresh()
    assert overlay.ratings_of("u") == {"b1": 3}
    with log.open("a") as f:  # a second rating of b1 and a line still being written
        f.write(_line("u", "b1", 9) + '{"user_id": "u", "book_')
    overlay.refresh()
    assert overlay.ratings_of("u") == {"b1": 9}
    with log.open("a") as f:
        f.write('id": "b2", "rating": 0}\nnot json\n')
    overlay.refresh()
    assert overlay.ratings_of("u") == {"b1": 9, "b2": 0}
    replaced = tmp_path / "new.jsonl"  # rotation: a new file under the same name
    replaced.write_text(_line("w", "b3", 5))
    replaced.replace(log)
    overlay.refresh()
    assert overlay.ratings_of("u") == {}
    assert overlay.ratings_of("w") == {"b3": 5}


def test_overlay_keeps_a_users_newest_books_only(tmp_path: Path) -> None:
    """A call folds in at most MAX_FOLDED_RATINGS of a user's books, the newest: a key
    that rated thousands of books cannot make each of its Recommends cost more."""
    log = tmp_path / "ratings.jsonl"
    n = MAX_FOLDED_RATINGS
    lines = [_line("u", f"b{i}", 5) for i in range(n + 50)]
    lines.append(_line("u", "b60", 7))  # re-rated: now the newest, so it stays
    log.write_text("".join(lines) + _line("v", "b0", 1))
    overlay = RatingsOverlay(log)
    overlay.refresh()
    kept = overlay.ratings_of("u")
    assert len(kept) == n
    assert "b49" not in kept and "b50" in kept and f"b{n + 49}" in kept
    assert kept["b60"] == 7 and list(kept)[-1] == "b60"
    assert overlay.ratings_of("v") == {"b0": 1}


def _series_probe(bundle: Bundle) -> tuple[str, list[str], list[int]]:
    """A served user and a series of >= 4 ALS books they never rated: (user, two books to
    rate, rows of the rest)."""
    series: dict[str, list[int]] = defaultdict(list)
    for i in range(bundle.n_books):
        if bundle.series[i] and bundle.item_in_als[i]:
            series[bundle.series[i]].append(i)
    big = [rows for rows in series.values() if len(rows) >= 4]
    assert big, "the tiny demo set plants series"
    for user_id, user in sorted(bundle.user_row.items())[:50]:
        rated = set(bundle.rated_items(user).tolist())
        for rows in big:
            if not rated & set(rows):
                return user_id, [bundle.book_ids[r] for r in rows[:2]], rows[2:]
    raise AssertionError("no user without any book of a series")


def _ranks(bundle: Bundle, vector: np.ndarray, rows: list[int]) -> list[int]:
    order = np.argsort(-(np.asarray(bundle.item_factors) @ vector), kind="stable")
    position = np.empty(bundle.n_books, dtype=np.int64)
    position[order] = np.arange(bundle.n_books)
    return [int(position[r]) for r in rows]


def test_rating_a_series_lifts_the_rest_of_it(tiny_artifact: Path) -> None:
    bundle = Bundle.open(tiny_artifact)
    user_id, to_rate, rest = _series_probe(bundle)
    user = bundle.user_row[user_id]
    before, _ = _user_vector(bundle, user, {})
    rows = [bundle.book_row[b] for b in to_rate]
    after, rated = _user_vector(bundle, user, dict.fromkeys(rows, 10))
    assert set(rows) <= set(rated.tolist())
    ranks_before, ranks_after = _ranks(bundle, before, rest), _ranks(bundle, after, rest)
    assert np.median(ranks_after) < 0.5 * np.median(ranks_before), (ranks_before, ranks_after)


@pytest.mark.timeout(120)
def test_rate_book_changes_the_next_recommend_on_every_worker(
    tiny_artifact: Path, tmp_path: Path
) -> None:
    bundle = Bundle.open(tiny_artifact)
    user_id, to_rate, rest = _series_probe(bundle)
    rest_ids = {bundle.book_ids[r] for r in rest}

    def positions(reply: recommender_pb2.RecommendResponse) -> list[int]:
        ids = [i.book.book_id for i in reply.items]
        return sorted(ids.index(b) if b in ids else len(ids) for b in rest_ids)

    with running_server(tiny_artifact.parent, tmp_path, workers=2) as srv:
        # Separate channels land on either worker: the rating must reach both.
        channels = [own_connection(srv.target) for _ in range(6)]
        request = recommender_pb2.RecommendRequest(user_id=user_id, k=100)
        before = [RecommenderServiceStub(ch).Recommend(request) for ch in channels]
        feedback = FeedbackServiceStub(channels[0])
        for book in to_rate:
            assert feedback.RateBook(
                feedback_pb2.RateBookRequest(user_id=user_id, book_id=book, rating=10)
            ).accepted
        after = [RecommenderServiceStub(ch).Recommend(request) for ch in channels]
        for ch in channels:
            ch.close()
        assert srv.stop() == 0
    for old, new in zip(before, after, strict=True):
        returned = {i.book.book_id for i in new.items}
        assert not returned & set(to_rate), "rated books are never recommended"
        assert positions(new)[0] < positions(old)[0], (positions(old), positions(new))
        assert sum(positions(new)) < sum(positions(old))
