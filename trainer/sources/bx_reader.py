"""Reader for the Book-Crossing CSV files (BX-Books, BX-Users, BX-Book-Ratings).

The real files are latin-1, `;`-separated, every field quoted, and dirty: a
few lines carry a stray `;` or `"` inside a title. Each line is parsed on its
own (no field ever spans lines in this format), so a broken quote cannot
swallow the lines after it; lines with too many fields are recovered where the
layout allows, the rest are counted and reported with their line numbers.
"""

from __future__ import annotations

import csv
import html
import logging
from collections.abc import Iterator
from pathlib import Path

from bookrec.log import kv
from trainer.cleaning import rules
from trainer.errors import InputError
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


PROGRESS_LINES = 500_000


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


def _split(text: str, n: int) -> list[str]:
    """Fast path for the common, well-formed line; the csv module for everything else."""
    if (
        text.startswith('"')
        and text.endswith('"')
        and text.count('"') == 2 * n
        and text.count(";") == n - 1
    ):
        return text[1:-1].split('";"')
    return next(csv.reader([text], delimiter=";", quotechar='"'))


def _lines(path: Path, header: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
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
        for lineno, line in enumerate(f, start=2):
            if lineno % PROGRESS_LINES == 0:
                log.info("reading", extra=kv(file=path.name, lines=lineno))
            text = line.rstrip("\r\n")
            if text:
                yield lineno, _split(text, len(header))


def read_books(path: Path) -> tuple[list[RawBook], ReadReport]:
    report = ReadReport(path.name)
    rows: list[RawBook] = []
    n = len(BOOKS_HEADER)
    for lineno, raw in _lines(path, BOOKS_HEADER):
        report.lines += 1
        fields = raw
        if len(raw) > n:
            # A stray `;` inside the title: ISBN first, author..URLs are the last 6.
            fields = [raw[0], ";".join(raw[1 : len(raw) - 6]), *raw[-6:]]
            report.recovered += 1
        if len(fields) != n:
            report.reject(lineno, f"{len(fields)} fields, expected {n}")
            continue
        # A title ending in a backslash-escaped quote (`\"`) leaves a stray backslash.
        isbn, title, author, year, publisher = (
            html.unescape(v).strip().rstrip("\\").strip() for v in fields[:5]
        )
        if not isbn or not title:
            report.reject(lineno, "empty ISBN or title")
            continue
        rows.append(RawBook(isbn, title, author, year, publisher))
    report.rows = len(rows)
    return rows, report


def read_ratings(path: Path) -> tuple[list[RawRating], ReadReport]:
    report = ReadReport(path.name)
    rows: list[RawRating] = []
    for lineno, fields in _lines(path, RATINGS_HEADER):
        report.lines += 1
        if len(fields) != len(RATINGS_HEADER):
            report.reject(lineno, f"{len(fields)} fields, expected {len(RATINGS_HEADER)}")
            continue
        user, isbn, rating = (v.strip() for v in fields)
        try:
            value = int(rating)
        except ValueError:
            report.reject(lineno, f"rating {rating!r} is not an integer")
            continue
        if not 0 <= value <= 10:
            report.reject(lineno, f"rating {value} outside 0..10")
            continue
        if not user:
            report.reject(lineno, "empty User-ID")
            continue
        rows.append(RawRating(user, isbn, value))
    report.rows = len(rows)
    return rows, report


def read_users(path: Path) -> tuple[list[RawUser], ReadReport]:
    report = ReadReport(path.name)
    rows: list[RawUser] = []
    for lineno, fields in _lines(path, USERS_HEADER):
        report.lines += 1
        if len(fields) != len(USERS_HEADER):
            report.reject(lineno, f"{len(fields)} fields, expected {len(USERS_HEADER)}")
            continue
        user, location, age = (v.strip() for v in fields)
        if not user:
            report.reject(lineno, "empty User-ID")
            continue
        rows.append(RawUser(user, html.unescape(location), age))
    report.rows = len(rows)
    return rows, report
