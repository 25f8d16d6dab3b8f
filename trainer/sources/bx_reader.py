"""Reader for the Book-Crossing CSV files (BX-Books, BX-Users, BX-Book-Ratings).

The real files are latin-1, `;`-separated, every field quoted, and dirty: a
few lines carry a stray `;` or `"` inside a title. Each line is parsed on its
own (no field ever spans lines in this format), so a broken quote cannot
swallow the lines after it; lines with too many fields are recovered where the
layout allows, the rest are counted and reported with their line numbers.

The files are read by the columnar engine (trainer/sources/lines.py): a
well-formed line (`"a";"b";"c"`) is split in SQL, any other by Python's csv
module, and a field is decoded and trimmed by Python only when it has an entity,
a backslash or an edge that is not plain ASCII. ``load_*`` write the raw tables;
``read_*`` return the rows of a small file as Python objects (tests, tools).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from trainer.cleaning import rules
from trainer.cleaning.columnar import Columnar
from trainer.errors import InputError
from trainer.sources.lines import load_lines, rejected
from trainer.sources.raw import RawBook, RawRating, RawUser, ReadReport

BOOKS_FILE = "BX-Books.csv"
USERS_FILE = "BX-Users.csv"
RATINGS_FILE = "BX-Book-Ratings.csv"
# Books and ratings are named by ISBN; editions of one text merge into a work.
RULES = (
    rules.BOOKS_VALID_ISBN,
    rules.BOOKS_ONE_PER_ISBN,
    rules.EDITIONS_TO_WORKS,
    rules.RATINGS_IN_SCALE,
    rules.RATINGS_VALID_ISBN,
    *rules.RATINGS_BY_ID[1:],
)

BOOKS_HEADER = (
    "ISBN",
    "Book-Title",
    "Book-Author",
    "Year-Of-Publication",
    "Publisher",
    "Image-URL-S",
    "Image-URL-M",
    "Image-URL-L",
)
USERS_HEADER = ("User-ID", "Location", "Age")
log = logging.getLogger("trainer.sources.ingest")
RATINGS_HEADER = ("User-ID", "ISBN", "Book-Rating")


def detect_encoding(path: Path) -> str:
    """latin-1 as the real files are; UTF-8 when the file evidently is (a re-saved copy).

    UTF-16 or binary data (NUL bytes) is refused: decoding it as latin-1 would
    silently turn every row into garbage."""
    with path.open("rb") as f:
        head = f.read(1 << 16)
    if b"\x00" in head:
        raise InputError(
            f"{path}: contains NUL bytes (UTF-16 or binary?); Book-Crossing files are latin-1 "
            "text: convert it with `iconv -f utf-16 -t latin1`"
        )
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        # A cut multi-byte sequence at the end of the sample is still UTF-8.
        if e.start < len(head) - 4:
            return "latin-1"
    return "utf-8" if any(b > 0x7F for b in head) else "latin-1"


def _check_header(path: Path, header: tuple[str, ...]) -> str:
    """The file's encoding, once its first line is the expected header."""
    if not path.is_file():
        raise InputError(f"{path}: file not found (run `trainer demo-data` or point --data at it)")
    encoding = detect_encoding(path)
    with path.open("r", encoding=encoding, errors="replace", newline="") as f:
        first = f.readline()
    if not first.strip():
        raise InputError(f"{path}: file is empty; expected header {';'.join(header)}")
    head = next(csv.reader([first.rstrip("\r\n")], delimiter=";", quotechar='"'))
    if tuple(h.strip() for h in head) != header:
        raise InputError(
            f"{path}:1: header {head!r} is not the Book-Crossing header {list(header)!r} "
            "(expected `;`-separated, quoted, latin-1)"
        )
    return encoding


def _fields(db: Columnar, path: Path, header: tuple[str, ...]) -> None:
    """Table bx_fields (lineno, f): each data line split into its fields."""
    load_lines(db, path, _check_header(path, header), "bx_lines")
    n = len(header)
    db.execute(
        f"""CREATE OR REPLACE TABLE bx_fields AS
        SELECT lineno, CASE
          WHEN starts_with(line, '"') AND ends_with(line, '"') AND length(line) > 1
               AND length(line) - length(replace(line, '"', '')) = {2 * n}
               AND length(line) - length(replace(line, ';', '')) = {n - 1}
          THEN string_split(line[2:-2], '";"')
          ELSE py_bx_split(line, {n}) END AS f
        FROM bx_lines WHERE lineno > 1 AND line <> ''"""
    )
    db.execute("DROP TABLE bx_lines")


def _strip(v: str) -> str:
    """SQL for Python's ``v.strip()``."""
    return f"CASE WHEN simple_text({v}) THEN {v} ELSE py_strip({v}) END"


def _report(db: Columnar, path: Path, table: str) -> ReadReport:
    """lines, rows, rejected and the first rejections of a ``(lineno, why, ...)`` table."""
    report = ReadReport(path.name)
    report.lines = db.count("bx_fields")
    report.rejected, report.rejected_examples = rejected(db, table, path.name)
    report.rows = report.lines - report.rejected
    return report


