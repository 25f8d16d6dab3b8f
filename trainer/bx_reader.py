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
from collections.abc import Iterator
from pathlib import Path

from trainer.errors import InputError
from trainer.raw import RawBook, RawRating, RawUser, ReadReport

BOOKS_FILE = "BX-Books.csv"
USERS_FILE = "BX-Users.csv"
RATINGS_FILE = "BX-Book-Ratings.csv"

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
RATINGS_HEADER = ("User-ID", "ISBN", "Book-Rating")


def _lines(path: Path, header: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    if not path.is_file():
        raise InputError(f"{path}: file not found (run `trainer demo-data` or point --data at it)")
    with path.open("r", encoding="latin-1", newline="") as f:
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
            text = line.rstrip("\r\n")
            if text:
                yield lineno, next(csv.reader([text], delimiter=";", quotechar='"'))


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
