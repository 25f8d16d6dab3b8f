"""RecommenderService: validate -> engine -> reply."""

from __future__ import annotations

import functools
from typing import Any

from bookrec.v1 import recommender_pb2 as pb
from bookrec.v1 import recommender_pb2_grpc as pb_grpc
from server.engine import paging
from server.engine.batch_cold_start import ColdStartCall
from server.engine.batch_recommend import RecommendCall
from server.engine.batch_similar import SimilarCall
from server.engine.bundle import Bundle
from server.engine.errors import InvalidArgument, echo
from server.engine.manager import ModelManager
from server.engine.personal import Personal
from server.engine.types import RankedList, SimilarMode
from server.handlers.batched import Alone, Pipelines
from server.handlers.common import (
    call_deadline,
    check_count,
    check_filters,
    check_id,
    check_length,
    check_size,
    check_unit,
    filters_of,
    pipeline,
    rpc,
    scored_messages,
    source_of,
)
from server.limits import (
    DEFAULT_K,
    MAX_FAVOURITE_SUBJECTS,
    MAX_K,
    MAX_RECOMMEND_DEPTH,
    MAX_SUBJECT_TEXT,
)

DEFAULT_HYBRID_WEIGHT = 0.5
_MODES = {
    pb.SIMILAR_MODE_UNSPECIFIED: SimilarMode.ALS,
    pb.SIMILAR_MODE_ALS: SimilarMode.ALS,
    pb.SIMILAR_MODE_SUBJECT: SimilarMode.SUBJECT,
    pb.SIMILAR_MODE_HYBRID: SimilarMode.HYBRID,
}


