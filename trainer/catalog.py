"""Merge editions into works and build the book table the models index.

A work is identified by its Open Library work key when an editions dump maps
one of its ISBNs; otherwise by the rule documented in docs/artifact-format.md:
``BX`` + the first 10 hex digits of sha1(normalised title | normalised author),
so that every edition of one text lands on one stable id. An unmapped edition
whose normalised title and author match an Open Library work joins that work.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from trainer.isbn import normalize_isbn
from trainer.openlibrary import OLWork
from trainer.raw import RawBook
from trainer.subjects import SubjectVocab, build_vocab, normalize_part

UNKNOWN_AUTHOR = "Unknown Author"
MAX_SUBJECTS_PER_BOOK = 8
_SERIES = re.compile(r"^(?P<title>.*?)\s*\((?P<series>[^()]*?),?\s*#(?P<vol>\d+)\)\s*$")
_UNKNOWN_AUTHORS = {"", "unknown", "unknown author", "n a", "anonymous"}


@dataclass
class Work:
    work_id: str
    title: str
    author: str
    year: int
    series: str
    series_volume: int
    isbns: list[str] = field(default_factory=list)
    raw_subjects: tuple[str, ...] = ()


@dataclass(frozen=True)
class Catalog:
    works: list[Work]  # item_idx -> work
    isbn_to_item: dict[str, int]
    vocab: SubjectVocab
    book_subjects: list[list[int]]  # item_idx -> subject indices
    invalid_isbns: int
    unmapped_isbns: int


def split_series(title: str) -> tuple[str, str, int]:
    """'Dune (Dune Chronicles, #1)' -> ('Dune', 'Dune Chronicles', 1)."""
    m = _SERIES.match(title)
    if not m or not m.group("title"):
        return title, "", 0
    return m.group("title"), m.group("series").strip(), int(m.group("vol"))


def _author(raw: str) -> str:
    first = raw.split(",", maxsplit=1)[0].strip() if raw else ""
    return UNKNOWN_AUTHOR if normalize_part(first) in _UNKNOWN_AUTHORS else first


def _year(raw: str) -> int:
    try:
        y = int(raw)
    except ValueError:
        return 0
    return y if 1000 <= y <= _dt.date.today().year else 0


def _fallback_id(title: str, author: str) -> str:
    key = f"{normalize_part(title)}|{normalize_part(author)}"
    return "BX" + hashlib.sha1(key.encode()).hexdigest()[:10].upper()


def build_catalog(
    books: Sequence[RawBook],
    isbn_to_ol: dict[str, str],
    ol_works: dict[str, OLWork],
    min_subject_books: int = 2,
) -> Catalog:
    works: dict[str, Work] = {}
    by_title_author: dict[tuple[str, str], str] = {}
    isbn_to_work: dict[str, str] = {}
    invalid = unmapped = 0
    # Open Library-mapped editions first so unmapped twins can join their work.
    mapped, rest = [], []
    for row in books:
        isbn = normalize_isbn(row.isbn)
        if isbn is None:
            invalid += 1
        elif isbn in isbn_to_ol:
            mapped.append((isbn, row))
        else:
            rest.append((isbn, row))
    for isbn, row in [*mapped, *rest]:
        if isbn in isbn_to_work:
            continue  # duplicate ISBN line: the first one wins
        title, series, volume = split_series(row.title)
        author = _author(row.author)
        key = (normalize_part(row.title), normalize_part(author))
        wid = isbn_to_ol.get(isbn) or by_title_author.get(key) or _fallback_id(row.title, author)
        if isbn not in isbn_to_ol:
            unmapped += 1
        work = works.get(wid)
        if work is None:
            ol = ol_works.get(wid)
            work = Work(wid, title, author, _year(row.year), series, volume)
            work.raw_subjects = ol.subjects if ol else ()
            works[wid] = work
        elif work.year == 0 or 0 < _year(row.year) < work.year:
            work.year = _year(row.year) or work.year
        work.isbns.append(isbn)
        by_title_author.setdefault(key, wid)
        isbn_to_work[isbn] = wid
    ordered = sorted(works.values(), key=lambda w: w.work_id)
    item_of = {w.work_id: i for i, w in enumerate(ordered)}
    vocab = build_vocab([w.raw_subjects for w in ordered], min_books=min_subject_books)
    return Catalog(
        works=ordered,
        isbn_to_item={isbn: item_of[w] for isbn, w in isbn_to_work.items()},
        vocab=vocab,
        book_subjects=[vocab.encode(w.raw_subjects, MAX_SUBJECTS_PER_BOOK) for w in ordered],
        invalid_isbns=invalid,
        unmapped_isbns=unmapped,
    )
