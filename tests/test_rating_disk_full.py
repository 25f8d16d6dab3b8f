"""RateBook when the local rating log's disk is full (issue 20, item 7).

A real server (two workers) on loopback keeps its rating log on a small tmpfs that
this test mounts. Some ratings are acknowledged, then a filler file takes every
free page and RateBook is called until it refuses: the last lines fill the log's
last page and the next one is cut short by the full disk. RateBook must answer
UNAVAILABLE saying what happened and what to do (never OK for a line that is not
all there, never INTERNAL), every rating acknowledged is in the log whole and
nothing else is, and once the filler is gone RateBook works again.

Needs root to mount (CI runs as root); without it the test skips with the reason
here, and fails where ``BOOKREC_REQUIRE_MOUNT=1`` (.ci/run) demands it.
"""

from __future__ import annotations

import errno
import json
import uuid
from pathlib import Path

import grpc
import pytest

from bookrec.v1 import catalog_pb2, feedback_pb2
from bookrec.v1.catalog_pb2_grpc import CatalogServiceStub
from bookrec.v1.feedback_pb2_grpc import FeedbackServiceStub
from tests import mounts
from tests.fault_table import record_fault
from tests.serverproc import own_connection, running_server

REASON = mounts.skip_reason()  # never a skip in CI (BOOKREC_REQUIRE_MOUNT=1)
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")

USER = "disk-full-reader"
Key = tuple[str, str]  # (book_id, request_id)


def fill(disk: Path) -> Path:
    """A file taking every free page of ``disk``."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    return filler


def rate(stub: FeedbackServiceStub, book: str) -> tuple[grpc.StatusCode, str, Key]:
    """One RateBook with its own request_id (no retries): its code, details and key."""
    key = (book, uuid.uuid4().hex)
    req = feedback_pb2.RateBookRequest(user_id=USER, book_id=book, rating=6, request_id=key[1])
    try:
        stub.RateBook(req, timeout=10)
    except grpc.RpcError as e:
        return e.code(), str(e.details()), key
    return grpc.StatusCode.OK, "", key


def logged(log: Path) -> list[Key]:
    """(book, request_id) of every line; each line must be whole JSON."""
    raw = log.read_bytes()
    assert not raw or raw.endswith(b"\n"), f"a partial last line: {raw[-80:]!r}"
    return [(d["book_id"], d["request_id"]) for d in map(json.loads, raw.splitlines())]


def refusals_once_full(
    stub: FeedbackServiceStub, books: list[str], acked: list[Key]
) -> list[tuple[grpc.StatusCode, str]]:
    """RateBook until three refusals; the ones still OK (the log's last page) join ``acked``."""
    refusals: list[tuple[grpc.StatusCode, str]] = []
    for i in range(200):
        code, details, key = rate(stub, books[i % len(books)])
        if code == grpc.StatusCode.OK:
            assert not refusals, "OK again while the disk is still full"
            acked.append(key)
        else:
            refusals.append((code, details))
            if len(refusals) == 3:
                break
    return refusals


def test_a_full_disk_is_unavailable_and_loses_no_acknowledged_rating(
    artifact_root: Path, tmp_path: Path
) -> None:
    work = tmp_path / "srv"
    with (
        mounts.tmpfs(work / "feedback", "64k") as disk,
        running_server(artifact_root, work, workers=2) as srv,
        own_connection(srv.target) as ch,
    ):
        found = CatalogServiceStub(ch).SearchBooks(
            catalog_pb2.SearchBooksRequest(page_size=20), timeout=10
        )
        books = [b.book_id for b in found.books]
        stub = FeedbackServiceStub(ch)
        acked: list[Key] = []
        for book in books[:5]:
            code, details, key = rate(stub, book)
            assert code == grpc.StatusCode.OK, details
            acked.append(key)
        filler = fill(disk)
        refusals = refusals_once_full(stub, books, acked)
        assert refusals, "the full disk never refused a rating"
        for code, details in refusals:
            assert code == grpc.StatusCode.UNAVAILABLE, (code, details)
            assert "not stored" in details and "disk is full" in details, details
            assert "free space" in details, "the message says what to do"
        assert logged(srv.feedback_log) == acked, "exactly the acknowledged ratings"

        filler.unlink()
        code, details, key = rate(stub, books[0])
        assert code == grpc.StatusCode.OK, details
        assert logged(srv.feedback_log) == [*acked, key]
    record_fault(
        "the local rating log's disk fills up (ENOSPC) during RateBook",
        "UNAVAILABLE 'rating not stored: ... its disk is full ... free space'; a line cut "
        "short by the full disk is removed again, never acknowledged; RateBook works again "
        "once space is freed",
        lost="nothing acknowledged",
    )
