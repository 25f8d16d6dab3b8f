"""What every ingest source produces: raw rows, before any cleaning.

Sources differ (Book-Crossing CSV, goodbooks-10k, Open Library dumps, the rating
log, your own CSV); cleaning sees only these tables. Values stay as the source
wrote them (dirty ISBNs, ages as text) so the cleaning report can count every
rule it applies.

The rows live in the columnar engine (trainer/cleaning/columnar.py), in the tables
``RAW_TABLES`` declares: the large files' readers write them there directly. Rows
held in Python (``books``, ``ratings``, ``users``, ``isbn_to_work``,
``work_subjects``: small files, the rating log, tests) join them when ``tables()``
is called, after the rows already there, in their order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trainer.cleaning.rules import EVERY_RULE

if TYPE_CHECKING:
    from trainer.cleaning.columnar import Columnar

# pos: the order rows were read in, which some rules follow (the first row wins).
RAW_TABLES = {
    "raw_books": "pos BIGINT, isbn VARCHAR, title VARCHAR, author VARCHAR, year VARCHAR, "
    "publisher VARCHAR, pages VARCHAR, book_key VARCHAR, work_key VARCHAR",
    "raw_ratings": "pos BIGINT, user_id VARCHAR, isbn VARCHAR, rating BIGINT, book_key VARCHAR, "
    "ts BIGINT, weight DOUBLE",
    "raw_users": "pos BIGINT, user_id VARCHAR, location VARCHAR, age VARCHAR",
    # a source's canonical ISBN-13 -> work key (Open Library editions): first one wins
    "source_isbn_work": "isbn VARCHAR, work VARCHAR",
    # work key -> raw subject strings, in order
    "raw_subjects": "work_id VARCHAR, rpos BIGINT, raw VARCHAR",
}


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
    # The tables the readers wrote (None: every row is still in the lists above).
    db: Columnar | None = None

    def columnar(self) -> Columnar:
        """The engine the readers write into, with the raw tables made (once)."""
        if self.db is None:
            from trainer.cleaning.columnar import Columnar

            self.db = Columnar.open()
            for name, columns in RAW_TABLES.items():
                self.db.execute(f"CREATE TABLE {name} ({columns})")
        return self.db

    def rating_rows(self) -> list[RawRating]:
        """Every rating row, the engine's and the Python-held ones, in order (small data:
        tests and tools)."""
        rows: list[RawRating] = []
        if self.db is not None:
            rows = [
                RawRating(u, i, int(r), k, None if t is None else int(t), float(w))
                for u, i, r, k, t, w in self.db.all(
                    "SELECT user_id, isbn, rating, book_key, ts, weight FROM raw_ratings "
                    "ORDER BY pos"
                )
            ]
        return rows + self.ratings

    def tables(self) -> Columnar:
        """Every raw row in the engine (the Python-held ones moved there), plus
        isbn_canon: each distinct raw ISBN and its ISBN-13 (NULL when invalid)."""
        db = self.columnar()
        for table, columns, rows in (
            ("raw_books", _BOOK, [(b.isbn, b.title, b.author, b.year, b.publisher, b.pages,
                                   b.book_key, b.work_key) for b in self.books]),
            ("raw_ratings", _RATING, [(r.user_id, r.isbn, r.rating, r.book_key, r.timestamp,
                                       float(r.weight)) for r in self.ratings]),
            ("raw_users", _USER, [(u.user_id, u.location, u.age) for u in self.users]),
        ):  # fmt: skip
            if rows:
                base = int(db.scalar(f"SELECT coalesce(max(pos) + 1, 0) FROM {table}"))
                db.insert(table, ("pos", *columns), [(base + i, *r) for i, r in enumerate(rows)])
        db.insert("source_isbn_work", ("isbn", "work"), list(self.isbn_to_work.items()))
        db.insert(
            "raw_subjects",
            ("work_id", "rpos", "raw"),
            [
                (w, i, raw)
                for w, subjects in self.work_subjects.items()
                for i, raw in enumerate(subjects)
            ],
        )
        self.books, self.ratings, self.users = [], [], []
        self.isbn_to_work, self.work_subjects = {}, {}
        db.execute(
            """CREATE OR REPLACE TABLE isbn_canon AS SELECT raw, py_isbn13(raw) AS canon FROM (
              SELECT DISTINCT isbn AS raw FROM raw_books WHERE isbn <> ''
              UNION SELECT DISTINCT isbn FROM raw_ratings WHERE book_key = '')"""
        )
        return db


_BOOK = ("isbn", "title", "author", "year", "publisher", "pages", "book_key", "work_key")
_RATING = ("user_id", "isbn", "rating", "book_key", "ts", "weight")
_USER = ("user_id", "location", "age")
