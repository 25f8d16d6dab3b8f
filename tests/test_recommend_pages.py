"""Recommend's pages are one list cut in pieces (issue 20): the books of pages k apart,
in order, are the books one large page holds at those places, none twice and none
skipped, and the list ends where the large page does. For known users (reranked),
users the model does not know (folded in from their ratings, or cold start from the
subjects of the books they rated, or popularity), over k and page counts, on flat,
IVF and HNSW indexes with and without item-item and the reranker, with and without
filters; in the engine (single and batched), then against a real server on loopback
(Recommend, and SearchBooks and ListSubjects likewise).

Before: pages past the reranked head (300 books) were plain ALS order counted from its
first book, so a page across its end repeated and skipped books (a known user's k=7
pages: 5-6 repeats in 1,000 rows), the page ending at it ended the list, each page
searched as deep as it reached (an approximate index answers a deeper search with
other books), and one large page (k=1000) was not the reranked list at all."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.scale_artifact import ScaleSpec, build
from clients.aio import AsyncBookrecClient
from clients.client import NO_RETRY, BookrecClient
from server.engine.batch_recommend import RecommendCall, recommend_many
from server.engine.bundle import Bundle
from server.engine.recommend import recommend
from server.engine.types import Filters, RankedList
from server.limits import MAX_RECOMMEND_DEPTH
from tests.fault_table import record_fault
from tests.serverproc import ServerProcess, running_server
from tests.test_batch_engine import _variants

SPEC = ScaleSpec(books=3000, users=600, factors=16, subject_dim=8, subjects=60, clusters=12)
# Places where a list changes hands: the first page, the reranked head's end (300), the
# blended union's, and the deepest page.
AROUND = (0, 60, 100, 120, 299, 300, 301, 600, 999)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("pages"), SPEC)


class Variants(dict[str, Bundle]):
    """The bundle variants (a short repr: hypothesis prints arguments on failure)."""

    def __repr__(self) -> str:
        return f"<{len(self)} bundle variants>"


@pytest.fixture(scope="module")
def variants(artifact: Path) -> Variants:
    return Variants(_variants(Bundle.open(artifact)))


def _user_ids(bundle: Bundle) -> list[str]:
    return list(bundle.user_row)


def _who(bundle: Bundle, kind: str, seed: int) -> tuple[str, dict[str, int] | None]:
    """A user id and the ratings it arrived with since training."""
    rng = random.Random(seed)
    if kind == "known":
        users = _user_ids(bundle)
        return users[rng.randrange(len(users))], None
    if kind == "unknown, no ratings":
        return f"nobody-{seed}", None
    rated = rng.sample(range(bundle.n_books), rng.randint(1, 8))
    return f"new-{seed}", {bundle.book_ids[r]: rng.randint(6, 10) for r in rated}


def _filters(bundle: Bundle, kind: str) -> Filters:
    if kind == "subject":
        return Filters(subject_ids=frozenset(bundle.subject_ids[i] for i in range(3)))
    if kind == "exclude":
        return Filters(exclude_book_ids=frozenset(bundle.book_ids[i] for i in range(0, 200, 7)))
    return Filters()


def _pages(
    bundle: Bundle, user: str, new: dict[str, int] | None, f: Filters, k: int, first: int, n: int
) -> tuple[list[int], list[RankedList]]:
    """Pages ``first .. first + n - 1`` of size ``k`` (the last one shorter at the
    depth limit), stopping where a page says the list ends."""
    books: list[int] = []
    pages = []
    for p in range(first, first + n):
        offset = p * k
        if offset >= MAX_RECOMMEND_DEPTH:
            break
        page = recommend(bundle, user, min(k, MAX_RECOMMEND_DEPTH - offset), f, False, offset, new)
        assert [s.rank for s in page.items] == list(range(offset + 1, offset + len(page.items) + 1))
        books += [s.item for s in page.items]
        pages.append(page)
        if not page.has_more:
            break
    return books, pages


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(
        [
            "als+reranker",
            "als",
            "als+item_item",
            "als+item_item+reranker",
            "ivf als+reranker, new-user fold-in",
            "ivf als+item_item+reranker",
            "hnsw als+reranker",
        ]
    ),
    kind=st.sampled_from(["known", "known", "unknown, rated", "unknown, no ratings"]),
    seed=st.integers(0, 10_000),
    filters=st.sampled_from(["none", "none", "subject", "exclude"]),
    k=st.integers(1, 100),
    around=st.sampled_from(AROUND),
    back=st.integers(0, 2),
    n=st.integers(1, 6),
)
def test_engine_pages_are_one_list(
    variants: Variants,
    name: str,
    kind: str,
    seed: int,
    filters: str,
    k: int,
    around: int,
    back: int,
    n: int,
) -> None:
    bundle = variants[name]
    user, new = _who(bundle, kind, seed)
    f = _filters(bundle, filters)
    whole = recommend(bundle, user, MAX_RECOMMEND_DEPTH, f, False, 0, new)
    large = [s.item for s in whole.items]
    assert len(set(large)) == len(large)
    first = max(around // k - back, 0)
    books, pages = _pages(bundle, user, new, f, k, first, n)
    start = first * k
    assert books == large[start : start + len(books)], (name, kind, k, first)
    if pages and not pages[-1].has_more:
        assert start + len(books) == len(large) or start + len(books) == MAX_RECOMMEND_DEPTH
    # The batched path cuts the same pages.
    calls = [
        RecommendCall(user, min(k, MAX_RECOMMEND_DEPTH - p * k), f, False, p * k, new)
        for p in range(first, first + len(pages))
    ]
    batched = recommend_many(bundle, calls)
    assert [[s.item for s in r.items] for r in batched if isinstance(r, RankedList)] == [
        [s.item for s in p.items] for p in pages
    ]


def test_a_known_users_k7_pages_hold_no_repeat(variants: Variants) -> None:
    """The tester's case in small: a known user's whole list in pages of 7 and of 100,
    and one page of 1,000, on the reranked bundle: the same 1,000 books, once each."""
    bundle = variants["als+reranker"]
    user = _user_ids(bundle)[3]
    large = [s.item for s in recommend(bundle, user, 1000, Filters(), False, 0).items]
    for k in (7, 100):
        books, _ = _pages(bundle, user, None, Filters(), k, 0, 1000)
        assert books == large and len(set(books)) == 1000


# Against a real server: a module-scoped one on the synthetic artifact (reranker, 300
# candidates; its cache on, as served).


@pytest.fixture(scope="module")
def server(artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    work = tmp_path_factory.mktemp("pages-server")
    with running_server(artifact.parent, work, workers=1) as srv:
        srv.wait_health(health_pb2.HealthCheckResponse.SERVING)
        yield srv


async def _listed(client: AsyncBookrecClient, user: str, k: int) -> list[str]:
    return [item.book.book_id async for item in client.iter_recommend(user, k)]


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    users=st.lists(
        st.one_of(st.integers(0, 599).map(str), st.just("nobody")), min_size=1, max_size=4
    ),
    k=st.sampled_from([1, 7, 10, 33, 100]),
)
def test_served_pages_are_one_list(
    server: ServerProcess, variants: Variants, users: list[Any], k: int
) -> None:
    """Users paged at once (the server batches their calls) to the end of their lists:
    each list is the engine's one large page, none repeated, and ends at its depth."""
    bundle = variants["als+reranker"]
    known = _user_ids(bundle)
    ids = [known[int(u)] if u != "nobody" else "nobody" for u in users]

    async def page_all() -> list[list[str]]:
        async with AsyncBookrecClient(server.target, api_key="", retry=NO_RETRY) as client:
            return await asyncio.gather(*(_listed(client, u, k) for u in ids))

    for user, got in zip(ids, asyncio.run(page_all()), strict=True):
        whole = recommend(bundle, user, MAX_RECOMMEND_DEPTH, Filters(), False, 0)
        assert got == [bundle.book_ids[s.item] for s in whole.items], (user, k)
        assert len(set(got)) == len(got)


def test_served_catalogue_pages_are_one_list(server: ServerProcess) -> None:
    """SearchBooks and ListSubjects: pages of 7 hold what pages of the largest size hold,
    in order, none twice."""
    with BookrecClient(server.target, api_key="", retry=NO_RETRY) as client:
        for query in ("", "ka", "the mor"):
            small = [b.book_id for b in client.iter_search(query, 7)]
            large = [b.book_id for b in client.iter_search(query, 100)]
            assert small == large and len(set(small)) == len(small), query
        small_subjects = _subjects(client, 7)
        assert small_subjects == _subjects(client, 1000)
        assert len(set(small_subjects)) == len(small_subjects)
    record_fault(
        "Recommend, SearchBooks and ListSubjects paged to the end with small and large "
        "pages (known, folded-in, cold-start and popularity users; reranked head of 300)",
        "the pages are one list cut in pieces: the same books in the same order as one "
        "large page, none repeated or skipped",
    )


def _subjects(client: BookrecClient, size: int) -> list[str]:
    return [s.subject_id for s in client.iter_subjects("", size)]
