"""CatalogService: validate -> engine -> reply."""

from __future__ import annotations

from typing import Any

from bookrec.v1 import catalog_pb2 as pb
from bookrec.v1 import catalog_pb2_grpc as pb_grpc
from bookrec.v1 import common_pb2
from server.engine import catalog, paging
from server.engine.manager import ModelManager
from server.handlers.common import (
    abandonable,
    book_message,
    call_deadline,
    check_count,
    check_filters,
    check_id,
    check_length,
    check_size,
    filters_of,
    rpc,
)
from server.limits import (
    DEFAULT_SEARCH_PAGE,
    DEFAULT_SUBJECT_PAGE,
    MAX_QUERY_CHARS,
    MAX_QUERY_WORDS,
    MAX_SEARCH_PAGE,
    MAX_SUBJECT_PAGE,
    MAX_SUBJECT_TEXT,
)


class Catalog(pb_grpc.CatalogServiceServicer):
    def __init__(self, models: ModelManager) -> None:
        self.models = models

    @rpc
    async def GetBook(self, request: pb.GetBookRequest, context: Any) -> pb.GetBookResponse:
        book_id = check_id("book_id", request.book_id)
        bundle = self.models.current()
        return pb.GetBookResponse(
            book=book_message(bundle, bundle.book(book_id)), model_version=bundle.version
        )

    @rpc
    async def SearchBooks(
        self, request: pb.SearchBooksRequest, context: Any
    ) -> pb.SearchBooksResponse:
        size = check_count("page_size", request.page_size, DEFAULT_SEARCH_PAGE, MAX_SEARCH_PAGE)
        check_length("query", request.query, MAX_QUERY_CHARS)
        check_size("query", len(request.query.split()), MAX_QUERY_WORDS, "words")
        filters = filters_of(request.filters)
        bundle = self.models.current()
        check_filters(bundle, request.filters)
        key = f"search|{request.query.lower().split()}|{filters.key()}"
        offset = paging.read_token(request.page_token, bundle.version, key)
        deadline = call_deadline(context, "SearchBooks")
        hits = await abandonable(
            deadline, catalog.search_books, bundle, request.query, filters, deadline
        )
        page = hits[offset : offset + size].tolist()
        more = offset + size < len(hits)
        return pb.SearchBooksResponse(
            books=[book_message(bundle, i) for i in page],
            next_page_token=paging.make_token(bundle.version, key, offset + size) if more else "",
            total_size=len(hits),
            model_version=bundle.version,
        )

    @rpc
    async def ListSubjects(
        self, request: pb.ListSubjectsRequest, context: Any
    ) -> pb.ListSubjectsResponse:
        size = check_count("page_size", request.page_size, DEFAULT_SUBJECT_PAGE, MAX_SUBJECT_PAGE)
        check_length("query", request.query, MAX_SUBJECT_TEXT)
        bundle = self.models.current()
        key = f"subjects|{request.query.strip().lower()}"
        offset = paging.read_token(request.page_token, bundle.version, key)
        hits = catalog.list_subjects(bundle, request.query)
        page = hits[offset : offset + size]
        more = offset + size < len(hits)
        return pb.ListSubjectsResponse(
            subjects=[
                common_pb2.Subject(
                    subject_id=bundle.subject_ids[s], name=bundle.subject_names[s], book_count=n
                )
                for s, n in page
            ],
            next_page_token=paging.make_token(bundle.version, key, offset + size) if more else "",
            total_size=len(hits),
            model_version=bundle.version,
        )
