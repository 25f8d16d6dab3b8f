"""The server CPU one hostile call can cost, per RPC (issue 20): `python -m bench.load hostile`.

For every RPC of proto/bookrec/v1, the worst request the limits (server/limits.py)
allow, sent to the real server (``python -m server --workers 1 --cache-size 0``: a
hostile caller varies its requests, so no result cache helps) on a synthetic
artifact (bench/scale_artifact.py) of each catalogue size. Per case: two warm-up
calls, then calls one after another until at least ``min_seconds`` and
``min_calls``; the server's CPU (utime + stime of its processes, /proc) over them,
less what it burns idle over as long (pollers, heartbeats), over the calls. The
goal is at most 50 ms a call. Figures only, never a timed test.
"""

from __future__ import annotations

import functools
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.report import markdown_table
from bench.scale_artifact import ScaleSpec
from bench.serverproc import ServerProcess, cpu_seconds, running_server
from bookrec import artifact
from bookrec.v1 import admin_pb2, catalog_pb2, common_pb2, feedback_pb2, recommender_pb2
from bookrec.v1.admin_pb2_grpc import AdminServiceStub
from bookrec.v1.catalog_pb2_grpc import CatalogServiceStub
from bookrec.v1.feedback_pb2_grpc import FeedbackServiceStub
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub
from server import limits

DEFAULT_SIZES: tuple[int, ...] = (30_000, 300_000)
GOAL_MS = 50.0
ADMIN_TOKEN = "bench-hostile-admin"
AUTH = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
ALL_FILTERS = "every filter at its bound"


@dataclass(frozen=True)
class HostileSettings:
    min_calls: int = 10
    max_calls: int = 400
    min_seconds: float = 1.0
    idle_seconds: float = 2.0


@dataclass(frozen=True)
class Case:
    rpc: str
    request: str  # what makes it the worst allowed
    call: Callable[[], Any]  # one call (an error status is an answer too)


@dataclass(frozen=True)
class Catalogue:
    """What the worst requests are made of, read from the artifact."""

    version: str
    heaviest_user: str
    history: int
    popular_book: str
    book_ids: list[str]
    subjects: list[str]  # most carried first
    letters: str  # one-letter words that, together, still match some book

    @staticmethod
    def load(directory: Path) -> Catalogue:
        manifest = artifact.read_manifest(directory)
        indptr = np.asarray(artifact.load_array(directory, manifest, "user_items_indptr"))
        counts = np.asarray(artifact.load_array(directory, manifest, "rating_count"))
        subjects = np.asarray(artifact.load_array(directory, manifest, "book_subjects"))
        users = artifact.load_strings(directory, manifest, "user_ids")
        books = artifact.load_strings(directory, manifest, "book_ids").to_list()
        subject_ids = artifact.load_strings(directory, manifest, "subject_ids").to_list()
        carried = np.bincount(subjects[subjects >= 0], minlength=len(subject_ids))
        texts = zip(
            artifact.load_strings(directory, manifest, "titles").to_list(),
            artifact.load_strings(directory, manifest, "authors").to_list(),
            strict=True,
        )
        heaviest = int(np.argmax(np.diff(indptr)))
        return Catalogue(
            version=manifest.model_version,
            heaviest_user=users[heaviest],
            history=int(np.diff(indptr)[heaviest]),
            popular_book=books[int(np.argmax(counts))],
            book_ids=books,
            subjects=[subject_ids[i] for i in np.argsort(-carried, kind="stable").tolist()],
            letters=_common_letters([f"{t} {a}".lower() for t, a in texts]),
        )


def _common_letters(rows: list[str]) -> str:
    """Up to MAX_QUERY_WORDS one-letter words, most frequent first, that some book
    holds all of: every word is then a full pass of the index (none ends the search
    early by matching nothing)."""
    frequency: dict[str, int] = {}
    for row in rows[:20_000]:
        for ch in set(row.replace(" ", "")):
            frequency[ch] = frequency.get(ch, 0) + 1
    chosen: list[str] = []
    left = rows
    for ch in sorted(frequency, key=lambda c: (-frequency[c], c)):
        holding = [r for r in left if ch in r]
        if holding:
            chosen.append(ch)
            left = holding
        if len(chosen) == limits.MAX_QUERY_WORDS:
            break
    return " ".join(chosen)


