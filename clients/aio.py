"""``AsyncBookrecClient``: the asyncio client, and the one description of every RPC.

clients/sync.py (``BookrecClient``) is generated from this file by
``python -m clients.unasync`` (``await`` and ``async`` dropped, the aio names swapped
for their blocking twins), and a test fails when it is stale: a new RPC is written
here once. Every call gets the client's deadline (5 s unless told otherwise) for
the whole call, is retried by gRPC itself on ``UNAVAILABLE`` only, inside that
deadline and throttled (clients/retry.py), and raises ``clients.errors.BookrecError``
(a ``grpc.RpcError``) with the status, message and field violations."""

# --- generated body starts here (clients/unasync.py copies what follows) ---
from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Self, TypeVar

import grpc
from grpc import aio

from bookrec.v1 import admin_pb2, catalog_pb2, common_pb2, feedback_pb2, recommender_pb2
from bookrec.v1.admin_pb2_grpc import AdminServiceStub
from bookrec.v1.catalog_pb2_grpc import CatalogServiceStub
from bookrec.v1.feedback_pb2_grpc import FeedbackServiceStub
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub
from clients.common import (
    DEFAULT_TARGET,
    DEFAULT_TIMEOUT,
    cold_request,
    connection_of,
    new_request_id,
    similar_request,
)
from clients.connect import Connection
from clients.errors import from_rpc_error
from clients.retry import RetryPolicy

Req = TypeVar("Req")
Resp = TypeVar("Resp")


