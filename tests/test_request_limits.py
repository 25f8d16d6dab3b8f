"""Every request field that drives work is bounded (server/limits.py), against a real
server on loopback: one past the bound is INVALID_ARGUMENT whose message names the
bound and whose google.rpc.BadRequest names the field; the bound itself is served."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2

from bookrec.v1 import admin_pb2, catalog_pb2, common_pb2, feedback_pb2, recommender_pb2
from bookrec.v1.admin_pb2_grpc import AdminServiceStub
from bookrec.v1.catalog_pb2_grpc import CatalogServiceStub
from bookrec.v1.feedback_pb2_grpc import FeedbackServiceStub
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub
from server import limits
from server.engine import paging
from server.engine.errors import InvalidArgument
from server.engine.types import Filters
from server.handlers.recommender import _within_depth
from tests.fault_table import record_fault
from tests.serverproc import ServerProcess, running_server
from tests.test_hostile_input import assert_no_traceback, assert_short_invalid, error_of

TOKEN = "limits-admin-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


@dataclass(frozen=True)
class Ids:
    user: str
    books: list[str]
    subjects: list[str]
    version: str


@dataclass(frozen=True)
class Stubs:
    rec: RecommenderServiceStub
    cat: CatalogServiceStub
    feedback: FeedbackServiceStub
    admin: AdminServiceStub


@pytest.fixture(scope="module")
def server(
    tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    work = tmp_path_factory.mktemp("limits")
    with running_server(tiny_artifact.parent, work, admin_token=TOKEN) as srv:
        srv.wait_health(health_pb2.HealthCheckResponse.SERVING)
        yield srv


@pytest.fixture(scope="module")
def stubs(channel: grpc.Channel) -> Stubs:
    return Stubs(
        RecommenderServiceStub(channel),
        CatalogServiceStub(channel),
        FeedbackServiceStub(channel),
        AdminServiceStub(channel),
    )


@pytest.fixture(scope="module")
def ids(tiny_artifact: Path, stubs: Stubs) -> Ids:
    warmup = json.loads((tiny_artifact / "warmup.json").read_text())
    books = stubs.cat.SearchBooks(catalog_pb2.SearchBooksRequest(page_size=100)).books
    subjects = stubs.cat.ListSubjects(catalog_pb2.ListSubjectsRequest(page_size=1000)).subjects
    return Ids(
        warmup["user_ids"][0],
        [b.book_id for b in books],
        [s.subject_id for s in subjects],
        tiny_artifact.name,
    )


def _filters(**fields: Any) -> common_pb2.Filters:
    return common_pb2.Filters(**fields)


def _over_limit_calls(s: Stubs, ids: Ids) -> dict[str, tuple[str, int, Callable[[], Any]]]:
    """label -> (field named in the error, the bound its message names, the call)."""
    over_id = "x" * (limits.MAX_ID_CHARS + 1)
    long_subject = "s" * (limits.MAX_SUBJECT_TEXT + 1)
    many_excluded = [f"b{i}" for i in range(limits.MAX_EXCLUDE_IDS + 1)]
    many_subjects = [f"s{i}" for i in range(limits.MAX_FILTER_SUBJECTS + 1)]
    rec, cat = recommender_pb2, catalog_pb2
    deep = paging.make_token(
        ids.version, f"recommend|{ids.user}|{Filters().key()}", limits.MAX_RECOMMEND_DEPTH
    )
    words = " ".join(f"w{i}" for i in range(limits.MAX_QUERY_WORDS + 1))
    return {
        "Recommend user_id": (
            "user_id",
            limits.MAX_ID_CHARS,
            lambda: s.rec.Recommend(rec.RecommendRequest(user_id=over_id)),
        ),
        "Recommend k": (
            "k",
            limits.MAX_K,
            lambda: s.rec.Recommend(rec.RecommendRequest(user_id=ids.user, k=limits.MAX_K + 1)),
        ),
        "Recommend filters.exclude_book_ids": (
            "filters.exclude_book_ids",
            limits.MAX_EXCLUDE_IDS,
            lambda: s.rec.Recommend(
                rec.RecommendRequest(
                    user_id=ids.user, filters=_filters(exclude_book_ids=many_excluded)
                )
            ),
        ),
        "Recommend filters.exclude_book_ids[i]": (
            "filters.exclude_book_ids[1]",
            limits.MAX_ID_CHARS,
            lambda: s.rec.Recommend(
                rec.RecommendRequest(
                    user_id=ids.user, filters=_filters(exclude_book_ids=["b", over_id])
                )
            ),
        ),
        "Recommend filters.subject_ids": (
            "filters.subject_ids",
            limits.MAX_FILTER_SUBJECTS,
            lambda: s.rec.Recommend(
                rec.RecommendRequest(user_id=ids.user, filters=_filters(subject_ids=many_subjects))
            ),
        ),
        "Recommend page_token past the depth": (
            "page_token",
            limits.MAX_RECOMMEND_DEPTH,
            lambda: s.rec.Recommend(rec.RecommendRequest(user_id=ids.user, page_token=deep)),
        ),
        "Recommend page_token length": (
            "page_token",
            limits.MAX_PAGE_TOKEN_CHARS,
            lambda: s.rec.Recommend(
                rec.RecommendRequest(
                    user_id=ids.user, page_token="A" * (limits.MAX_PAGE_TOKEN_CHARS + 1)
                )
            ),
        ),
        "Similar book_id": (
            "book_id",
            limits.MAX_ID_CHARS,
            lambda: s.rec.Similar(rec.SimilarRequest(book_id=over_id)),
        ),
        "Similar k": (
            "k",
            limits.MAX_K,
            lambda: s.rec.Similar(rec.SimilarRequest(book_id=ids.books[0], k=limits.MAX_K + 1)),
        ),
        "Similar filters.subject_ids": (
            "filters.subject_ids",
            limits.MAX_FILTER_SUBJECTS,
            lambda: s.rec.Similar(
                rec.SimilarRequest(
                    book_id=ids.books[0], filters=_filters(subject_ids=many_subjects)
                )
            ),
        ),
        "Similar filters.subject_ids[i]": (
            "filters.subject_ids[0]",
            limits.MAX_SUBJECT_TEXT,
            lambda: s.rec.Similar(
                rec.SimilarRequest(
                    book_id=ids.books[0], filters=_filters(subject_ids=[long_subject])
                )
            ),
        ),
        "ColdStart favourite_subjects": (
            "favourite_subjects",
            limits.MAX_FAVOURITE_SUBJECTS,
            lambda: s.rec.ColdStart(
                rec.ColdStartRequest(
                    favourite_subjects=[ids.subjects[0]] * (limits.MAX_FAVOURITE_SUBJECTS + 1)
                )
            ),
        ),
        "ColdStart favourite_subjects[i]": (
            "favourite_subjects[1]",
            limits.MAX_SUBJECT_TEXT,
            lambda: s.rec.ColdStart(
                rec.ColdStartRequest(favourite_subjects=[ids.subjects[0], long_subject])
            ),
        ),
        "ColdStart k": (
            "k",
            limits.MAX_K,
            lambda: s.rec.ColdStart(rec.ColdStartRequest(k=limits.MAX_K + 1)),
        ),
        "ColdStart filters.exclude_book_ids": (
            "filters.exclude_book_ids",
            limits.MAX_EXCLUDE_IDS,
            lambda: s.rec.ColdStart(
                rec.ColdStartRequest(filters=_filters(exclude_book_ids=many_excluded))
            ),
        ),
        "SearchBooks query characters": (
            "query",
            limits.MAX_QUERY_CHARS,
            lambda: s.cat.SearchBooks(
                cat.SearchBooksRequest(query="q" * (limits.MAX_QUERY_CHARS + 1))
            ),
        ),
        "SearchBooks query words": (
            "query",
            limits.MAX_QUERY_WORDS,
            lambda: s.cat.SearchBooks(cat.SearchBooksRequest(query=words)),
        ),
        "SearchBooks page_size": (
            "page_size",
            limits.MAX_SEARCH_PAGE,
            lambda: s.cat.SearchBooks(cat.SearchBooksRequest(page_size=limits.MAX_SEARCH_PAGE + 1)),
        ),
        "SearchBooks filters.exclude_book_ids": (
            "filters.exclude_book_ids",
            limits.MAX_EXCLUDE_IDS,
            lambda: s.cat.SearchBooks(
                cat.SearchBooksRequest(filters=_filters(exclude_book_ids=many_excluded))
            ),
        ),
        "SearchBooks filters.subject_ids": (
            "filters.subject_ids",
            limits.MAX_FILTER_SUBJECTS,
            lambda: s.cat.SearchBooks(
                cat.SearchBooksRequest(filters=_filters(subject_ids=many_subjects))
            ),
        ),
        "ListSubjects query": (
            "query",
            limits.MAX_SUBJECT_TEXT,
            lambda: s.cat.ListSubjects(
                cat.ListSubjectsRequest(query="q" * (limits.MAX_SUBJECT_TEXT + 1))
            ),
        ),
        "ListSubjects page_size": (
            "page_size",
            limits.MAX_SUBJECT_PAGE,
            lambda: s.cat.ListSubjects(
                cat.ListSubjectsRequest(page_size=limits.MAX_SUBJECT_PAGE + 1)
            ),
        ),
        "GetBook book_id": (
            "book_id",
            limits.MAX_ID_CHARS,
            lambda: s.cat.GetBook(cat.GetBookRequest(book_id=over_id)),
        ),
        "RateBook user_id": (
            "user_id",
            limits.MAX_ID_CHARS,
            lambda: s.feedback.RateBook(
                feedback_pb2.RateBookRequest(user_id=over_id, book_id=ids.books[0], rating=5)
            ),
        ),
        "RateBook book_id": (
            "book_id",
            limits.MAX_ID_CHARS,
            lambda: s.feedback.RateBook(
                feedback_pb2.RateBookRequest(user_id="u", book_id=over_id, rating=5)
            ),
        ),
        "PinVersion version": (
            "version",
            limits.MAX_ID_CHARS,
            lambda: s.admin.PinVersion(admin_pb2.PinVersionRequest(version=over_id), metadata=AUTH),
        ),
    }


# Every label _over_limit_calls has; a test per bounded field (checked equal below).
LABELS = (
    "Recommend user_id",
    "Recommend k",
    "Recommend filters.exclude_book_ids",
    "Recommend filters.exclude_book_ids[i]",
    "Recommend filters.subject_ids",
    "Recommend page_token past the depth",
    "Recommend page_token length",
    "Similar book_id",
    "Similar k",
    "Similar filters.subject_ids",
    "Similar filters.subject_ids[i]",
    "ColdStart favourite_subjects",
    "ColdStart favourite_subjects[i]",
    "ColdStart k",
    "ColdStart filters.exclude_book_ids",
    "SearchBooks query characters",
    "SearchBooks query words",
    "SearchBooks page_size",
    "SearchBooks filters.exclude_book_ids",
    "SearchBooks filters.subject_ids",
    "ListSubjects query",
    "ListSubjects page_size",
    "GetBook book_id",
    "RateBook user_id",
    "RateBook book_id",
    "PinVersion version",
)


def test_every_bounded_field_has_a_case(stubs: Stubs, ids: Ids) -> None:
    assert tuple(_over_limit_calls(stubs, ids)) == LABELS


@pytest.mark.parametrize("label", LABELS)
def test_a_field_past_its_bound_is_invalid_argument_naming_it(
    label: str, stubs: Stubs, ids: Ids, server: ServerProcess
) -> None:
    field, bound, call = _over_limit_calls(stubs, ids)[label]
    error = error_of(call)
    assert_short_invalid(error, field)
    assert str(bound) in (error.details() or ""), error.details()
    assert_no_traceback(server)
    record_fault(
        f"{label} one past its bound ({bound})",
        f"INVALID_ARGUMENT naming the bound, BadRequest field {field}; nothing computed",
    )


def test_the_bounds_themselves_are_served(stubs: Stubs, ids: Ids) -> None:
    """At the bound, not past it: the calls answer OK."""
    some = ids.books[: min(len(ids.books), 5)]
    excluded = [*some, *(f"b{i}" for i in range(limits.MAX_EXCLUDE_IDS - len(some)))]
    filters = _filters(
        exclude_book_ids=excluded, subject_ids=ids.subjects[: limits.MAX_FILTER_SUBJECTS]
    )
    reply = stubs.rec.Recommend(
        recommender_pb2.RecommendRequest(user_id=ids.user, k=limits.MAX_K, filters=filters)
    )
    assert not {i.book.book_id for i in reply.items} & set(some)
    favourites = ids.subjects[: limits.MAX_FAVOURITE_SUBJECTS]
    stubs.rec.ColdStart(recommender_pb2.ColdStartRequest(favourite_subjects=favourites))
    query = " ".join(["a"] * limits.MAX_QUERY_WORDS)
    stubs.cat.SearchBooks(catalog_pb2.SearchBooksRequest(query=query, filters=filters))
    stubs.cat.SearchBooks(catalog_pb2.SearchBooksRequest(query="e" * limits.MAX_QUERY_CHARS))
    stubs.cat.ListSubjects(catalog_pb2.ListSubjectsRequest(query="e" * limits.MAX_SUBJECT_TEXT))


def test_recommend_pages_through_to_the_end_with_ranks_in_order(stubs: Stubs, ids: Ids) -> None:
    """Paging still works under the depth bound (the tiny catalogue is shorter than it)."""
    token, seen = "", 0
    while True:
        page = stubs.rec.Recommend(
            recommender_pb2.RecommendRequest(user_id=ids.user, k=limits.MAX_K, page_token=token)
        )
        assert [i.rank for i in page.items] == list(range(seen + 1, seen + len(page.items) + 1))
        seen += len(page.items)
        token = page.next_page_token
        if not token:
            break
    assert 0 < seen <= limits.MAX_RECOMMEND_DEPTH


def test_the_last_page_before_the_depth_bound_is_cut_short() -> None:
    depth = limits.MAX_RECOMMEND_DEPTH
    assert _within_depth(0, 100) == 100
    assert _within_depth(depth - 30, 100) == 30
    with pytest.raises(InvalidArgument, match=f"lists end at {depth} books") as info:
        _within_depth(depth, 10)
    assert info.value.field == "page_token"


@pytest.mark.parametrize("page", ["docs/serving.md", "docs/clients.md"])
def test_the_docs_list_every_bound(page: str) -> None:
    text = (Path(__file__).resolve().parents[1] / page).read_text()
    rows = {line.strip() for line in text.splitlines()}
    missing = [row for row in limits.TABLE if f"| {row[0]} | {row[1]} | {row[2]} |" not in rows]
    assert not missing, f"{page} lacks these rows of server/limits.py's TABLE: {missing}"
