"""Reply books are built once per model version and copied into replies."""

from __future__ import annotations

from bookrec.v1 import common_pb2
from server.handlers.common import _build_book_message, book_message
from tests.fake_bundle import fake_bundle


def test_a_book_message_is_built_once_per_version_and_copied_into_replies() -> None:
    bundle = fake_bundle()
    first = book_message(bundle, 3)
    assert book_message(bundle, 3) is first
    assert first == _build_book_message(bundle, 3)
    reply = common_pb2.ScoredBook(book=first, score=1.0, rank=1)
    reply.book.title = "changed in one reply"
    assert book_message(bundle, 3).title != "changed in one reply"  # replies hold copies
    newer = fake_bundle("20260102T000000Z-00000000")
    assert book_message(newer, 3) is not first
