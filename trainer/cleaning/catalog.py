"""Merge editions into works: the book table every model indexes.

A work's id is, in order of preference: the source's own work id (goodbooks
``GR<work_id>``); the Open Library work key of one of its ISBNs (``OL123W``);
the id of an already-known work with the same normalised title and primary
author; else ``BX`` + the first 10 hex digits (upper case) of
sha1(normalised title | normalised author). So every edition of one text lands
on one stable id, whatever order the rows come in.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from bookrec import rerank_features
from trainer.cleaning.isbn import normalize_isbn
from trainer.cleaning.report import CleaningReport
from trainer.cleaning.rules import BOOKS_ONE_PER_ISBN, BOOKS_VALID_ISBN, EDITIONS_TO_WORKS
from trainer.cleaning.subjects import best_spelling, normalize_part, split_subject_spelled
from trainer.sources.raw import RawBook

UNKNOWN_AUTHOR = rerank_features.UNKNOWN_AUTHOR
WORK_KEY_PREFIX = "work:"  # book_key form that names a work id directly
MIN_YEAR = 1000
MIN_PAGES, MAX_PAGES = 10, 5000
_SERIES = re.compile(r"^(?P<title>.*?)\s*\((?P<series>[^()]*?),?\s*#(?P<vol>\d+)\)\s*$")
_UNKNOWN_AUTHORS = {"", "unknown", "unknown author", "n a", "anonymous", "various"}


@dataclass
class Work:
    work_id: str
    title: str
    author: str
    year: int | None
    series: str
    series_volume: int
    pages: int | None = None
    pages_imputed: bool = False
    isbns: list[str] = field(default_factory=list)
    # Normalised subject parts, main subject first; generic shelves never appear.
    subjects: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Works:
    works: list[Work]  # sorted by work_id
    isbn_to_work: dict[str, str]
    key_to_work: dict[str, str]  # source book key ("gb:12") -> work_id
    # normalised subject part -> its display name, the data's own spelling (best_spelling)
    subject_spellings: dict[str, str] = field(default_factory=dict)


def split_series(title: str) -> tuple[str, str, int]:
    """'Dune (Dune Chronicles, #1)' -> ('Dune', 'Dune Chronicles', 1)."""
    m = _SERIES.match(title)
    if not m or not m.group("title"):
        return title, "", 0
    return m.group("title"), m.group("series").strip(), int(m.group("vol"))


def primary_author(raw: str) -> str:
    first = raw.split(",", maxsplit=1)[0].strip() if raw else ""
    return UNKNOWN_AUTHOR if normalize_part(first) in _UNKNOWN_AUTHORS else first


def clean_year(raw: str) -> int | None:
    """Impossible years (0, the future, before MIN_YEAR) are unknown."""
    try:
        y = int(float(raw))
    except ValueError:
        return None
    return y if MIN_YEAR <= y <= _dt.date.today().year else None


def _pages(raw: str) -> int | None:
    try:
        p = int(float(raw))
    except ValueError:
        return None
    return p if MIN_PAGES <= p <= MAX_PAGES else None


def fallback_work_id(title: str, author: str) -> str:
    key = f"{normalize_part(title)}|{normalize_part(author)}"
    return "BX" + hashlib.sha1(key.encode()).hexdigest()[:10].upper()


def _subject_parts(raws: Sequence[str], spellings: dict[str, Counter[str]]) -> list[str]:
    """A work's distinct parts in order; each distinct spelling of a part counts once in
    ``spellings`` (part -> spelling -> books)."""
    out: list[str] = []
    seen: set[tuple[str, str]] = set()
    for raw in raws:
        for part, spelling in split_subject_spelled(raw):
            if part not in out:
                out.append(part)
            if (part, spelling) not in seen:
                seen.add((part, spelling))
                spellings.setdefault(part, Counter())[spelling] += 1
    return out


def build_works(
    books: Sequence[RawBook],
    isbn_to_work: dict[str, str],
    work_subjects: dict[str, list[str]],
    report: CleaningReport,
) -> Works:
    works: dict[str, Work] = {}
    by_title_author: dict[tuple[str, str], str] = {}
    isbn_work: dict[str, str] = {}
    key_work: dict[str, str] = {}
    spellings: dict[str, Counter[str]] = {}
    invalid = duplicate = 0
    # Rows that carry a work id first, so unmapped twins can join their work.
    ordered = sorted(
        books, key=lambda b: 0 if b.work_key or normalize_isbn(b.isbn) in isbn_to_work else 1
    )
    for row in ordered:
        isbn = normalize_isbn(row.isbn) if row.isbn else None
        if isbn is None and not row.book_key:
            invalid += 1
            continue
        if isbn is not None and isbn in isbn_work:
            duplicate += 1
            continue
        title, series, volume = split_series(row.title)
        author = primary_author(row.author)
        key = (normalize_part(title), normalize_part(author))
        wid = (
            row.work_key
            or (isbn_to_work.get(isbn) if isbn else None)
            or by_title_author.get(key)
            or fallback_work_id(title, author)
        )
        work = works.get(wid)
        year = clean_year(row.year)
        if work is None:
            work = Work(wid, title, author, year, series, volume, _pages(row.pages))
            work.subjects = _subject_parts(work_subjects.get(wid, []), spellings)
            works[wid] = work
        else:
            if year is not None and (work.year is None or year < work.year):
                work.year = year  # the first edition's year
            work.pages = work.pages or _pages(row.pages)
        if isbn is not None:
            work.isbns.append(isbn)
            isbn_work[isbn] = wid
        if row.book_key:
            key_work[row.book_key] = wid
        by_title_author.setdefault(key, wid)
    report.add(BOOKS_VALID_ISBN, len(books), len(books) - invalid, "bad check digit or length")
    report.add(
        BOOKS_ONE_PER_ISBN,
        len(books) - invalid,
        len(books) - invalid - duplicate,
        "same ISBN listed twice; the first row wins",
    )
    report.add(
        EDITIONS_TO_WORKS,
        len(books) - invalid - duplicate,
        len(works),
        "editions of one text merged (work key, Open Library, title + author)",
    )
    _impute_pages(list(works.values()), report)
    # Ratings recorded by the server name works directly (trainer/sources/feedback.py).
    key_work.update({f"{WORK_KEY_PREFIX}{wid}": wid for wid in works})
    return Works(
        sorted(works.values(), key=lambda w: w.work_id),
        isbn_work,
        key_work,
        {part: best_spelling(part, counts) for part, counts in spellings.items()},
    )


def _impute_pages(works: list[Work], report: CleaningReport) -> None:
    """Missing page counts take the median of works sharing the main subject."""
    by_subject: dict[str, list[int]] = {}
    for w in works:
        if w.pages is not None and w.subjects:
            by_subject.setdefault(w.subjects[0], []).append(w.pages)
    known = [w.pages for w in works if w.pages is not None]
    overall = int(statistics.median(known)) if known else 250
    medians = {s: int(statistics.median(v)) for s, v in by_subject.items()}
    imputed = Counter[str]()
    for w in works:
        if w.pages is None:
            subject = w.subjects[0] if w.subjects else ""
            w.pages = medians.get(subject, overall)
            w.pages_imputed = True
            imputed["subject" if subject in medians else "overall"] += 1
    report.notes["pages_imputed"] = dict(imputed)
