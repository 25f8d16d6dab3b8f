"""FeedbackService: validate -> durable log -> reply.

OK means the rating log acknowledged the rating. When its engine cannot (a
fleet's shared log unreachable or too slow) the call is UNAVAILABLE and says
the rating was not stored, so the client retries rather than losing it."""

from __future__ import annotations

from typing import Any

import grpc

from bookrec.v1 import feedback_pb2 as pb
from bookrec.v1 import feedback_pb2_grpc as pb_grpc
from server.engine.errors import InvalidArgument
from server.engine.feedback import FeedbackLog, LogUnavailable
from server.engine.manager import ModelManager
from server.handlers.common import check_id, offload, rpc


class Feedback(pb_grpc.FeedbackServiceServicer):
    def __init__(self, models: ModelManager, feedback: FeedbackLog) -> None:
        self.models = models
        self.feedback = feedback

    @rpc
    async def RateBook(self, request: pb.RateBookRequest, context: Any) -> pb.RateBookResponse:
        user_id = check_id("user_id", request.user_id)
        book_id = check_id("book_id", request.book_id)
        if not 0 <= request.rating <= 10:
            raise InvalidArgument(
                f"rating must be 0 (read) or 1..10 (explicit), got {request.rating}", "rating"
            )
        bundle = self.models.current()
        bundle.book(book_id)  # NOT_FOUND for a book the model does not know
        # fsync must not stall the event loop.
        try:
            await offload(self.feedback.append, user_id, book_id, request.rating, bundle.version)
        except LogUnavailable as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
        return pb.RateBookResponse(accepted=True, model_version=bundle.version)