class Recommender(pb_grpc.RecommenderServiceServicer):
    """The three pipelines run on the event loop itself (``pipeline``) when the call is
    the only one in flight: each is bounded (a few ms of native code at 300k books), and
    a thread hand-off made every GIL release a wait for the loop thread. With others in
    flight they run in the compute thread, so the loop keeps taking in and refusing
    calls (handlers/common.py ``_Compute``). Measured at 300k books, Recommend at
    273/s: p50 4.68 -> 3.82 ms, p99 18.9 -> 11.9 ms; 647/s at saturation. While this
    process loads a model they go to threads again, so the loop keeps turning between
    the loader's stretches of GIL.
    """

    def __init__(self, models: ModelManager, personal: Personal) -> None:
        self.models = models
        self.personal = personal
        # Batched (server/batcher.py), or call by call as before when alone or batching is off.
        alone = Alone(self._recommend_alone, self._similar_alone, self._cold_start_alone)
        self.pipelines = Pipelines(models, personal, alone)

    async def _recommend_alone(self, bundle: Bundle, c: RecommendCall) -> RankedList:
        p = self.personal
        return await pipeline(
            self.models, p.recommend, bundle, c.user_id, c.k, c.filters, c.explain, c.offset
        )

    async def _similar_alone(self, bundle: Bundle, c: SimilarCall) -> RankedList:
        p = self.personal
        return await pipeline(
            self.models, p.similar, bundle, c.book_id, c.k, c.mode, c.weight, c.filters, c.explain
        )

    async def _cold_start_alone(self, bundle: Bundle, c: ColdStartCall) -> RankedList:
        return await pipeline(
            self.models,
            self.personal.cold_start,
            bundle,
            list(c.favourite_subjects),
            c.popularity_weight,
            c.k,
            c.filters,
            c.explain,
        )

    @rpc
    async def Recommend(self, request: pb.RecommendRequest, context: Any) -> pb.RecommendResponse:
        user_id = check_id("user_id", request.user_id)
        k = check_count("k", request.k, DEFAULT_K, MAX_K)
        filters = filters_of(request.filters)
        bundle = self.models.current()
        check_filters(bundle, request.filters)
        query_key = f"recommend|{user_id}|{filters.key()}"
        offset = paging.read_token(request.page_token, bundle.version, query_key)
        k = _within_depth(offset, k)
        deadline = call_deadline(context, "Recommend")
        deadline.check("start")
        ranked = await self.pipelines.recommend(
            bundle,
            RecommendCall(user_id, k, filters, request.explain, offset),
            functools.partial(deadline.check, "compute"),
        )
        deadline.check("reply")
        more = ranked.has_more and offset + k < MAX_RECOMMEND_DEPTH
        next_token = paging.make_token(bundle.version, query_key, offset + k) if more else ""
        return pb.RecommendResponse(
            items=scored_messages(bundle, ranked),
            model_version=bundle.version,
            source=source_of(ranked),
            next_page_token=next_token,
        )

    @rpc
    async def Similar(self, request: pb.SimilarRequest, context: Any) -> pb.SimilarResponse:
        book_id = check_id("book_id", request.book_id)
        k = check_count("k", request.k, DEFAULT_K, MAX_K)
        mode = _MODES.get(request.mode)
        if mode is None:
            raise InvalidArgument(f"unknown mode {echo(request.mode)}", "mode")
        weight = DEFAULT_HYBRID_WEIGHT
        if request.HasField("weight"):
            if mode is not SimilarMode.HYBRID:
                raise InvalidArgument(
                    "weight is only meaningful with mode SIMILAR_MODE_HYBRID", "weight"
                )
            weight = check_unit("weight", request.weight)
        bundle = self.models.current()
        check_filters(bundle, request.filters)
        deadline = call_deadline(context, "Similar")
        deadline.check("start")
        ranked = await self.pipelines.similar(
            bundle,
            SimilarCall(book_id, k, mode, weight, filters_of(request.filters), request.explain),
            functools.partial(deadline.check, "compute"),
        )
        deadline.check("reply")
        return pb.SimilarResponse(
            items=scored_messages(bundle, ranked),
            model_version=bundle.version,
            source=source_of(ranked),
        )

    @rpc
    async def ColdStart(self, request: pb.ColdStartRequest, context: Any) -> pb.ColdStartResponse:
        k = check_count("k", request.k, DEFAULT_K, MAX_K)
        weight = None  # the model's trained default
        if request.HasField("popularity_weight"):
            weight = check_unit("popularity_weight", request.popularity_weight)
        favourites = list(request.favourite_subjects)
        check_size("favourite_subjects", len(favourites), MAX_FAVOURITE_SUBJECTS, "subjects")
        for i, text in enumerate(favourites):
            check_length(f"favourite_subjects[{i}]", text, MAX_SUBJECT_TEXT)
        bundle = self.models.current()
        check_filters(bundle, request.filters)
        deadline = call_deadline(context, "ColdStart")
        deadline.check("start")
        try:
            call = ColdStartCall(
                tuple(favourites), weight, k, filters_of(request.filters), request.explain
            )
            ranked = await self.pipelines.cold_start(
                bundle, call, functools.partial(deadline.check, "compute")
            )
        except InvalidArgument as e:
            # The filters were checked above, so an unknown subject is a favourite.
            raise _at_favourite(bundle, favourites, e) from None
        deadline.check("reply")
        return pb.ColdStartResponse(
            items=scored_messages(bundle, ranked),
            model_version=bundle.version,
            source=source_of(ranked),
            default_popularity_weight=bundle.cold_start_weight,
        )


def _within_depth(offset: int, k: int) -> int:
    """The page size that keeps a Recommend page within ``MAX_RECOMMEND_DEPTH`` books
    (the last page is shorter); a token at or past that depth is INVALID_ARGUMENT."""
    if offset >= MAX_RECOMMEND_DEPTH:
        raise InvalidArgument(
            f"page_token points {offset} books deep; lists end at {MAX_RECOMMEND_DEPTH} "
            "books: start again without a page_token",
            "page_token",
        )
    return min(k, MAX_RECOMMEND_DEPTH - offset)


def _at_favourite(bundle: Bundle, favourites: list[str], error: InvalidArgument) -> Exception:
    """``error`` naming the first favourite subject the model does not know (the error
    path only: the happy one does not resolve the subjects twice)."""
    for i, text in enumerate(favourites):
        try:
            bundle.subject(text)
        except InvalidArgument as e:
            return InvalidArgument(e.message, f"favourite_subjects[{i}]")
    return error