def _worst_filters(cat: Catalogue) -> common_pb2.Filters:
    """Every filter list at its bound: the broadest subjects, real books excluded."""
    step = max(1, len(cat.book_ids) // limits.MAX_EXCLUDE_IDS)
    excluded = cat.book_ids[::step][: limits.MAX_EXCLUDE_IDS]
    return common_pb2.Filters(
        exclude_book_ids=excluded,
        subject_ids=cat.subjects[: limits.MAX_FILTER_SUBJECTS],
        min_year=1000,
        max_year=3000,
    )


def _deepest_token(rec: RecommenderServiceStub, request: recommender_pb2.RecommendRequest) -> str:
    """The token of the deepest Recommend page the depth bound allows, paged to for real."""
    token = ""
    while True:
        request.page_token = token
        reply = rec.Recommend(request, timeout=30)
        depth = reply.items[-1].rank if reply.items else 0
        if not reply.next_page_token or depth + request.k >= limits.MAX_RECOMMEND_DEPTH:
            return reply.next_page_token or token
        token = reply.next_page_token


NEW_USER = "bench-hostile-new-user"
NEW_USER_RATINGS = 5


def _new_user_page(
    rec: RecommenderServiceStub, feedback: FeedbackServiceStub, cat: Catalogue
) -> recommender_pb2.RecommendRequest:
    """The deepest page of a user the model does not know, who rated a few books (cold
    start from their subjects, or fold-in: the path the model serves them)."""
    for book in cat.book_ids[:NEW_USER_RATINGS]:
        feedback.RateBook(feedback_pb2.RateBookRequest(user_id=NEW_USER, book_id=book, rating=9))
    request = recommender_pb2.RecommendRequest(user_id=NEW_USER, k=limits.MAX_K, explain=True)
    request.page_token = _deepest_token(
        rec, recommender_pb2.RecommendRequest(user_id=NEW_USER, k=limits.MAX_K)
    )
    return request


def cases(channel: grpc.Channel, cat: Catalogue) -> list[Case]:
    """The worst request the limits allow, per RPC (several where it is not obvious)."""
    rec, catalog = RecommenderServiceStub(channel), CatalogServiceStub(channel)
    feedback, admin = FeedbackServiceStub(channel), AdminServiceStub(channel)
    filters = _worst_filters(cat)
    k = limits.MAX_K
    recommend = recommender_pb2.RecommendRequest(
        user_id=cat.heaviest_user, k=k, filters=filters, explain=True
    )
    deep = recommender_pb2.RecommendRequest(user_id=cat.heaviest_user, k=k, explain=True)
    deep.page_token = _deepest_token(
        rec, recommender_pb2.RecommendRequest(user_id=cat.heaviest_user, k=k)
    )
    new_user = _new_user_page(rec, feedback, cat)
    favourites = cat.subjects[: limits.MAX_FAVOURITE_SUBJECTS]
    long_word = (cat.letters[:1] or "e") * limits.MAX_QUERY_CHARS
    unknown_id = "x" * limits.MAX_ID_CHARS
    search = catalog_pb2.SearchBooksRequest
    subjects = catalog_pb2.ListSubjectsRequest
    return [
        Case(
            "GetBook",
            "unknown 64-char book_id",
            lambda: catalog.GetBook(catalog_pb2.GetBookRequest(book_id=unknown_id)),
        ),
        Case(
            "SearchBooks",
            f"{limits.MAX_QUERY_WORDS} one-letter words, {ALL_FILTERS}, page_size "
            f"{limits.MAX_SEARCH_PAGE}",
            lambda: catalog.SearchBooks(
                search(query=cat.letters, page_size=limits.MAX_SEARCH_PAGE, filters=filters)
            ),
        ),
        Case(
            "SearchBooks",
            f"one {limits.MAX_QUERY_CHARS}-letter word",
            lambda: catalog.SearchBooks(search(query=long_word, page_size=limits.MAX_SEARCH_PAGE)),
        ),
        Case(
            "SearchBooks",
            "empty query (every book), page_size 100",
            lambda: catalog.SearchBooks(search(page_size=limits.MAX_SEARCH_PAGE)),
        ),
        Case(
            "ListSubjects",
            f"one-letter query, page_size {limits.MAX_SUBJECT_PAGE}",
            lambda: catalog.ListSubjects(subjects(query="e", page_size=limits.MAX_SUBJECT_PAGE)),
        ),
        Case(
            "Recommend",
            f"heaviest user ({cat.history} books), k {k}, explain, {ALL_FILTERS}",
            lambda: rec.Recommend(recommend),
        ),
        Case(
            "Recommend",
            f"heaviest user, deepest page (to {limits.MAX_RECOMMEND_DEPTH}), k {k}, explain",
            lambda: rec.Recommend(deep),
        ),
        Case(
            "Recommend",
            f"user the model does not know, {NEW_USER_RATINGS} RateBook ratings, deepest "
            f"page, k {k}, explain",
            lambda: rec.Recommend(new_user),
        ),
        Case(
            "Similar",
            f"HYBRID, k {k}, explain, {ALL_FILTERS}",
            lambda: rec.Similar(
                recommender_pb2.SimilarRequest(
                    book_id=cat.popular_book,
                    k=k,
                    mode=recommender_pb2.SIMILAR_MODE_HYBRID,
                    filters=filters,
                    explain=True,
                )
            ),
        ),
        *(
            Case(
                "ColdStart",
                f"{len(favourites)} broadest subjects, weight {w}, k {k}, explain, {ALL_FILTERS}",
                functools.partial(
                    rec.ColdStart,
                    recommender_pb2.ColdStartRequest(
                        favourite_subjects=favourites,
                        popularity_weight=w,
                        k=k,
                        filters=filters,
                        explain=True,
                    ),
                ),
            )
            for w in (0.0, 0.3)
        ),
        Case(
            "ColdStart",
            f"{limits.MAX_FAVOURITE_SUBJECTS} unknown {limits.MAX_SUBJECT_TEXT}-char subjects "
            "(did-you-mean)",
            lambda: rec.ColdStart(
                recommender_pb2.ColdStartRequest(
                    favourite_subjects=["science fictoin " * 12] * limits.MAX_FAVOURITE_SUBJECTS
                )
            ),
        ),
        Case(
            "RateBook",
            "64-char user_id, explicit rating (durable append)",
            lambda: feedback.RateBook(
                feedback_pb2.RateBookRequest(user_id="h" * 64, book_id=cat.popular_book, rating=10)
            ),
        ),
        Case(
            "GetStatus",
            "admin key",
            lambda: admin.GetStatus(admin_pb2.GetStatusRequest(), metadata=AUTH),
        ),
        Case(
            "PinVersion",
            "unknown 64-char version",
            lambda: admin.PinVersion(
                admin_pb2.PinVersionRequest(version=unknown_id), metadata=AUTH
            ),
        ),
        Case("Unpin", "admin key", lambda: admin.Unpin(admin_pb2.UnpinRequest(), metadata=AUTH)),
        Case(
            "Rollback",
            "no older version to go back to",
            lambda: admin.Rollback(admin_pb2.RollbackRequest(), metadata=AUTH),
        ),
    ]


def _once(case: Case) -> str:
    """One call; its status code's name."""
    try:
        case.call()
    except grpc.RpcError as e:
        return str(e.code().name)
    return "OK"


def idle_rate(server: ServerProcess, seconds: float) -> float:
    """Server CPU seconds per second while it serves nothing."""
    pids = server.tree()
    before, start = cpu_seconds(pids), time.perf_counter()
    time.sleep(seconds)
    return (cpu_seconds(pids) - before) / (time.perf_counter() - start)


def measure(server: ServerProcess, case: Case, idle: float, s: HostileSettings) -> dict[str, Any]:
    """Server CPU per call of ``case``: calls one after another, idle CPU taken off."""
    codes = {_once(case) for _ in range(2)}  # warm-up: lazy paths, connections
    pids = server.tree()
    before, start = cpu_seconds(pids), time.perf_counter()
    walls: list[float] = []
    while len(walls) < s.max_calls and (
        len(walls) < s.min_calls or time.perf_counter() - start < s.min_seconds
    ):
        t0 = time.perf_counter()
        codes.add(_once(case))
        walls.append(time.perf_counter() - t0)
    wall = time.perf_counter() - start
    cpu = max(cpu_seconds(pids) - before - idle * wall, 0.0)
    per_call = 1000 * cpu / len(walls)
    return {
        "rpc": case.rpc,
        "request": case.request,
        "codes": ",".join(sorted(codes)),
        "calls": len(walls),
        "client_p50_ms": round(1000 * statistics.median(walls), 2),
        "server_cpu_ms_per_call": round(per_call, 2),
        "within_goal": "yes" if per_call <= GOAL_MS else "NO",
    }


@contextmanager
def _env(**values: str) -> Iterator[None]:
    """Environment variables for the server started inside (restored after)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _floor(channel: grpc.Channel) -> Case:
    stub: Any = health_pb2_grpc.HealthStub(channel)
    return Case("Health/Check", "floor", lambda: stub.Check(health_pb2.HealthCheckRequest()))


def run_size(artifact_dir: Path, workdir: Path, s: HostileSettings) -> list[dict[str, Any]]:
    """Every case on one artifact, one server."""
    cat = Catalogue.load(artifact_dir)
    with (
        _env(BOOKREC_ADMIN_TOKEN=ADMIN_TOKEN),
        running_server(artifact_dir.parent, workdir, workers=1, cache_size=0) as server,
        grpc.insecure_channel(server.target) as channel,
    ):
        idle = idle_rate(server, s.idle_seconds)
        rows = [measure(server, c, idle, s) for c in [_floor(channel), *cases(channel, cat)]]
    return [{**r, "idle_cpu_share": round(idle, 4)} for r in rows]


COLUMNS = (
    ("books", "books"),
    ("RPC", "rpc"),
    ("worst request allowed", "request"),
    ("status", "codes"),
    ("calls", "calls"),
    ("client p50 ms", "client_p50_ms"),
    ("server CPU ms/call", "server_cpu_ms_per_call"),
    (f"<= {GOAL_MS:g} ms", "within_goal"),
)


def markdown(rows: list[dict[str, Any]], notes: Sequence[str]) -> str:
    return "\n".join(
        [
            "## Hostile calls: server CPU per call of the worst request the limits allow",
            "",
            "`python -m server --workers 1 --cache-size 0` on synthetic artifacts "
            "(bench/scale_artifact.py); calls one after another; server utime+stime over "
            "them (/proc), less its idle CPU over as long, over the calls. Limits: "
            "server/limits.py. Goal: at most "
            f"{GOAL_MS:g} ms a call.",
            "",
            markdown_table(rows, COLUMNS),
            "",
            *notes,
        ]
    )


def hostile_scenario(
    sizes: Sequence[int], users: int, factors: int, seed: int, s: HostileSettings
) -> tuple[list[dict[str, Any]], str]:
    """The cases on each catalogue size (artifacts built once, reused)."""
    from bench.common import RESULTS
    from bench.scenarios import scale_artifact

    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for books in sizes:
        path, built = scale_artifact(
            ScaleSpec(books=books, users=users, factors=factors, seed=seed)
        )
        if built is not None:
            notes.append(f"{books} books: artifact built in {built:.0f} s.")
        rows += [{"books": books, **r} for r in run_size(path, RESULTS / f"hostile-{books}", s)]
    return rows, markdown(rows, notes)
