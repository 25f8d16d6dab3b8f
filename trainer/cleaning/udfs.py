"""The project's text rules as DuckDB scalar functions (trainer/cleaning/columnar.py).

Why Python and not SQL: these rules are shared with the server and with the rest of
the trainer (ISBN check digits, subject normalisation by NFKD folding, Python's own
``str.strip`` and ``int``), and a SQL copy would drift from them on some character.
The SQL calls them on distinct values, or only on the rare rows off its fast path.
"""

from __future__ import annotations

import csv
import functools
import html
import sys
from typing import Any

import duckdb

from trainer.cleaning import catalog, users
from trainer.cleaning.isbn import normalize_isbn
from trainer.cleaning.subjects import normalize_part, split_subject_spelled

VARCHAR = duckdb.sqltype("VARCHAR")
BIGINT = duckdb.sqltype("BIGINT")
TEXTS = duckdb.list_type(VARCHAR)
INTS = duckdb.list_type(BIGINT)


def book_parts(title: str, author: str) -> list[str]:
    """[title, series, volume, primary author, title key, author key, fallback work id]."""
    name, series, volume = catalog.split_series(title)
    who = catalog.primary_author(author)
    return [
        name,
        series,
        str(volume),
        who,
        normalize_part(name),
        normalize_part(who),
        catalog.fallback_work_id(name, who),
    ]


def subject_parts(raw: str) -> list[str]:
    """One raw subject string -> [part, spelling, part, spelling, ...]."""
    return [x for pair in split_subject_spelled(raw) for x in pair]


def bx_split(line: str, n: int) -> list[str]:
    """A Book-Crossing line off the fast path, split as csv would (bx_reader)."""
    return next(csv.reader([line], delimiter=";", quotechar='"'))


def csv_split(line: str) -> list[str]:
    """A comma-separated line with quotes, split as csv would."""
    return next(csv.reader([line]))


def csv_split_on(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter))


def timestamp(text: str) -> int | None:
    from trainer.sources.generic import parse_timestamp

    return parse_timestamp(text)


def repr_list(values: list[str]) -> str:
    return repr(values)


def bx_field(value: str) -> str:
    """A book field: entities decoded, trimmed, a stray escaping backslash dropped."""
    return html.unescape(value).strip().rstrip("\\").strip()


def py_int(value: str) -> int | None:
    try:
        n = int(value)
    except ValueError:
        return None
    return n if -(2**62) < n < 2**62 else None


def fold_explicit(ratings: list[int], stamps: list[int]) -> list[int]:
    """The winning (rating, timestamp) of one user's explicit ratings of one work, in
    the order they were read: the latest when both have a time, else the highest."""
    best = (ratings[0], stamps[0])
    for r, t in zip(ratings[1:], stamps[1:], strict=True):
        if t != best[1] and t >= 0 and best[1] >= 0:
            if t > best[1]:
                best = (r, t)
        elif r > best[0]:
            best = (r, t)
    return [best[0], best[1]]


def py_strip(value: str) -> str:
    return value.strip()


def py_isbn13(value: str) -> str | None:
    return normalize_isbn(value)


def py_repr(value: str) -> str:
    return repr(value)


def _opt_int(fn: Any) -> Any:
    def wrapped(value: str) -> int | None:
        out: int | None = fn(value)
        return out

    return wrapped


FUNCTIONS: dict[str, tuple[Any, list[Any], Any]] = {
    "py_isbn13": (py_isbn13, [VARCHAR], VARCHAR),
    "py_norm": (normalize_part, [VARCHAR], VARCHAR),
    "py_book_parts": (book_parts, [VARCHAR, VARCHAR], TEXTS),
    "py_year": (_opt_int(catalog.clean_year), [VARCHAR], BIGINT),
    "py_pages": (_opt_int(catalog.clean_pages), [VARCHAR], BIGINT),
    "py_age": (_opt_int(users.clean_age), [VARCHAR], BIGINT),
    "py_country": (users.country_of, [VARCHAR], VARCHAR),
    "py_subject_parts": (subject_parts, [VARCHAR], TEXTS),
    "py_strip": (py_strip, [VARCHAR], VARCHAR),
    "py_unescape": (html.unescape, [VARCHAR], VARCHAR),
    "py_bx_field": (bx_field, [VARCHAR], VARCHAR),
    "py_bx_split": (bx_split, [VARCHAR, BIGINT], TEXTS),
    "py_int": (py_int, [VARCHAR], BIGINT),
    "py_csv_split": (csv_split, [VARCHAR], TEXTS),
    "py_repr_list": (repr_list, [TEXTS], VARCHAR),
    "py_csv_split_on": (csv_split_on, [VARCHAR, VARCHAR], TEXTS),
    "py_timestamp": (timestamp, [VARCHAR], BIGINT),
    "py_repr": (py_repr, [VARCHAR], VARCHAR),
    "py_fold": (fold_explicit, [INTS, INTS], INTS),
}


def _null_in_null_out(fn: Any, arity: int) -> Any:
    """NULL for a NULL argument, as SQL functions do; the function may return NULL too."""
    if arity == 1:

        def one(a: Any) -> Any:
            return None if a is None else fn(a)

        return one

    def two(a: Any, b: Any) -> Any:
        return None if a is None or b is None else fn(a, b)

    return two


def register(con: duckdb.DuckDBPyConnection) -> None:
    for name, (fn, args, ret) in FUNCTIONS.items():
        con.create_function(  # type: ignore[call-overload]
            name,
            _null_in_null_out(fn, len(args)),
            args,
            ret,
            null_handling="special",
            side_effects=False,
        )
    # True when Python's v.strip() would remove nothing: no whitespace (str.isspace) at
    # either end.
    space = _space_class()
    con.execute(
        f"CREATE OR REPLACE MACRO simple_text(v) AS NOT regexp_matches(v, '^{space}|{space}$')"
    )


@functools.cache
def _space_class() -> str:
    """An RE2 class of every character str.isspace() holds for (what str.strip removes)."""
    codes = [c for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    ranges: list[tuple[int, int]] = []
    for c in codes:
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1] = (ranges[-1][0], c)
        else:
            ranges.append((c, c))
    return "[" + "".join(f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in ranges) + "]"
