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
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bookrec import rerank_features
from trainer.cleaning.report import CleaningReport
from trainer.cleaning.rules import BOOKS_ONE_PER_ISBN, BOOKS_VALID_ISBN, EDITIONS_TO_WORKS
from trainer.cleaning.subjects import best_spelling, normalize_part

if TYPE_CHECKING:
    from trainer.cleaning.columnar import Columnar
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


def clean_pages(raw: str) -> int | None:
    """Impossible page counts (outside MIN_PAGES..MAX_PAGES) are unknown."""
    try:
        p = int(float(raw))
    except ValueError:
        return None
    return p if MIN_PAGES <= p <= MAX_PAGES else None


def fallback_work_id(title: str, author: str) -> str:
    key = f"{normalize_part(title)}|{normalize_part(author)}"
    return "BX" + hashlib.sha1(key.encode()).hexdigest()[:10].upper()


# -- the merge, in the columnar engine ------------------------------------------------------
#
# Input tables (trainer/sources/raw.py): raw_books, source_isbn_work (Open Library's ISBN ->
# work key), raw_subjects (work key -> raw strings) and isbn_canon (raw ISBN -> ISBN-13).
# Output: works, work_isbns, work_parts, isbn_to_work, key_to_work.
#
# The rows are taken in one order: those that carry a work id (their own, or Open
# Library's for their ISBN) first, then the rest, each in file order. A row is dropped
# when it has neither a valid ISBN nor a book key, or when an earlier row had its
# ISBN. A row without a work id joins the first work id seen with its normalised title
# and author, else takes the fallback id, which depends on that pair alone: so the
# result is the one of taking the rows one by one in that order.
_ORDER = "CAST(cand IS NULL AS BIGINT) * 1000000000000000 + pos"


def merge_editions(db: Columnar, report: CleaningReport) -> dict[str, str]:
    """Build the works tables from raw_books; returns the subject spellings."""
    db.execute(
        """CREATE OR REPLACE TABLE b1 AS
        SELECT r.pos, r.title, r.author, r.year, r.pages, r.book_key,
               CASE WHEN r.isbn <> '' THEN c.canon END AS nisbn,
               coalesce(nullif(r.work_key, ''), o.work) AS cand
        FROM raw_books r
        LEFT JOIN isbn_canon c ON c.raw = r.isbn
        LEFT JOIN source_isbn_work o ON o.isbn = c.canon AND r.isbn <> ''"""
    )
    db.execute(
        f"""CREATE OR REPLACE TABLE b2 AS
        SELECT *, {_ORDER} AS ord
        FROM (SELECT *, row_number() OVER (PARTITION BY nisbn ORDER BY {_ORDER}) AS nth
              FROM b1 WHERE nisbn IS NOT NULL OR book_key <> '')
        WHERE nisbn IS NULL OR nth = 1"""
    )
    # The text rules once per distinct value: editions repeat titles, authors and years.
    db.execute(
        """CREATE OR REPLACE TABLE b2 AS
        WITH parts AS (SELECT title, author, py_book_parts(title, author) AS p
                       FROM (SELECT DISTINCT title, author FROM b2)),
        years AS (SELECT year, py_year(year) AS y FROM (SELECT DISTINCT year FROM b2)),
        pages AS (SELECT pages, py_pages(pages) AS pg FROM (SELECT DISTINCT pages FROM b2))
        SELECT b2.*, parts.p, years.y, pages.pg FROM b2
        JOIN parts USING (title, author) JOIN years USING (year) JOIN pages USING (pages)"""
    )
    n_books = db.count("raw_books")
    invalid = n_books - db.count("b1 WHERE nisbn IS NOT NULL OR book_key <> ''")
    n_kept = db.count("b2")
    db.execute(
        """CREATE OR REPLACE TABLE b3 AS
        WITH first_of_key AS (
          SELECT p[5] AS tk, p[6] AS ak, arg_min(cand, pos) AS wid
          FROM b2 WHERE cand IS NOT NULL GROUP BY ALL)
        SELECT b2.*, CASE WHEN b2.cand IS NOT NULL THEN b2.cand
                          ELSE coalesce(f.wid, b2.p[7]) END AS work_id
        FROM b2 LEFT JOIN first_of_key f ON f.tk = b2.p[5] AND f.ak = b2.p[6]"""
    )
    db.execute(
        """CREATE OR REPLACE TABLE works_raw AS
        SELECT work_id, arg_min(p[1], ord) AS title, arg_min(p[4], ord) AS author,
               min(y) AS year, arg_min(pg, ord) FILTER (WHERE pg IS NOT NULL) AS pages,
               arg_min(p[2], ord) AS series, arg_min(CAST(p[3] AS BIGINT), ord) AS series_volume
        FROM b3 GROUP BY work_id"""
    )
    db.execute(
        """CREATE OR REPLACE TABLE work_isbns AS
        SELECT work_id, nisbn AS isbn FROM b3 WHERE nisbn IS NOT NULL"""
    )
    db.execute("CREATE OR REPLACE TABLE isbn_to_work AS SELECT isbn, work_id FROM work_isbns")
    db.execute(
        f"""CREATE OR REPLACE TABLE key_to_work AS
        SELECT book_key, arg_max(work_id, ord) AS work_id FROM b3 WHERE book_key <> ''
        GROUP BY book_key
        UNION ALL SELECT '{WORK_KEY_PREFIX}' || work_id, work_id FROM works_raw"""
    )
    n_works = db.count("works_raw")
    report.add(BOOKS_VALID_ISBN, n_books, n_books - invalid, "bad check digit or length")
    report.add(
        BOOKS_ONE_PER_ISBN, n_books - invalid, n_kept, "same ISBN listed twice; the first row wins"
    )
    report.add(
        EDITIONS_TO_WORKS,
        n_kept,
        n_works,
        "editions of one text merged (work key, Open Library, title + author)",
    )
    for t in ("b1", "b2", "b3"):
        db.execute(f"DROP TABLE {t}")
    spellings = _subjects(db)
    _impute_pages(db, report)
    return spellings


