"""A RateBook retried after a lost reply is one rating (issue 20, item 11).

The Python client sends one request_id per rate_book call, the same on each retry.
A proxy between client and a real server on loopback loses the first reply after
the server has stored the rating; the client's retry must come back OK, and the
rating must be stored once: one line in the local log, one message in JetStream,
one row for the trainer. Both server-side indexes (the file log's across worker
processes, JetStream's Nats-Msg-Id) and the trainer's reader are checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import nats
import pytest

from bookrec.ratinglog import FileRatingLog, Rating
from bookrec.ratinglog.jetstream import JetStreamRatingLog
from bookrec.ratinglog.natslink import NatsLink
from bookrec.v1 import catalog_pb2, feedback_pb2
from bookrec.v1.catalog_pb2_grpc import CatalogServiceStub
from bookrec.v1.feedback_pb2_grpc import FeedbackServiceStub
from clients.retry import RetryPolicy
from clients.sync import BookrecClient
from tests.fault_table import record_fault
from tests.h2drop import dropping_replies
from tests.serverproc import ServerProcess, own_connection, running_server
from trainer.sources.feedback import read_feedback

NATS = "nats://127.0.0.1:4222"
RETRY = RetryPolicy(attempts=5, base_delay=0.05, max_delay=0.2)


def a_book(target: str) -> str:
    with own_connection(target) as ch:
        reply = CatalogServiceStub(ch).SearchBooks(catalog_pb2.SearchBooksRequest(), timeout=10)
        return reply.books[0].book_id


def rate_through_lossy_proxy(srv: ServerProcess, user: str, book: str) -> str:
    """rate_book through a proxy that loses the first reply; the reply's model version."""
    with (
        dropping_replies(srv.target, drop=1) as proxy,
        BookrecClient(proxy.target, timeout=10, retry=RETRY) as client,
    ):
        reply = client.rate_book(user, book, 7)
        assert proxy.dropped == 1 and proxy.connections == 2, "one reply lost, then a retry"
    assert reply.accepted
    return reply.model_version


def file_lines(path: Path, user: str) -> list[dict[str, object]]:
    docs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [d for d in docs if d["user_id"] == user]


def test_a_retry_after_a_lost_reply_is_one_line_in_the_local_log(
    artifact_root: Path, tmp_path: Path
) -> None:
    with running_server(artifact_root, tmp_path / "srv", workers=2) as srv:
        user = f"retry-{uuid.uuid4().hex[:8]}"
        version = rate_through_lossy_proxy(srv, user, a_book(srv.target))
        lines = file_lines(srv.feedback_log, user)
    assert len(lines) == 1, f"the retry was stored again: {lines}"
    assert lines[0]["request_id"] and lines[0]["model_version"] == version
    record_fault(
        "RateBook's reply lost after the rating was stored (local log); the client retries",
        "the retry carries the same request_id and is answered OK with the first call's "
        "result; the log holds one line",
        lost="nothing; nothing counted twice",
    )


@pytest.fixture
def stream() -> Iterator[str]:
    name = f"test-retry-{uuid.uuid4().hex[:10]}"
    yield name

    async def drop() -> None:
        nc = await nats.connect(NATS, connect_timeout=2, max_reconnect_attempts=1)
        for s in (name, f"KV_{name}-control", f"KV_{name}-replicas"):
            with contextlib.suppress(Exception):  # never made, or already gone
                await nc.jetstream().delete_stream(s)
        await nc.close()

    asyncio.run(drop())


def stream_ratings(url: str) -> list[Rating]:
    link = NatsLink(NATS)
    try:
        return [r for _, r in JetStreamRatingLog(url, link).read_from(0)]
    finally:
        link.close()


def test_a_retry_after_a_lost_reply_is_one_message_in_jetstream(
    artifact_root: Path, tmp_path: Path, stream: str
) -> None:
    url = f"{NATS}/{stream}"
    args = ("--rating-log", url, "--replica-id", "retry")
    with running_server(artifact_root, tmp_path / "srv", extra_args=args) as srv:
        user = f"retry-{uuid.uuid4().hex[:8]}"
        version = rate_through_lossy_proxy(srv, user, a_book(srv.target))
    mine = [r for r in stream_ratings(url) if r.user_id == user]
    assert len(mine) == 1, f"the retry was stored again: {mine}"
    assert mine[0].request_id and mine[0].model_version == version
    record_fault(
        "RateBook's reply lost after the rating was stored (JetStream log); the client retries",
        "the retry's Nats-Msg-Id is the first's: JetStream stores it once and the retry is "
        "answered OK with the first call's result",
        lost="nothing; nothing counted twice",
    )


def test_a_request_id_is_stored_once_across_worker_processes(tmp_path: Path) -> None:
    """Two logs on one file stand for two workers: the second sees the first's key."""
    path = tmp_path / "ratings.jsonl"
    first, second = FileRatingLog(path), FileRatingLog(path)
    a = first.append(Rating("u", "b1", 0, "v1", request_id="k1"))
    other_user = second.append(Rating("u2", "b1", 0, "v2", request_id="k1"))
    again = second.append(Rating("u", "b1", 0, "v2", request_id="k1"))
    assert not a.repeat and not other_user.repeat, "a key is scoped by its user"
    assert again.repeat and again.offset == a.offset and again.rating.model_version == "v1"
    assert [r.user_id for _, r in first.read_from(0)] == ["u", "u2"]


def test_the_trainer_counts_a_repeated_request_id_once(tmp_path: Path) -> None:
    """Lines a retry left in the log (a late retry, or two logs) train as one rating."""
    path = tmp_path / "feedback" / "ratings.jsonl"
    path.parent.mkdir()
    rows = [
        Rating("u", "b1", 0, "v", ts=100.0, request_id="k1"),
        Rating("u", "b1", 0, "v", ts=400.0, request_id="k1"),  # the retry, 5 min later
        Rating("u", "b1", 0, "v", ts=500.0),  # no key: a new read of the book
        Rating("u2", "b1", 0, "v", ts=600.0, request_id="k1"),  # another user's key
    ]
    path.write_bytes(b"".join(r.to_json() + b"\n" for r in rows))
    got, report = read_feedback(path)
    assert [(r.user_id, r.timestamp) for r in got] == [("u", 100), ("u", 500), ("u2", 600)]
    assert (report.lines, report.rows) == (4, 3) and "request_id" in report.why


def test_a_request_id_reused_for_another_rating_is_refused(
    artifact_root: Path, tmp_path: Path
) -> None:
    with running_server(artifact_root, tmp_path / "srv") as srv, own_connection(srv.target) as ch:
        stub = FeedbackServiceStub(ch)
        book = a_book(srv.target)
        req = feedback_pb2.RateBookRequest(user_id="u", book_id=book, rating=3, request_id="r-1")
        first = stub.RateBook(req, timeout=10)
        assert stub.RateBook(req, timeout=10) == first
        req.rating = 9
        with pytest.raises(grpc.RpcError) as err:
            stub.RateBook(req, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "request_id" in str(err.value.details())
        req.request_id = "no spaces"
        with pytest.raises(grpc.RpcError) as err:
            stub.RateBook(req, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert len(file_lines(srv.feedback_log, "u")) == 1
