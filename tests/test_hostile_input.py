"""Hostile input against a real server on loopback: malformed page tokens and huge
echoed values end INVALID_ARGUMENT with a short message, the field at fault in a
structured google.rpc.BadRequest, and no traceback in the server's log."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc.error_details_pb2 import BadRequest
from google.rpc.status_pb2 import Status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bookrec.v1 import catalog_pb2, common_pb2, recommender_pb2
from bookrec.v1.catalog_pb2_grpc import CatalogServiceStub
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub
from server.engine import paging
from server.engine.errors import MESSAGE_LIMIT, InvalidArgument
from tests.fault_table import record_fault
from tests.serverproc import ServerProcess, ready_server

BAD = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def server(
    tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with ready_server(tiny_artifact.parent, tmp_path_factory.mktemp("hostile")) as srv:
        yield srv


def error_of(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def bad_request(error: grpc.RpcError) -> BadRequest | None:
    """The BadRequest a client reads from ``grpc-status-details-bin``, as grpcio-status's
    ``rpc_status.from_call`` does (and its peers in other languages)."""
    raw = next(
        (m.value for m in error.trailing_metadata() or () if m.key == "grpc-status-details-bin"),
        None,
    )
    if not isinstance(raw, bytes):
        return None
    status = Status.FromString(raw)
    assert status.code == error.code().value[0]
    assert status.message == error.details()
    out = BadRequest()
    return out if any(detail.Unpack(out) for detail in status.details) else None


def assert_short_invalid(error: grpc.RpcError, field: str | None = None) -> None:
    """INVALID_ARGUMENT, a bounded message, and (when given) ``field`` in the details."""
    assert error.code() == BAD, error
    details = error.details() or ""
    assert details
    assert len(details) <= MESSAGE_LIMIT
    if field is not None:
        violations = bad_request(error)
        assert violations is not None, "no google.rpc.BadRequest in the trailers"
        assert [v.field for v in violations.field_violations] == [field]
        assert all(len(v.description) <= MESSAGE_LIMIT for v in violations.field_violations)


def assert_no_traceback(server: ServerProcess) -> None:
    log = server.log.read_text()
    assert "Traceback" not in log
    assert "unhandled error" not in log


def token_of(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


HOSTILE_TOKENS = {
    "Infinity offset": token_of(b'{"o": Infinity}'),
    "NaN offset": token_of(b'{"v": "x", "q": "y", "o": NaN}'),
    "1e400 offset": token_of(b'{"v": "x", "q": "y", "o": 1e400}'),
    "100k nested [": token_of(b"[" * 100_000),
    "100k nested {": token_of(b'{"a":' * 100_000),
    "a list": token_of(b"[1, 2, 3]"),
    "not base64": "%%%not base64%%%",
    "non-ASCII": "\u00e9\u00e8" * 10,
    "bad UTF-8": token_of(b"\xff\xfe\xfd"),
    "1 MB of base64": "A" * 1_000_000,
    "negative offset": token_of(b'{"v": "x", "q": "y", "o": -5}'),
    "bool offset": token_of(b'{"v": "x", "q": "y", "o": true}'),
}


def paged_calls(
    rec: RecommenderServiceStub, cat: CatalogServiceStub, token: str
) -> dict[str, Callable[[], Any]]:
    """Every RPC that reads a page_token, with ``token``."""
    return {
        "Recommend": lambda: rec.Recommend(
            recommender_pb2.RecommendRequest(user_id="someone", page_token=token), timeout=10
        ),
        "SearchBooks": lambda: cat.SearchBooks(
            catalog_pb2.SearchBooksRequest(page_token=token), timeout=10
        ),
        "ListSubjects": lambda: cat.ListSubjects(
            catalog_pb2.ListSubjectsRequest(page_token=token), timeout=10
        ),
    }


@pytest.mark.parametrize("name", sorted(HOSTILE_TOKENS))
def test_malformed_page_tokens_are_invalid_argument(
    name: str, rec: RecommenderServiceStub, cat: CatalogServiceStub, server: ServerProcess
) -> None:
    for rpc, call in paged_calls(rec, cat, HOSTILE_TOKENS[name]).items():
        error = error_of(call)
        assert_short_invalid(error, "page_token")
        assert "page_token" in (error.details() or ""), rpc
    assert_no_traceback(server)
    record_fault(
        f"page_token: {name} (Recommend, SearchBooks, ListSubjects)",
        "INVALID_ARGUMENT, short message, BadRequest field page_token; no traceback",
    )


def test_a_real_token_still_pages(cat: CatalogServiceStub) -> None:
    first = cat.SearchBooks(catalog_pb2.SearchBooksRequest(page_size=5))
    assert first.next_page_token
    second = cat.SearchBooks(
        catalog_pb2.SearchBooksRequest(page_size=5, page_token=first.next_page_token)
    )
    assert {b.book_id for b in first.books}.isdisjoint(b.book_id for b in second.books)


# JSON-ish documents: what a hostile client would try first, nested a little.
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
_json_ish = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["v", "q", "o", "x"]), inner, max_size=4)
    ),
    max_leaves=12,
)


def _encode(doc: object) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


_tokens = st.one_of(
    st.binary(max_size=600).map(token_of),
    st.text(max_size=300),
    _json_ish.map(_encode).map(token_of),
    st.integers(min_value=1, max_value=5000).map(lambda n: token_of(b"[" * n)),
)


@settings(max_examples=400, deadline=None)
@given(token=_tokens)
def test_any_token_is_an_offset_or_invalid_argument(token: str) -> None:
    """In process, many examples: read_token raises nothing but InvalidArgument."""
    try:
        offset = paging.read_token(token, "v1", "query")
    except InvalidArgument as e:
        assert e.field == "page_token"
        assert len(e.message) <= MESSAGE_LIMIT
    else:
        assert 0 <= offset <= paging.MAX_OFFSET


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(token=_tokens.filter(bool))
def test_any_token_on_the_wire_is_ok_or_invalid_argument(
    token: str, rec: RecommenderServiceStub, cat: CatalogServiceStub
) -> None:
    """Through the server: never INTERNAL, never an unbounded message."""
    for call in paged_calls(rec, cat, token).values():
        try:
            call()
        except grpc.RpcError as e:
            assert_short_invalid(e)


def test_tokens_fuzzed_leave_no_traceback(server: ServerProcess) -> None:
    # Runs after the fuzz above (file order): its calls must not have logged a bug.
    assert_no_traceback(server)
    record_fault(
        "page_token: random bytes, text and JSON-ish documents (hypothesis)",
        "INVALID_ARGUMENT with a short message on every call; no traceback",
    )


def test_a_huge_favourite_subject_is_not_echoed(
    rec: RecommenderServiceStub, server: ServerProcess
) -> None:
    error = error_of(
        lambda: rec.ColdStart(
            recommender_pb2.ColdStartRequest(favourite_subjects=["z" * 1_000_000]), timeout=10
        )
    )
    assert_short_invalid(error, "favourite_subjects[0]")
    assert "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz" not in (error.details() or "")
    assert_no_traceback(server)
    record_fault(
        'ColdStart favourite_subjects=["z" * 1_000_000]',
        "INVALID_ARGUMENT, short message naming favourite_subjects[0] (BadRequest); "
        "value not echoed",
    )


def test_an_unknown_subject_names_its_place_and_clips_its_echo(
    rec: RecommenderServiceStub, cat: CatalogServiceStub
) -> None:
    known = cat.ListSubjects(catalog_pb2.ListSubjectsRequest(page_size=1)).subjects[0]
    unknown = "q" * 150
    error = error_of(
        lambda: rec.ColdStart(
            recommender_pb2.ColdStartRequest(favourite_subjects=[known.subject_id, unknown])
        )
    )
    assert_short_invalid(error, "favourite_subjects[1]")
    details = error.details() or ""
    assert "q" * 150 not in details
    assert "..." in details


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (recommender_pb2.RecommendRequest(user_id="u", k=1000), "k"),
        (recommender_pb2.RecommendRequest(user_id=""), "user_id"),
        (recommender_pb2.RecommendRequest(user_id="u" * 100_000), "user_id"),
        (
            recommender_pb2.RecommendRequest(
                user_id="u", filters=common_pb2.Filters(subject_ids=["s" * 100_000])
            ),
            "filters.subject_ids[0]",
        ),
        (
            recommender_pb2.RecommendRequest(
                user_id="u", filters=common_pb2.Filters(min_year=2000, max_year=1990)
            ),
            "filters.max_year",
        ),
        (recommender_pb2.ColdStartRequest(popularity_weight=2.0), "popularity_weight"),
        (
            recommender_pb2.SimilarRequest(
                book_id="b", mode=recommender_pb2.SimilarMode.ValueType(99)
            ),
            "mode",
        ),
    ],
)
def test_field_violations_reach_the_client(
    request_: Any, field: str, rec: RecommenderServiceStub, server: ServerProcess
) -> None:
    methods: dict[type, Callable[..., Any]] = {
        recommender_pb2.RecommendRequest: rec.Recommend,
        recommender_pb2.ColdStartRequest: rec.ColdStart,
        recommender_pb2.SimilarRequest: rec.Similar,
    }
    method = methods[type(request_)]
    assert_short_invalid(error_of(lambda: method(request_, timeout=10)), field)
    assert_no_traceback(server)
