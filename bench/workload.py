"""What the load generator sends: real ids of the served artifact, drawn Zipf-style,
in a configurable mix of RPCs.

Ids come from the artifact itself (so every request names a user, book or
subject the server knows) and are ranked by their own popularity in it: books
by training interactions, users by history length, subjects by book count. The
head of the Zipf distribution is then the head of the real catalogue, as in
production traffic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from grpc_health.v1 import health_pb2

from bench.arrivals import ZipfSampler
from bookrec import artifact
from bookrec.v1 import catalog_pb2, feedback_pb2, recommender_pb2

FLOOR = "health"
KINDS: tuple[str, ...] = (
    "recommend",
    "similar",
    "similar_subject",
    "similar_hybrid",
    "cold_start",
    "get_book",
    "search",
    "list_subjects",
    "rate_book",
    FLOOR,
)
DEFAULT_MIX = "recommend=0.6,similar=0.2,cold_start=0.2"
# The gRPC paths of the RPCs the benchmarks call by path (h2load, the web gateway's
# relay); the Python load generator calls stubs (bench/client.py).
PATHS: dict[str, str] = {
    FLOOR: "/grpc.health.v1.Health/Check",
    "recommend": "/bookrec.v1.RecommenderService/Recommend",
    "similar": "/bookrec.v1.RecommenderService/Similar",
    "cold_start": "/bookrec.v1.RecommenderService/ColdStart",
    "search": "/bookrec.v1.CatalogService/SearchBooks",
}
_BLOCK = 4096


def parse_mix(text: str) -> dict[str, float]:
    """``"recommend=0.6,similar=0.4"`` -> shares summing to 1; unknown kinds are an error."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if name not in KINDS:
            raise ValueError(f"unknown RPC {name!r} in mix; choose from {', '.join(KINDS)}")
        try:
            weight = float(value) if sep else 1.0
        except ValueError as e:
            raise ValueError(f"bad weight {value!r} for {name!r} in mix") from e
        if weight < 0:
            raise ValueError(f"negative weight for {name!r} in mix")
        mix[name] = mix.get(name, 0.0) + weight
    total = sum(mix.values())
    if total <= 0:
        raise ValueError(f"mix {text!r} has no positive weight")
    return {k: v / total for k, v in mix.items() if v > 0}


def with_floor(mix: Mapping[str, float], floor_share: float) -> dict[str, float]:
    """The mix with ``floor_share`` of requests turned into health checks (the floor)."""
    if not 0.0 <= floor_share < 1.0:
        raise ValueError(f"floor share must be in [0, 1), got {floor_share}")
    out = {k: v * (1.0 - floor_share) for k, v in mix.items() if k != FLOOR}
    rest = mix.get(FLOOR, 0.0) * (1.0 - floor_share)
    if floor_share or rest:
        out[FLOOR] = floor_share + rest
    return out


@dataclass(frozen=True)
class ArtifactIds:
    """Ids of one artifact, most popular first; ``model_version`` is the one it serves."""

    model_version: str
    user_ids: list[str]
    book_ids: list[str]
    subject_ids: list[str]
    title_words: list[str]  # one search word per book, same order as book_ids

    @staticmethod
    def load(directory: Path) -> ArtifactIds:
        manifest = artifact.read_manifest(directory)

        def arr(name: str) -> Any:
            return artifact.load_array(directory, manifest, name)

        def strings(name: str) -> list[str]:
            return artifact.load_strings(directory, manifest, name).to_list()

        book_order = np.argsort(-np.asarray(arr("rating_count")), kind="stable")
        user_order = np.argsort(-np.asarray(arr("user_stats"))[:, 0], kind="stable")
        subjects = np.asarray(arr("book_subjects"))
        subject_ids = strings("subject_ids")
        counts = np.bincount(subjects[subjects >= 0], minlength=len(subject_ids))
        subject_order = np.argsort(-counts, kind="stable")
        books, titles, users = strings("book_ids"), strings("titles"), strings("user_ids")
        return ArtifactIds(
            model_version=manifest.model_version,
            user_ids=[users[i] for i in user_order.tolist()],
            book_ids=[books[i] for i in book_order.tolist()],
            subject_ids=[subject_ids[i] for i in subject_order.tolist()],
            title_words=[_search_word(titles[i]) for i in book_order.tolist()],
        )


def _search_word(title: str) -> str:
    """The longest word of a title: a query that matches it and a few others."""
    words = [w.strip(".,:;!?'\"()") for w in title.split()]
    return max(words, key=len, default="the") or "the"


class RequestFactory:
    """Draws (kind, request message) pairs: kinds by the mix, ids Zipf-distributed."""

    def __init__(
        self,
        ids: ArtifactIds,
        mix: Mapping[str, float],
        rng: np.random.Generator,
        zipf_s: float = 1.0,
        k: int = 10,
    ) -> None:
        if not ids.user_ids and any(k in mix for k in ("recommend", "rate_book")):
            raise ValueError("the artifact has no users to recommend for")
        self._rng = rng
        self.mix = dict(mix)
        self._kinds = list(self.mix)
        self._p = np.array([self.mix[k] for k in self._kinds], dtype=np.float64)
        self._buffer: list[int] = []
        self.k = k
        self.users = ZipfSampler(ids.user_ids or [""], zipf_s, rng)
        self.books = ZipfSampler(range(len(ids.book_ids)), zipf_s, rng)
        self.subjects = ZipfSampler(ids.subject_ids, zipf_s, rng)
        self.ids = ids

    def kind(self) -> str:
        if not self._buffer:
            drawn = self._rng.choice(len(self._kinds), size=_BLOCK, p=self._p)
            self._buffer = drawn.tolist()
        return self._kinds[self._buffer.pop()]

    def book(self) -> str:
        return self.ids.book_ids[self.books.sample()]

    def build(self, kind: str) -> Any:
        """The request message for one ``kind``."""
        if kind == "recommend":
            return recommender_pb2.RecommendRequest(user_id=self.users.sample(), k=self.k)
        if kind in ("similar", "similar_subject", "similar_hybrid"):
            mode = {
                "similar": recommender_pb2.SIMILAR_MODE_ALS,
                "similar_subject": recommender_pb2.SIMILAR_MODE_SUBJECT,
                "similar_hybrid": recommender_pb2.SIMILAR_MODE_HYBRID,
            }[kind]
            return recommender_pb2.SimilarRequest(book_id=self.book(), k=self.k, mode=mode)
        if kind == "cold_start":
            n = 1 + int(self._rng.integers(3))
            favourites: list[str] = sorted({self.subjects.sample() for _ in range(n)})
            return recommender_pb2.ColdStartRequest(favourite_subjects=favourites, k=self.k)
        if kind == "get_book":
            return catalog_pb2.GetBookRequest(book_id=self.book())
        if kind == "search":
            word = self.ids.title_words[self.books.sample()]
            return catalog_pb2.SearchBooksRequest(query=word, page_size=self.k)
        if kind == "list_subjects":
            return catalog_pb2.ListSubjectsRequest(page_size=50)
        if kind == "rate_book":
            rating = int(self._rng.integers(0, 11))
            return feedback_pb2.RateBookRequest(
                user_id=self.users.sample(), book_id=self.book(), rating=rating
            )
        if kind == FLOOR:
            return health_pb2.HealthCheckRequest(service="")
        raise ValueError(f"unknown RPC kind {kind!r}")

    def next(self) -> tuple[str, Any]:
        kind = self.kind()
        return kind, self.build(kind)
