"""Graceful stop: a call in flight when the stop arrives completes; new calls are refused."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from bookrec.v1 import catalog_pb2, feedback_pb2
from bookrec.v1.catalog_pb2_grpc import CatalogServiceStub
from bookrec.v1.feedback_pb2_grpc import FeedbackServiceStub
from server.app import serve
from server.config import ServerConfig
from server.engine.feedback import FeedbackLog


class HeldFeedbackLog(FeedbackLog):
    """Holds every append until released, so a call is provably in flight."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.entered = threading.Event()
        self.release = threading.Event()

    def append(self, user_id: str, book_id: str, rating: int, model_version: str) -> None:
        self.entered.set()
        assert self.release.wait(10)
        super().append(user_id, book_id, rating, model_version)


@contextlib.asynccontextmanager
async def held_call(
    cfg: ServerConfig, tmp_path: Path
) -> AsyncIterator[tuple[grpc.aio.Channel, asyncio.Event, HeldFeedbackLog, Any, Any]]:
    """A served tiny model with one RateBook call held in flight; yields the channel, the
    stop event, the held log, the call and the server task."""
    stop = asyncio.Event()
    feedback = HeldFeedbackLog(tmp_path / "ratings.jsonl")
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(serve(cfg, stop, feedback, started))
    port = await started
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        book = (await CatalogServiceStub(ch).SearchBooks(catalog_pb2.SearchBooksRequest())).books[0]
        call = asyncio.ensure_future(
            FeedbackServiceStub(ch).RateBook(
                feedback_pb2.RateBookRequest(user_id="u", book_id=book.book_id, rating=7)
            )
        )
        assert await asyncio.to_thread(feedback.entered.wait, 10)
        yield ch, stop, feedback, call, server
    stop.set()
    await asyncio.wait_for(server, 15)


async def test_stop_drains_the_call_in_flight(tiny_artifact: Path, tmp_path: Path) -> None:
    cfg = ServerConfig(port=0, artifacts_dir=tiny_artifact.parent, grace_seconds=10)
    async with held_call(cfg, tmp_path) as (ch, stop, feedback, call, server):
        stop.set()
        await asyncio.sleep(0.3)
        assert not server.done(), "the server must wait for the call in flight"
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await CatalogServiceStub(ch).SearchBooks(catalog_pb2.SearchBooksRequest(), timeout=5)
        assert refused.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
        feedback.release.set()
        reply = await call
        assert reply.accepted
    assert '"rating": 7' in (tmp_path / "ratings.jsonl").read_text()


async def test_calls_beyond_the_limit_are_shed(tiny_artifact: Path, tmp_path: Path) -> None:
    cfg = ServerConfig(port=0, artifacts_dir=tiny_artifact.parent, max_concurrent_rpcs=1)
    async with held_call(cfg, tmp_path) as (ch, _, feedback, call, _):
        with pytest.raises(grpc.aio.AioRpcError) as shed:
            await CatalogServiceStub(ch).SearchBooks(catalog_pb2.SearchBooksRequest(), timeout=5)
        assert shed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        feedback.release.set()
        assert (await call).accepted
        assert (await CatalogServiceStub(ch).SearchBooks(catalog_pb2.SearchBooksRequest())).books
