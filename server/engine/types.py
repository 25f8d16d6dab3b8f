"""Plain result types the engine returns; the handlers turn them into messages."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Source(enum.Enum):
    ALS = "als"
    ALS_RERANKED = "als_reranked"
    COLD_START = "cold_start"
    POPULARITY = "popularity"
    SUBJECT = "subject"
    HYBRID = "hybrid"


class ReasonKind(enum.Enum):
    SIMILAR_TO_RATED = "similar_to_rated"
    FAVOURITE_SUBJECT = "favourite_subject"
    POPULAR = "popular"
    SAME_AUTHOR = "same_author"
    SAME_SERIES = "same_series"
    CO_READ = "co_read"
    SHARED_SUBJECT = "shared_subject"


class SimilarMode(enum.Enum):
    ALS = "als"
    SUBJECT = "subject"
    HYBRID = "hybrid"


@dataclass(frozen=True)
class Reason:
    kind: ReasonKind
    text: str
    related_item: int = -1
    subject: int = -1


@dataclass(frozen=True)
class Scored:
    item: int
    score: float
    rank: int  # 1-based over the whole list
    reasons: tuple[Reason, ...] = ()


@dataclass(frozen=True)
class RankedList:
    items: list[Scored]
    source: Source
    has_more: bool = False


@dataclass(frozen=True)
class Filters:
    exclude_book_ids: frozenset[str] = field(default_factory=frozenset)
    subject_ids: frozenset[str] = field(default_factory=frozenset)
    min_year: int | None = None
    max_year: int | None = None

    def key(self) -> str:
        """Stable text form, used to tie page tokens to the filters they were made with."""
        return "|".join(
            [
                ",".join(sorted(self.exclude_book_ids)),
                ",".join(sorted(self.subject_ids)),
                str(self.min_year),
                str(self.max_year),
            ]
        )
