"""Typed Python clients for bookrec: ``BookrecClient`` (blocking) and
``AsyncBookrecClient`` (asyncio). Both return the generated reply messages and
raise ``grpc.RpcError`` / ``grpc.aio.AioRpcError`` with the server's status.

Both take an API key and TLS settings (``clients.connect.Connection``; by default
from ``BOOKREC_API_KEY`` and ``BOOKREC_TLS_*``) and send the key on every call."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import grpc

from bookrec.v1 import catalog_pb2, common_pb2, feedback_pb2, recommender_pb2
from bookrec.v1.catalog_pb2_grpc import CatalogServiceStub
from bookrec.v1.feedback_pb2_grpc import FeedbackServiceStub
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub
from clients.connect import Connection

DEFAULT_TARGET = "127.0.0.1:50051"
# Seconds each call may take unless the client or the call says otherwise.
DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True)
class RetryPolicy:
    """Retries on ``UNAVAILABLE`` only (the server is down, restarting or draining);
    every other status is raised at once. ``attempts`` counts the first try. Before
    retry ``n`` (1-based) the client sleeps a uniformly random time in
    ``[0, min(max_delay, base_delay * 2 ** (n - 1))]`` (full jitter)."""

    attempts: int = 3
    base_delay: float = 0.1
    max_delay: float = 1.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    # What AsyncBookrecClient awaits between tries.
    async_sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, compare=False)

    def delay(self, retry: int) -> float:
        return random.uniform(0.0, min(self.max_delay, self.base_delay * 2 ** (retry - 1)))


NO_RETRY = RetryPolicy(attempts=1)


def _retryable(e: grpc.RpcError) -> bool:
    code = e.code() if callable(getattr(e, "code", None)) else None
    return bool(code == grpc.StatusCode.UNAVAILABLE)


SIMILAR_MODES = {
    "als": recommender_pb2.SIMILAR_MODE_ALS,
    "subject": recommender_pb2.SIMILAR_MODE_SUBJECT,
    "hybrid": recommender_pb2.SIMILAR_MODE_HYBRID,
}


def make_filters(
    exclude: Iterable[str] = (),
    subjects: Iterable[str] = (),
    min_year: int | None = None,
    max_year: int | None = None,
) -> common_pb2.Filters:
    f = common_pb2.Filters(exclude_book_ids=list(exclude), subject_ids=list(subjects))
    if min_year is not None:
        f.min_year = min_year
    if max_year is not None:
        f.max_year = max_year
    return f


def _similar_request(
    book_id: str, k: int, mode: str, weight: float | None, explain: bool
) -> recommender_pb2.SimilarRequest:
    if mode not in SIMILAR_MODES:
        raise ValueError(f"mode must be one of {sorted(SIMILAR_MODES)}, got {mode!r}")
    req = recommender_pb2.SimilarRequest(
        book_id=book_id, k=k, mode=SIMILAR_MODES[mode], explain=explain
    )
    if weight is not None:
        req.weight = weight
    return req


def _cold_request(
    subjects: Iterable[str], popularity_weight: float | None, k: int, explain: bool
) -> recommender_pb2.ColdStartRequest:
    req = recommender_pb2.ColdStartRequest(favourite_subjects=list(subjects), k=k, explain=explain)
    if popularity_weight is not None:
        req.popularity_weight = popularity_weight
    return req


def _connection(connection: Connection | None, api_key: str | None) -> Connection:
    conn = connection if connection is not None else Connection.from_env()
    return conn if api_key is None else replace(conn, api_key=api_key)


class BookrecClient:
    """Blocking client; one channel, reused. Use as a context manager."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        timeout: float = DEFAULT_TIMEOUT,
        connection: Connection | None = None,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        conn = _connection(connection, api_key)
        self.channel = conn.channel(target)
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self.metadata = conn.metadata()
        self.recommender = RecommenderServiceStub(self.channel)
        self.catalog = CatalogServiceStub(self.channel)
        self.feedback = FeedbackServiceStub(self.channel)

    def __enter__(self) -> BookrecClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def _call(self, rpc: Callable[..., Any], req: Any, timeout: float | None) -> Any:
        """One RPC with the deadline (``timeout`` or the client's) and the retry policy;
        each attempt gets the whole deadline."""
        deadline = self.timeout if timeout is None else timeout
        for attempt in range(1, self.retry.attempts + 1):
            try:
                return rpc(req, timeout=deadline, metadata=self.metadata)
            except grpc.RpcError as e:
                if attempt >= self.retry.attempts or not _retryable(e):
                    raise
                self.retry.sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable")

    def iter_search(
        self, query: str, page_size: int = 20, page_token: str = ""
    ) -> Iterator[common_pb2.Book]:
        """Every matching book, following next_page_token to the end."""
        while True:
            page = self.search_books(query, page_size, page_token)
            yield from page.books
            page_token = page.next_page_token
            if not page_token:
                return

    def iter_subjects(
        self, query: str = "", page_size: int = 100, page_token: str = ""
    ) -> Iterator[common_pb2.Subject]:
        """Every subject (matching ``query``), across all pages."""
        while True:
            page = self.list_subjects(query, page_size, page_token)
            yield from page.subjects
            page_token = page.next_page_token
            if not page_token:
                return

    def iter_recommend(
        self,
        user_id: str,
        k: int = 10,
        explain: bool = False,
        filters: common_pb2.Filters | None = None,
        page_token: str = "",
    ) -> Iterator[common_pb2.ScoredBook]:
        """The user's whole recommendation list, ``k`` per page."""
        while True:
            page = self.recommend(user_id, k, explain, filters, page_token)
            yield from page.items
            page_token = page.next_page_token
            if not page_token:
                return

    def recommend(
        self,
        user_id: str,
        k: int = 10,
        explain: bool = False,
        filters: common_pb2.Filters | None = None,
        page_token: str = "",
        *,
        timeout: float | None = None,
    ) -> recommender_pb2.RecommendResponse:
        req = recommender_pb2.RecommendRequest(
            user_id=user_id, k=k, explain=explain, filters=filters, page_token=page_token
        )
        reply: recommender_pb2.RecommendResponse = self._call(
            self.recommender.Recommend, req, timeout
        )
        return reply

    def similar(
        self,
        book_id: str,
        k: int = 10,
        mode: str = "als",
        weight: float | None = None,
        explain: bool = False,
        *,
        timeout: float | None = None,
    ) -> recommender_pb2.SimilarResponse:
        req = _similar_request(book_id, k, mode, weight, explain)
        reply: recommender_pb2.SimilarResponse = self._call(self.recommender.Similar, req, timeout)
        return reply

    def cold_start(
        self,
        subjects: Iterable[str],
        popularity_weight: float | None = None,
        k: int = 10,
        explain: bool = False,
        *,
        timeout: float | None = None,
    ) -> recommender_pb2.ColdStartResponse:
        req = _cold_request(subjects, popularity_weight, k, explain)
        reply: recommender_pb2.ColdStartResponse = self._call(
            self.recommender.ColdStart, req, timeout
        )
        return reply

    def get_book(
        self, book_id: str, *, timeout: float | None = None
    ) -> catalog_pb2.GetBookResponse:
        reply: catalog_pb2.GetBookResponse = self._call(
            self.catalog.GetBook,
            catalog_pb2.GetBookRequest(book_id=book_id),
            timeout,
        )
        return reply

    def search_books(
        self, query: str, page_size: int = 20, page_token: str = "", *, timeout: float | None = None
    ) -> catalog_pb2.SearchBooksResponse:
        reply: catalog_pb2.SearchBooksResponse = self._call(
            self.catalog.SearchBooks,
            catalog_pb2.SearchBooksRequest(query=query, page_size=page_size, page_token=page_token),
            timeout,
        )
        return reply

    def list_subjects(
        self,
        query: str = "",
        page_size: int = 100,
        page_token: str = "",
        *,
        timeout: float | None = None,
    ) -> catalog_pb2.ListSubjectsResponse:
        reply: catalog_pb2.ListSubjectsResponse = self._call(
            self.catalog.ListSubjects,
            catalog_pb2.ListSubjectsRequest(
                query=query, page_size=page_size, page_token=page_token
            ),
            timeout,
        )
        return reply

    def rate_book(
        self, user_id: str, book_id: str, rating: int, *, timeout: float | None = None
    ) -> feedback_pb2.RateBookResponse:
        reply: feedback_pb2.RateBookResponse = self._call(
            self.feedback.RateBook,
            feedback_pb2.RateBookRequest(user_id=user_id, book_id=book_id, rating=rating),
            timeout,
        )
        return reply


