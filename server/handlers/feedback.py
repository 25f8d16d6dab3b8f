"""FeedbackService: validate -> durable log -> reply.

OK means the rating log acknowledged the rating. When its engine cannot (a
fleet's shared log unreachable or too slow, the local log's disk full or failing)
the call is UNAVAILABLE and says the rating was not stored, so the client retries
rather than losing it. The request's request_id makes that retry safe: a repeated
one is answered as the first call was, and nothing is stored twice."""

from __future__ import annotations

import re
from typing import Any

import grpc

from bookrec.v1 import feedback_pb2 as pb
from bookrec.v1 import feedback_pb2_grpc as pb_grpc
from server.engine.errors import InvalidArgument
from server.engine.feedback import FeedbackLog, LogUnavailable
from server.engine.manager import ModelManager
from server.handlers.common import check_id, check_length, offload, rpc
from server.limits import MAX_ID_CHARS

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]*")


def check_request_id(value: str) -> str:
    """Empty, or up to MAX_ID_CHARS of a charset safe to log and to put in a header."""
    check_length("request_id", value, MAX_ID_CHARS)
    if not _REQUEST_ID.fullmatch(value):
        raise InvalidArgument(
            "request_id may hold only A-Z a-z 0-9 . _ : - (a UUID is a good one)", "request_id"
        )
    return value


class Feedback(pb_grpc.FeedbackServiceServicer):
    def __init__(self, models: ModelManager, feedback: FeedbackLog) -> None:
        self.models = models
        self.feedback = feedback

    @rpc
    async def RateBook(self, request: pb.RateBookRequest, context: Any) -> pb.RateBookResponse:
        user_id = check_id("user_id", request.user_id)
        book_id = check_id("book_id", request.book_id)
        request_id = check_request_id(request.request_id)
        if not 0 <= request.rating <= 10:
            raise InvalidArgument(
                f"rating must be 0 (read) or 1..10 (explicit), got {request.rating}", "rating"
            )
        bundle = self.models.current()
        bundle.book(book_id)  # NOT_FOUND for a book the model does not know
        # fsync must not stall the event loop.
        try:
            stored = await offload(
                self.feedback.append, user_id, book_id, request.rating, bundle.version, request_id
            )
        except LogUnavailable as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
        # A repeat answers with the version the first call answered with.
        return pb.RateBookResponse(accepted=True, model_version=stored.rating.model_version)
