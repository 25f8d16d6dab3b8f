"""End to end over loopback: tiny demo data -> train -> real server -> every RPC."""

from __future__ import annotations

import csv
import json
import shutil
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from bookrec.artifact import load_strings, read_manifest
from bookrec.v1 import catalog_pb2, common_pb2, feedback_pb2, recommender_pb2
from bookrec.v1.catalog_pb2_grpc import CatalogServiceStub
from bookrec.v1.feedback_pb2_grpc import FeedbackServiceStub
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub
from tests.serverproc import ServerProcess, ready_server, running_server
from trainer.cleaning.isbn import normalize_isbn


@pytest.fixture(scope="module")
def server(
    tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with ready_server(tiny_artifact.parent, tmp_path_factory.mktemp("e2e")) as srv:
        yield srv


@pytest.fixture(scope="module")
def rated_isbns(tiny_data: Path) -> dict[str, set[str]]:
    """Every user's rated ISBNs, read straight from the raw file."""
    out: dict[str, set[str]] = defaultdict(set)
    with (tiny_data / "BX-Book-Ratings.csv").open(encoding="latin-1", newline="") as f:
        rows = csv.reader(f, delimiter=";", quotechar='"')
        next(rows)
        for row in rows:
            if len(row) == 3 and (isbn := normalize_isbn(row[1])):
                out[row[0]].add(isbn)
    return out


@pytest.fixture(scope="module")
def served_users(tiny_artifact: Path, rated_isbns: dict[str, set[str]]) -> list[str]:
    """Users the model has history for (cold users held out by the split are not)."""
    users = load_strings(tiny_artifact, read_manifest(tiny_artifact), "user_ids").to_list()
    return sorted(u for u in users if len(rated_isbns[u]) >= 5)


def all_books(cat: CatalogServiceStub) -> list[common_pb2.Book]:
    books: list[common_pb2.Book] = []
    token = ""
    while True:
        page = cat.SearchBooks(catalog_pb2.SearchBooksRequest(page_size=100, page_token=token))
        books.extend(page.books)
        token = page.next_page_token
        if not token:
            return books


def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    code: grpc.StatusCode = info.value.code()
    return code


def test_model_version_is_the_manifests(
    rec: RecommenderServiceStub, cat: CatalogServiceStub, tiny_artifact: Path
) -> None:
    version = read_manifest(tiny_artifact).model_version
    books = cat.SearchBooks(catalog_pb2.SearchBooksRequest(page_size=1))
    assert books.model_version == version
    cold = rec.ColdStart(recommender_pb2.ColdStartRequest())
    assert cold.model_version == version
    assert cold.source == common_pb2.SOURCE_POPULARITY


def test_recommend_never_returns_a_rated_book(
    rec: RecommenderServiceStub,
    rated_isbns: dict[str, set[str]],
    served_users: list[str],
    tiny_artifact: Path,
) -> None:
    manifest = read_manifest(tiny_artifact)
    version = manifest.model_version
    # The server serves what the trainer evaluated and chose.
    expected_source = (
        common_pb2.SOURCE_ALS_RERANKED
        if manifest.metrics["served"].endswith("+reranker")
        else common_pb2.SOURCE_ALS
    )
    users = served_users[:40]
    assert len(users) == 40
    for user in users:
        reply = rec.Recommend(recommender_pb2.RecommendRequest(user_id=user, k=50))
        assert reply.model_version == version
        assert reply.source == expected_source
        assert len(reply.items) == 50
        returned = {isbn for item in reply.items for isbn in item.book.isbns}
        assert not returned & rated_isbns[user], user
        assert [i.rank for i in reply.items] == list(range(1, 51))
        scores = [i.score for i in reply.items]
        assert scores == sorted(scores, reverse=True)


def test_recommend_pages_continue_without_overlap(
    rec: RecommenderServiceStub, served_users: list[str]
) -> None:
    user = served_users[0]
    whole = rec.Recommend(recommender_pb2.RecommendRequest(user_id=user, k=30))
    first = rec.Recommend(recommender_pb2.RecommendRequest(user_id=user, k=15))
    second = rec.Recommend(
        recommender_pb2.RecommendRequest(user_id=user, k=15, page_token=first.next_page_token)
    )
    paged = [i.book.book_id for i in [*first.items, *second.items]]
    assert paged == [i.book.book_id for i in whole.items]
    assert second.items[0].rank == 16


def test_recommend_explains_with_rated_books(
    rec: RecommenderServiceStub, served_users: list[str]
) -> None:
    user = served_users[0]
    reply = rec.Recommend(recommender_pb2.RecommendRequest(user_id=user, k=5, explain=True))
    for item in reply.items:
        kinds = [r.kind for r in item.reasons]
        assert common_pb2.REASON_KIND_SIMILAR_TO_RATED in kinds
        assert all(r.text for r in item.reasons)


def test_similar_als_finds_series_siblings_far_above_chance(
    rec: RecommenderServiceStub, cat: CatalogServiceStub
) -> None:
    books = all_books(cat)
    series: dict[str, list[common_pb2.Book]] = defaultdict(list)
    for b in books:
        if b.series and b.rating_count >= 5:
            series[b.series].append(b)
    queries = [(name, vols) for name, vols in sorted(series.items()) if len(vols) >= 3]
    assert len(queries) >= 5, "the tiny set should plant several series"
    hits = total = 0
    for _, vols in queries:
        query = vols[0]
        reply = rec.Similar(recommender_pb2.SimilarRequest(book_id=query.book_id, k=10))
        assert reply.source == common_pb2.SOURCE_ALS
        top = {i.book.book_id for i in reply.items}
        assert query.book_id not in top
        siblings = {v.book_id for v in vols[1:]}
        hits += len(top & siblings)
        total += min(len(siblings), 10)
    recall = hits / total
    chance = 10 / len(books)
    assert recall >= 0.5, recall
    assert recall > 10 * chance


def test_similar_subject_and_hybrid_modes(
    rec: RecommenderServiceStub, cat: CatalogServiceStub
) -> None:
    book = next(b for b in all_books(cat) if b.subjects and b.rating_count >= 5)
    subj = rec.Similar(
        recommender_pb2.SimilarRequest(
            book_id=book.book_id, k=10, mode=recommender_pb2.SIMILAR_MODE_SUBJECT, explain=True
        )
    )
    assert subj.source == common_pb2.SOURCE_SUBJECT
    query_subjects = {s.subject_id for s in book.subjects}
    for item in subj.items:
        assert query_subjects & {s.subject_id for s in item.book.subjects}
    hybrid = rec.Similar(
        recommender_pb2.SimilarRequest(
            book_id=book.book_id, k=10, mode=recommender_pb2.SIMILAR_MODE_HYBRID, weight=0.5
        )
    )
    assert hybrid.source == common_pb2.SOURCE_HYBRID
    assert len(hybrid.items) == 10
    # weight 0 is pure subject similarity: the same scores as SUBJECT mode.
    pure = rec.Similar(
        recommender_pb2.SimilarRequest(
            book_id=book.book_id, k=10, mode=recommender_pb2.SIMILAR_MODE_HYBRID, weight=0.0
        )
    )
    assert [round(i.score, 5) for i in pure.items] == [round(i.score, 5) for i in subj.items]


def test_cold_start_for_a_subject_returns_books_of_that_subject(
    rec: RecommenderServiceStub, cat: CatalogServiceStub
) -> None:
    subjects = cat.ListSubjects(catalog_pb2.ListSubjectsRequest()).subjects
    assert len(subjects) >= 5
    for subject in subjects[:5]:
        for name in (subject.subject_id, subject.name.upper()):  # ids or names, any case
            reply = rec.ColdStart(
                recommender_pb2.ColdStartRequest(
                    favourite_subjects=[name], popularity_weight=0.2, k=10, explain=True
                )
            )
            assert reply.source == common_pb2.SOURCE_COLD_START
            assert len(reply.items) == 10
            for item in reply.items:
                assert subject.subject_id in {s.subject_id for s in item.book.subjects}
                assert item.reasons[0].kind == common_pb2.REASON_KIND_FAVOURITE_SUBJECT


def test_cold_start_takes_a_subject_as_the_data_spells_it(
    rec: RecommenderServiceStub, cat: CatalogServiceStub
) -> None:
    """The demo data's "Children's books" is the subject ``childrens-books``: the trainer's
    normalisation (bookrec/subject_names.py) resolves every spelling of it on the server."""
    found = cat.ListSubjects(catalog_pb2.ListSubjectsRequest(query="children")).subjects
    subject = next(s for s in found if s.subject_id == "childrens-books")

    def books(name: str) -> list[str]:
        request = recommender_pb2.ColdStartRequest(
            favourite_subjects=[name], popularity_weight=0.2, k=10
        )
        return [i.book.book_id for i in rec.ColdStart(request).items]

    expected = books(subject.subject_id)
    assert len(expected) == 10
    for name in ("Children's books", "CHILDREN\u2019S BOOKS", "childrens books", subject.name):
        assert books(name) == expected, name
    with pytest.raises(grpc.RpcError) as info:
        books("Childrens boks " + "x" * 10_000)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(info.value.details() or "") < 400


def test_filters_apply(rec: RecommenderServiceStub, cat: CatalogServiceStub) -> None:
    subject = cat.ListSubjects(catalog_pb2.ListSubjectsRequest()).subjects[0]
    reply = rec.ColdStart(
        recommender_pb2.ColdStartRequest(
            k=20,
            filters=common_pb2.Filters(subject_ids=[subject.subject_id], min_year=1990),
        )
    )
    assert reply.items
    for item in reply.items:
        assert item.book.year >= 1990
        assert subject.subject_id in {s.subject_id for s in item.book.subjects}
    first = reply.items[0].book.book_id
    again = rec.ColdStart(
        recommender_pb2.ColdStartRequest(
            k=20,
            filters=common_pb2.Filters(
                subject_ids=[subject.subject_id], min_year=1990, exclude_book_ids=[first]
            ),
        )
    )
    assert first not in {i.book.book_id for i in again.items}


def test_catalog_get_and_search(cat: CatalogServiceStub) -> None:
    books = all_books(cat)
    assert len({b.book_id for b in books}) == len(books)
    some = books[0]
    got = cat.GetBook(catalog_pb2.GetBookRequest(book_id=some.book_id)).book
    assert got == some
    word = some.title.split()[-1]
    found = cat.SearchBooks(catalog_pb2.SearchBooksRequest(query=word.lower(), page_size=100))
    assert some.book_id in {b.book_id for b in found.books}
    assert all(word.lower() in f"{b.title} {b.author}".lower() for b in found.books)


def test_bad_requests_get_precise_status_codes(
    rec: RecommenderServiceStub, cat: CatalogServiceStub, channel: grpc.Channel
) -> None:
    nf, bad = grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT
    book = cat.SearchBooks(catalog_pb2.SearchBooksRequest(page_size=1)).books[0].book_id
    assert code_of(lambda: cat.GetBook(catalog_pb2.GetBookRequest(book_id="no-such"))) == nf
    assert code_of(lambda: rec.Similar(recommender_pb2.SimilarRequest(book_id="no-such"))) == nf
    for k in (-1, 101):
        assert (
            code_of(lambda k=k: rec.Similar(recommender_pb2.SimilarRequest(book_id=book, k=k)))
            == bad
        )
    assert code_of(lambda: rec.Recommend(recommender_pb2.RecommendRequest(user_id=""))) == bad
    assert (
        code_of(
            lambda: rec.Similar(
                recommender_pb2.SimilarRequest(
                    book_id=book, mode=recommender_pb2.SIMILAR_MODE_HYBRID, weight=1.5
                )
            )
        )
        == bad
    )
    assert (
        code_of(lambda: rec.ColdStart(recommender_pb2.ColdStartRequest(popularity_weight=-0.1)))
        == bad
    )
    with pytest.raises(grpc.RpcError) as info:
        rec.ColdStart(recommender_pb2.ColdStartRequest(favourite_subjects=["no such subject"]))
    assert info.value.code() == bad
    assert "ListSubjects" in (info.value.details() or "")
    token_bad = recommender_pb2.RecommendRequest(user_id="x", page_token="garbage")
    assert code_of(lambda: rec.Recommend(token_bad)) == bad


def test_rate_book_is_recorded_durably(
    channel: grpc.Channel, cat: CatalogServiceStub, server: ServerProcess
) -> None:
    fb = FeedbackServiceStub(channel)
    book = cat.SearchBooks(catalog_pb2.SearchBooksRequest(page_size=1)).books[0].book_id
    reply = fb.RateBook(feedback_pb2.RateBookRequest(user_id="new-reader", book_id=book, rating=9))
    assert reply.accepted
    log_path = server.feedback_log
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert {"user_id": "new-reader", "book_id": book, "rating": 9}.items() <= records[-1].items()
    bad = feedback_pb2.RateBookRequest(user_id="new-reader", book_id=book, rating=11)
    assert code_of(lambda: fb.RateBook(bad)) == grpc.StatusCode.INVALID_ARGUMENT
    unknown = feedback_pb2.RateBookRequest(user_id="new-reader", book_id="no-such", rating=3)
    assert code_of(lambda: fb.RateBook(unknown)) == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_every_service(channel: grpc.Channel) -> None:
    stub: Any = reflection_pb2_grpc.ServerReflectionStub(channel)  # stubs lack the RPCs
    replies = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    names = {s.name for r in replies for s in r.list_services_response.service}
    assert {
        "bookrec.v1.RecommenderService",
        "bookrec.v1.CatalogService",
        "bookrec.v1.FeedbackService",
        "grpc.health.v1.Health",
    } <= names


def test_unavailable_until_a_model_is_published_then_serving(
    tiny_artifact: Path, tmp_path: Path
) -> None:
    root = tmp_path / "artifacts"
    root.mkdir()
    with running_server(root, tmp_path) as srv:
        srv.wait_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        with grpc.insecure_channel(srv.target) as ch:
            stub = RecommenderServiceStub(ch)
            assert code_of(lambda: stub.ColdStart(recommender_pb2.ColdStartRequest())) == (
                grpc.StatusCode.UNAVAILABLE
            )
            # Publish the way the trainer does: complete under a hidden name, then rename.
            shutil.copytree(tiny_artifact, root / f".tmp-{tiny_artifact.name}")
            (root / f".tmp-{tiny_artifact.name}").rename(root / tiny_artifact.name)
            srv.wait_health(health_pb2.HealthCheckResponse.SERVING)
            assert stub.ColdStart(recommender_pb2.ColdStartRequest()).model_version == (
                tiny_artifact.name
            )
        assert srv.stop() == 0


def test_sigterm_stops_the_process_cleanly(tiny_artifact: Path, tmp_path: Path) -> None:
    with running_server(tiny_artifact.parent, tmp_path) as srv:
        srv.wait_health(health_pb2.HealthCheckResponse.SERVING)
        assert srv.stop() == 0
    events = [json.loads(line)["event"] for line in srv.log.read_text().splitlines()]
    assert events[-3:] == ["stopping: draining in-flight calls", "drained", "stopped"]


def test_compiled_reranker_answers_as_lightgbm_does(
    artifact_root: Path, tmp_path: Path, served_users: list[str]
) -> None:
    """The server compiles the reranker's trees (gcc) and serves the lists LightGBM's
    own predict gives, score for score."""
    replies: dict[str, list[list[tuple[str, float]]]] = {}
    for flag in ("--compile-reranker", "--no-compile-reranker"):
        with running_server(artifact_root, tmp_path / flag, extra_args=(flag,)) as srv:
            srv.wait_health(health_pb2.HealthCheckResponse.SERVING)
            with grpc.insecure_channel(srv.target) as ch:
                stub = RecommenderServiceStub(ch)
                replies[flag] = []
                for user in served_users[:5]:
                    reply = stub.Recommend(recommender_pb2.RecommendRequest(user_id=user, k=10))
                    assert reply.source == common_pb2.SOURCE_ALS_RERANKED
                    replies[flag].append([(b.book.book_id, b.score) for b in reply.items])
            assert srv.stop() == 0
        available = [
            json.loads(line)
            for line in srv.log.read_text().splitlines()
            if '"model available"' in line
        ]
        want = "compiled" if flag == "--compile-reranker" else "lightgbm"
        assert [e["reranker"] for e in available] == [want]
    assert replies["--compile-reranker"] == replies["--no-compile-reranker"]
    assert all(replies["--compile-reranker"])
    assert list((artifact_root / ".cache").glob("reranker-*.so"))


def test_connections_recycled_by_age_lose_no_call(artifact_root: Path, tmp_path: Path) -> None:
    """--max-connection-age-seconds sends GOAWAY; the client reconnects, calls succeed."""
    import time

    args = ("--max-connection-age-seconds", "0.5")
    with running_server(artifact_root, tmp_path, extra_args=args) as srv:
        srv.wait_health(health_pb2.HealthCheckResponse.SERVING)
        states: list[grpc.ChannelConnectivity] = []
        with grpc.insecure_channel(srv.target) as ch:
            ch.subscribe(states.append)
            stub = RecommenderServiceStub(ch)
            calls, deadline = 0, time.monotonic() + 3.0
            while time.monotonic() < deadline:
                reply = stub.ColdStart(recommender_pb2.ColdStartRequest(k=3), timeout=5)
                assert len(reply.items) == 3
                calls += 1
            ch.unsubscribe(states.append)
        assert calls > 20
        # the server did close the connection by age, and the client came back
        assert states.count(grpc.ChannelConnectivity.READY) >= 2, states
        assert srv.stop() == 0
