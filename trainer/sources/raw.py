"""What every ingest source produces: raw rows, before any cleaning.

Sources differ (Book-Crossing CSV, goodbooks-10k, Open Library dumps, the
synthetic generator); cleaning sees only these types. Values stay as the source
wrote them (dirty ISBNs, ages as text) so the cleaning report can count every
rule it applies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trainer.cleaning.rules import EVERY_RULE


@dataclass(frozen=True)
class RawBook:
    isbn: str  # as written; "" when the source has none
    title: str
    author: str
    year: str
    publisher: str = ""
    pages: str = ""
    # The source's own book id, when its ratings use it instead of an ISBN ("gb:12").
    book_key: str = ""
    # The source's own work id, when it has one ("GR2792775"); editions sharing it merge.
    work_key: str = ""


@dataclass(frozen=True)
class RawRating:
    user_id: str
    isbn: str  # "" when book_key names the book
    rating: int  # 0 implicit, 1..10 explicit (sources on other scales are rescaled)
    book_key: str = ""
    timestamp: int | None = None  # unix seconds, when the source has them
    # How much the interaction counts: an implicit source's count (plays, clicks); 1.0 for
    # explicit ratings and for sources that have no counts.
    weight: float = 1.0


@dataclass(frozen=True)
class RawUser:
    user_id: str
    location: str
    age: str  # as written ("NULL", "244", ...)


@dataclass
class ReadReport:
    """What happened to the lines of one file."""

    file: str
    lines: int = 0
    rows: int = 0
    recovered: int = 0
    rejected: int = 0
    rejected_examples: list[str] = field(default_factory=list)
    # What lines -> rows means for this report, when it is not "unparseable lines dropped".
    why: str = ""

    def reject(self, lineno: int, why: str) -> None:
        self.rejected += 1
        if len(self.rejected_examples) < 10:
            self.rejected_examples.append(f"{self.file}:{lineno}: {why}")


@dataclass
class RawDataset:
    source: str
    books: list[RawBook] = field(default_factory=list)
    ratings: list[RawRating] = field(default_factory=list)
    users: list[RawUser] = field(default_factory=list)
    # work key -> raw subject strings (Open Library subjects, goodreads shelves)
    work_subjects: dict[str, list[str]] = field(default_factory=dict)
    # canonical ISBN-13 -> work key (Open Library editions dump)
    isbn_to_work: dict[str, str] = field(default_factory=dict)
    reports: list[ReadReport] = field(default_factory=list)
    # The cleaning rules this source's rows go through (trainer/cleaning/rules.py): the
    # cleaning report lists these, and any other rule only when it dropped rows.
    rules: tuple[str, ...] = EVERY_RULE