class AsyncBookrecClient:
    """asyncio client; one channel, reused. Use with ``async with``."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        timeout: float = DEFAULT_TIMEOUT,
        connection: Connection | None = None,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        conn = _connection(connection, api_key)
        self.channel = conn.aio_channel(target)
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self.metadata = conn.metadata()
        self.recommender = RecommenderServiceStub(self.channel)
        self.catalog = CatalogServiceStub(self.channel)
        self.feedback = FeedbackServiceStub(self.channel)

    async def __aenter__(self) -> AsyncBookrecClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    async def _call(
        self,
        rpc: Callable[..., Awaitable[Any]],
        req: Any,
        timeout: float | None,  # noqa: ASYNC109 - a gRPC deadline, sent to the server
    ) -> Any:
        deadline = self.timeout if timeout is None else timeout
        for attempt in range(1, self.retry.attempts + 1):
            try:
                return await rpc(req, timeout=deadline, metadata=self.metadata)
            except grpc.RpcError as e:
                if attempt >= self.retry.attempts or not _retryable(e):
                    raise
                await self.retry.async_sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable")

    async def iter_search(
        self, query: str, page_size: int = 20, page_token: str = ""
    ) -> AsyncIterator[common_pb2.Book]:
        while True:
            page = await self.search_books(query, page_size, page_token)
            for book in page.books:
                yield book
            page_token = page.next_page_token
            if not page_token:
                return

    async def iter_subjects(
        self, query: str = "", page_size: int = 100, page_token: str = ""
    ) -> AsyncIterator[common_pb2.Subject]:
        while True:
            page = await self.list_subjects(query, page_size, page_token)
            for subject in page.subjects:
                yield subject
            page_token = page.next_page_token
            if not page_token:
                return

    async def iter_recommend(
        self,
        user_id: str,
        k: int = 10,
        explain: bool = False,
        filters: common_pb2.Filters | None = None,
        page_token: str = "",
    ) -> AsyncIterator[common_pb2.ScoredBook]:
        while True:
            page = await self.recommend(user_id, k, explain, filters, page_token)
            for item in page.items:
                yield item
            page_token = page.next_page_token
            if not page_token:
                return

    async def recommend(
        self,
        user_id: str,
        k: int = 10,
        explain: bool = False,
        filters: common_pb2.Filters | None = None,
        page_token: str = "",
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline, sent to the server
    ) -> recommender_pb2.RecommendResponse:
        req = recommender_pb2.RecommendRequest(
            user_id=user_id, k=k, explain=explain, filters=filters, page_token=page_token
        )
        reply: recommender_pb2.RecommendResponse = await self._call(
            self.recommender.Recommend, req, timeout
        )
        return reply

    async def similar(
        self,
        book_id: str,
        k: int = 10,
        mode: str = "als",
        weight: float | None = None,
        explain: bool = False,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline, sent to the server
    ) -> recommender_pb2.SimilarResponse:
        req = _similar_request(book_id, k, mode, weight, explain)
        reply: recommender_pb2.SimilarResponse = await self._call(
            self.recommender.Similar, req, timeout
        )
        return reply

    async def cold_start(
        self,
        subjects: Iterable[str],
        popularity_weight: float | None = None,
        k: int = 10,
        explain: bool = False,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline, sent to the server
    ) -> recommender_pb2.ColdStartResponse:
        req = _cold_request(subjects, popularity_weight, k, explain)
        reply: recommender_pb2.ColdStartResponse = await self._call(
            self.recommender.ColdStart, req, timeout
        )
        return reply

    async def get_book(
        self,
        book_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline, sent to the server
    ) -> catalog_pb2.GetBookResponse:
        reply: catalog_pb2.GetBookResponse = await self._call(
            self.catalog.GetBook,
            catalog_pb2.GetBookRequest(book_id=book_id),
            timeout,
        )
        return reply

    async def search_books(
        self,
        query: str,
        page_size: int = 20,
        page_token: str = "",
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline, sent to the server
    ) -> catalog_pb2.SearchBooksResponse:
        reply: catalog_pb2.SearchBooksResponse = await self._call(
            self.catalog.SearchBooks,
            catalog_pb2.SearchBooksRequest(query=query, page_size=page_size, page_token=page_token),
            timeout,
        )
        return reply

    async def list_subjects(
        self,
        query: str = "",
        page_size: int = 100,
        page_token: str = "",
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline, sent to the server
    ) -> catalog_pb2.ListSubjectsResponse:
        reply: catalog_pb2.ListSubjectsResponse = await self._call(
            self.catalog.ListSubjects,
            catalog_pb2.ListSubjectsRequest(
                query=query, page_size=page_size, page_token=page_token
            ),
            timeout,
        )
        return reply

    async def rate_book(
        self,
        user_id: str,
        book_id: str,
        rating: int,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline, sent to the server
    ) -> feedback_pb2.RateBookResponse:
        reply: feedback_pb2.RateBookResponse = await self._call(
            self.feedback.RateBook,
            feedback_pb2.RateBookRequest(user_id=user_id, book_id=book_id, rating=rating),
            timeout,
        )
        return reply


def describe(msg: Any) -> str:
    """One line per book: rank, title, author, score, reasons."""
    lines = []
    for item in getattr(msg, "items", []):
        b = item.book
        why = "; ".join(r.text for r in item.reasons)
        lines.append(
            f"{item.rank:3d}. {b.title} — {b.author} ({b.year or '?'}) "
            f"[{b.book_id}] score={item.score:.3f}" + (f"  ({why})" if why else "")
        )
    return "\n".join(lines)
