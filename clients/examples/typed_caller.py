"""A caller of both clients, as a service would write it: tests/test_clients_typing.py
runs ``mypy --strict`` on it, so the clients' types stay precise (no ``Any`` leaks:
replies, iterators and errors are all typed)."""

from __future__ import annotations

import asyncio

from bookrec.v1 import common_pb2, recommender_pb2
from clients.client import (
    AsyncBookrecClient,
    BookrecClient,
    BookrecError,
    FieldViolation,
    InvalidArgument,
    make_filters,
)


def titles(reply: recommender_pb2.RecommendResponse) -> list[str]:
    return [item.book.title for item in reply.items]


def blocking(target: str) -> tuple[list[str], int, list[FieldViolation]]:
    with BookrecClient(target, timeout=2.0) as client:
        reply = client.recommend("1", k=5, filters=make_filters(min_year=1990))
        books: list[common_pb2.Book] = list(client.iter_search("the", page_size=50))
        count: int = sum(s.book_count for s in client.iter_subjects())
        try:
            client.cold_start(["sci-fi"])
        except InvalidArgument as e:
            return titles(reply) + [b.book_id for b in books], count, e.field_violations
        return titles(reply), count, []


async def concurrent(target: str) -> dict[str, float]:
    async with AsyncBookrecClient(target) as client:
        rec, sim = await asyncio.gather(
            client.recommend("1", k=3), client.similar("BX1", k=3, mode="subject")
        )
        scores = {i.book.book_id: i.score for i in rec.items}
        scores.update({i.book.book_id: i.score for i in sim.items})
        async for item in client.iter_recommend("1", k=10):
            scores.setdefault(item.book.book_id, item.score)
        try:
            status = await client.get_status()
            scores[status.serving_version] = 0.0
        except BookrecError as e:
            code: str = e.status.name
            scores[code] = -1.0
        return scores