class AsyncBookrecClient:
    """One channel, reused; use as ``async with AsyncBookrecClient(target) as client``.
    ``api_key`` and ``connection`` (TLS) default to ``BOOKREC_API_KEY`` / ``BOOKREC_TLS_*``."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        timeout: float = DEFAULT_TIMEOUT,
        connection: Connection | None = None,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        conn = connection_of(connection, api_key)
        self.retry = retry if retry is not None else RetryPolicy()
        self.channel = conn.aio_channel(target, self.retry.channel_options())
        self.timeout = timeout
        self.metadata = conn.metadata()
        self.recommender = RecommenderServiceStub(self.channel)
        self.catalog = CatalogServiceStub(self.channel)
        self.feedback = FeedbackServiceStub(self.channel)
        self.admin = AdminServiceStub(self.channel)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    async def _call(
        self,
        rpc: aio.UnaryUnaryMultiCallable[Req, Resp],
        req: Req,
        timeout: float | None,  # noqa: ASYNC109 - a gRPC deadline
    ) -> Resp:
        """One RPC within one deadline (``timeout`` or the client's): the channel
        retries it (same request, same metadata) while that deadline lasts."""
        deadline = self.timeout if timeout is None else timeout
        try:
            return await rpc(req, timeout=deadline, metadata=self.metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e

    # RecommenderService

    async def recommend(
        self,
        user_id: str,
        k: int = 10,
        explain: bool = False,
        filters: common_pb2.Filters | None = None,
        page_token: str = "",
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline
    ) -> recommender_pb2.RecommendResponse:
        """One page of ``k`` recommendations for ``user_id``."""
        req = recommender_pb2.RecommendRequest(
            user_id=user_id, k=k, explain=explain, filters=filters, page_token=page_token
        )
        return await self._call(self.recommender.Recommend, req, timeout)

    async def similar(
        self,
        book_id: str,
        k: int = 10,
        mode: str = "als",
        weight: float | None = None,
        explain: bool = False,
        filters: common_pb2.Filters | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline
    ) -> recommender_pb2.SimilarResponse:
        """Books like ``book_id``; ``mode`` is als, subject or hybrid (``weight``: ALS part)."""
        req = similar_request(book_id, k, mode, weight, explain, filters)
        return await self._call(self.recommender.Similar, req, timeout)

    async def cold_start(
        self,
        subjects: Iterable[str],
        popularity_weight: float | None = None,
        k: int = 10,
        explain: bool = False,
        filters: common_pb2.Filters | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline
    ) -> recommender_pb2.ColdStartResponse:
        """Books for a reader without history, from favourite subjects (ids or names)."""
        req = cold_request(subjects, popularity_weight, k, explain, filters)
        return await self._call(self.recommender.ColdStart, req, timeout)

    # CatalogService

    async def get_book(
        self,
        book_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline
    ) -> catalog_pb2.GetBookResponse:
        req = catalog_pb2.GetBookRequest(book_id=book_id)
        return await self._call(self.catalog.GetBook, req, timeout)

    async def search_books(
        self,
        query: str,
        page_size: int = 20,
        page_token: str = "",
        filters: common_pb2.Filters | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline
    ) -> catalog_pb2.SearchBooksResponse:
        req = catalog_pb2.SearchBooksRequest(
            query=query, page_size=page_size, page_token=page_token, filters=filters
        )
        return await self._call(self.catalog.SearchBooks, req, timeout)

    async def list_subjects(
        self,
        query: str = "",
        page_size: int = 100,
        page_token: str = "",
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline
    ) -> catalog_pb2.ListSubjectsResponse:
        req = catalog_pb2.ListSubjectsRequest(
            query=query, page_size=page_size, page_token=page_token
        )
        return await self._call(self.catalog.ListSubjects, req, timeout)

    # FeedbackService

    async def rate_book(
        self,
        user_id: str,
        book_id: str,
        rating: int,
        *,
        request_id: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline
    ) -> feedback_pb2.RateBookResponse:
        """Record a rating: 0 = read, 1..10 = explicit. Every retry of this call sends
        the same ``request_id`` (a new UUID unless given), so a retry after a lost
        reply is stored once; pass your own to make retries of your own safe too."""
        req = feedback_pb2.RateBookRequest(
            user_id=user_id,
            book_id=book_id,
            rating=rating,
            request_id=request_id or new_request_id(),
        )
        return await self._call(self.feedback.RateBook, req, timeout)

    # AdminService

    async def get_status(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline
    ) -> admin_pb2.GetStatusResponse:
        return await self._call(self.admin.GetStatus, admin_pb2.GetStatusRequest(), timeout)

    async def pin_version(
        self,
        version: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline
    ) -> admin_pb2.PinVersionResponse:
        req = admin_pb2.PinVersionRequest(version=version)
        return await self._call(self.admin.PinVersion, req, timeout)

    async def unpin(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline
    ) -> admin_pb2.UnpinResponse:
        return await self._call(self.admin.Unpin, admin_pb2.UnpinRequest(), timeout)

    async def rollback(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline
    ) -> admin_pb2.RollbackResponse:
        return await self._call(self.admin.Rollback, admin_pb2.RollbackRequest(), timeout)

    # Every page of the paged RPCs

    async def iter_recommend(
        self,
        user_id: str,
        k: int = 10,
        explain: bool = False,
        filters: common_pb2.Filters | None = None,
        page_token: str = "",
    ) -> AsyncIterator[common_pb2.ScoredBook]:
        """The user's whole recommendation list, ``k`` per page."""
        while True:
            page = await self.recommend(user_id, k, explain, filters, page_token)
            for item in page.items:
                yield item
            page_token = page.next_page_token
            if not page_token:
                return

    async def iter_search(
        self,
        query: str,
        page_size: int = 20,
        page_token: str = "",
        filters: common_pb2.Filters | None = None,
    ) -> AsyncIterator[common_pb2.Book]:
        """Every matching book, following next_page_token to the end."""
        while True:
            page = await self.search_books(query, page_size, page_token, filters)
            for book in page.books:
                yield book
            page_token = page.next_page_token
            if not page_token:
                return

    async def iter_subjects(
        self, query: str = "", page_size: int = 100, page_token: str = ""
    ) -> AsyncIterator[common_pb2.Subject]:
        """Every subject (matching ``query``), across all pages."""
        while True:
            page = await self.list_subjects(query, page_size, page_token)
            for subject in page.subjects:
                yield subject
            page_token = page.next_page_token
            if not page_token:
                return