def load_books(path: Path, db: Columnar) -> ReadReport:
    """BX-Books.csv -> raw_books (pos = line number)."""
    _fields(db, path, BOOKS_HEADER)
    n = len(BOOKS_HEADER)
    field = (
        "CASE WHEN simple_text({v}) AND NOT contains({v}, '&') AND NOT contains({v}, '\\') "
        "THEN {v} ELSE py_bx_field({v}) END"
    )
    cols = ", ".join(
        f"{field.format(v=f'g[{i + 1}]')} AS {name}"
        for i, name in enumerate(("isbn", "title", "author", "year", "publisher"))
    )
    db.execute(
        f"""CREATE OR REPLACE TABLE bx_books AS
        WITH g AS (
          SELECT lineno, len(f) > {n} AS recovered,
                 CASE WHEN len(f) > {n} THEN [f[1], array_to_string(f[2:len(f) - 6], ';')]
                      || f[len(f) - 5:len(f)] ELSE f END AS g
          FROM bx_fields),
        v AS (SELECT lineno, recovered, len(g) AS n, {cols} FROM g)
        SELECT lineno, recovered, isbn, title, author, year, publisher,
          CASE WHEN n <> {n} THEN n || ' fields, expected {n}'
               WHEN isbn = '' OR title = '' THEN 'empty ISBN or title' END AS why
        FROM v"""
    )
    report = _report(db, path, "bx_books")
    report.recovered = int(db.scalar("SELECT count(*) FROM bx_books WHERE recovered"))
    db.execute(
        """INSERT INTO raw_books SELECT lineno, isbn, title, author, year, publisher, '', '', ''
        FROM bx_books WHERE why IS NULL"""
    )
    for t in ("bx_books", "bx_fields"):
        db.execute(f"DROP TABLE {t}")
    return report


def load_ratings(path: Path, db: Columnar) -> ReadReport:
    """BX-Book-Ratings.csv -> raw_ratings (pos = line number)."""
    _fields(db, path, RATINGS_HEADER)
    n = len(RATINGS_HEADER)
    db.execute(
        f"""CREATE OR REPLACE TABLE bx_ratings AS
        WITH v AS (
          SELECT lineno, len(f) AS n, {_strip("f[1]")} AS user_id, {_strip("f[2]")} AS isbn,
                 {_strip("f[3]")} AS rating_text FROM bx_fields),
        i AS (
          SELECT *, CASE WHEN regexp_full_match(rating_text, '[0-9]{{1,18}}')
                         THEN CAST(rating_text AS BIGINT) ELSE py_int(rating_text) END AS rating
          FROM v)
        SELECT lineno, user_id, isbn, rating,
          CASE WHEN n <> {n} THEN n || ' fields, expected {n}'
               WHEN rating IS NULL THEN 'rating ' || py_repr(rating_text) || ' is not an integer'
               WHEN NOT rating BETWEEN 0 AND 10 THEN 'rating ' || rating || ' outside 0..10'
               WHEN user_id = '' THEN 'empty User-ID' END AS why
        FROM i"""
    )
    report = _report(db, path, "bx_ratings")
    db.execute(
        """INSERT INTO raw_ratings SELECT lineno, user_id, isbn, rating, '', NULL, 1.0
        FROM bx_ratings WHERE why IS NULL"""
    )
    for t in ("bx_ratings", "bx_fields"):
        db.execute(f"DROP TABLE {t}")
    return report


def load_users(path: Path, db: Columnar) -> ReadReport:
    """BX-Users.csv -> raw_users (pos = line number)."""
    _fields(db, path, USERS_HEADER)
    n = len(USERS_HEADER)
    db.execute(
        f"""CREATE OR REPLACE TABLE bx_users AS
        WITH v AS (
          SELECT lineno, len(f) AS n, {_strip("f[1]")} AS user_id, {_strip("f[2]")} AS location,
                 {_strip("f[3]")} AS age FROM bx_fields)
        SELECT lineno, user_id, age,
          CASE WHEN contains(location, '&') THEN py_unescape(location) ELSE location END
            AS location,
          CASE WHEN n <> {n} THEN n || ' fields, expected {n}'
               WHEN user_id = '' THEN 'empty User-ID' END AS why
        FROM v"""
    )
    report = _report(db, path, "bx_users")
    db.execute(
        "INSERT INTO raw_users SELECT lineno, user_id, location, age FROM bx_users "
        "WHERE why IS NULL"
    )
    for t in ("bx_users", "bx_fields"):
        db.execute(f"DROP TABLE {t}")
    return report


# -- small files as Python rows (tests, tools) ----------------------------------------------


def read_books(path: Path) -> tuple[list[RawBook], ReadReport]:
    with Columnar.open() as db:
        _raw_tables(db)
        report = load_books(path, db)
        rows = db.all("SELECT isbn, title, author, year, publisher FROM raw_books ORDER BY pos")
    return [RawBook(*r) for r in rows], report


def read_ratings(path: Path) -> tuple[list[RawRating], ReadReport]:
    with Columnar.open() as db:
        _raw_tables(db)
        report = load_ratings(path, db)
        rows = db.all("SELECT user_id, isbn, rating FROM raw_ratings ORDER BY pos")
    return [RawRating(u, i, int(r)) for u, i, r in rows], report


def read_users(path: Path) -> tuple[list[RawUser], ReadReport]:
    with Columnar.open() as db:
        _raw_tables(db)
        report = load_users(path, db)
        rows = db.all("SELECT user_id, location, age FROM raw_users ORDER BY pos")
    return [RawUser(*r) for r in rows], report


def _raw_tables(db: Columnar) -> None:
    from trainer.sources.raw import RAW_TABLES

    for name, columns in RAW_TABLES.items():
        db.execute(f"CREATE TABLE {name} ({columns})")