def _subjects(db: Columnar) -> dict[str, str]:
    """work_parts (a work's distinct parts, main first) and each part's display name."""
    db.execute(
        """CREATE OR REPLACE TABLE subject_map AS
        SELECT raw, py_subject_parts(raw) AS l
        FROM (SELECT DISTINCT s.raw FROM raw_subjects s SEMI JOIN works_raw w
              ON w.work_id = s.work_id)"""
    )
    db.execute(
        """CREATE OR REPLACE TABLE subject_pairs AS
        SELECT s.work_id, s.rpos, i, m.l[2 * i - 1] AS part, m.l[2 * i] AS spelling
        FROM raw_subjects s SEMI JOIN works_raw w ON w.work_id = s.work_id
        JOIN subject_map m ON m.raw = s.raw,
        LATERAL (SELECT unnest(range(1, len(m.l) // 2 + 1)) AS i)"""
    )
    db.execute(
        """CREATE OR REPLACE TABLE work_parts AS
        SELECT work_id, CAST(row_number() OVER (PARTITION BY work_id ORDER BY rpos, i) - 1
                             AS BIGINT) AS position, part
        FROM (SELECT work_id, part, arg_min(rpos, rpos * 100000 + i) AS rpos,
                     arg_min(i, rpos * 100000 + i) AS i
              FROM subject_pairs GROUP BY work_id, part)"""
    )
    counts: dict[str, Counter[str]] = {}
    for part, spelling, n in db.all(
        """SELECT part, spelling, count(*) FROM
           (SELECT DISTINCT work_id, part, spelling FROM subject_pairs) GROUP BY ALL"""
    ):
        counts.setdefault(part, Counter())[spelling] = n
    db.execute("DROP TABLE subject_pairs")
    db.execute("DROP TABLE subject_map")
    return {part: best_spelling(part, c) for part, c in counts.items()}


def _impute_pages(db: Columnar, report: CleaningReport) -> None:
    """Missing page counts take the median of works sharing the main subject."""
    overall = db.scalar(
        "SELECT CAST(trunc(quantile_cont(pages, 0.5)) AS BIGINT) FROM works_raw "
        "WHERE pages IS NOT NULL"
    )
    overall = 250 if overall is None else int(overall)
    db.execute(
        f"""CREATE OR REPLACE TABLE works AS
        WITH main AS (SELECT work_id, part FROM work_parts WHERE position = 0),
        medians AS (
          SELECT m.part, CAST(trunc(quantile_cont(w.pages, 0.5)) AS BIGINT) AS median
          FROM works_raw w JOIN main m USING (work_id) WHERE w.pages IS NOT NULL GROUP BY m.part)
        SELECT w.work_id, w.title, w.author, w.year,
               coalesce(w.pages, d.median, {overall}) AS pages, w.pages IS NULL AS pages_imputed,
               w.series, w.series_volume,
               CASE WHEN w.pages IS NOT NULL THEN NULL WHEN d.median IS NOT NULL THEN 'subject'
                    ELSE 'overall' END AS imputed_by
        FROM works_raw w LEFT JOIN main m USING (work_id) LEFT JOIN medians d ON d.part = m.part
        ORDER BY w.work_id"""
    )
    db.execute("DROP TABLE works_raw")
    report.notes["pages_imputed"] = dict(
        db.all(
            "SELECT imputed_by, count(*) FROM works WHERE imputed_by IS NOT NULL "
            "GROUP BY imputed_by ORDER BY min(work_id)"
        )
    )


# -- small inputs: the same merge on rows held in Python (tests, tools) ---------------------


def build_works(
    books: Sequence[RawBook],
    isbn_to_work: dict[str, str],
    work_subjects: dict[str, list[str]],
    report: CleaningReport,
) -> Works:
    """``merge_editions`` on Python rows; the works come back as ``Work`` objects."""
    from trainer.sources.raw import RawDataset

    raw = RawDataset("", books=list(books), isbn_to_work=isbn_to_work, work_subjects=work_subjects)
    with raw.tables() as db:
        spellings = merge_editions(db, report)
        works = read_works(db)
        isbn_work = dict(db.all("SELECT isbn, work_id FROM isbn_to_work"))
        key_work = dict(db.all("SELECT book_key, work_id FROM key_to_work"))
    return Works(works, isbn_work, key_work, spellings)


def read_works(db: Columnar) -> list[Work]:
    """The works table as ``Work`` objects, sorted by work_id (small data only)."""
    isbns: dict[str, list[str]] = {}
    for wid, isbn in db.all("SELECT work_id, isbn FROM work_isbns ORDER BY rowid"):
        isbns.setdefault(wid, []).append(isbn)
    parts: dict[str, list[str]] = {}
    for wid, part in db.all("SELECT work_id, part FROM work_parts ORDER BY work_id, position"):
        parts.setdefault(wid, []).append(part)
    return [
        Work(
            wid,
            title,
            author,
            year,
            series,
            vol,
            pages,
            imputed,
            isbns.get(wid, []),
            parts.get(wid, []),
        )
        for wid, title, author, year, pages, imputed, series, vol in db.all(
            "SELECT work_id, title, author, year, pages, pages_imputed, series, series_volume "
            "FROM works ORDER BY work_id"
        )
    ]
