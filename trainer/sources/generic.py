"""Bring your own data: ``interactions.csv`` (+ optional ``items.csv``) in a data directory.

``interactions.csv``: ``user,item,value[,timestamp]``, one interaction a line.

- Delimiter: tab, semicolon or comma, detected from the first lines (fields may
  be double-quoted). Header line optional: the first line is a header when its
  value column is not a number. UTF-8 (a BOM is skipped); CRLF line ends are
  fine; blank lines are skipped; spaces around a field are stripped.
- ``ImportOptions.interaction_kind`` says what the values are:
  - ``explicit``: ratings on ``rating_scale`` ("LOW..HIGH", above 0), mapped
    linearly onto the project's 1..10 scale and rounded half up
    (``1 + (value - LOW) * 9 / (HIGH - LOW)``). 0 is never an explicit rating
    (the project stores 0 as "implicit"). Duplicate (user, item) rows reach
    consolidation as they are (trainer/cleaning/interactions.py: the latest, else the
    highest, wins).
  - ``implicit``: positive counts (plays, clicks; decimals allowed). Each is
    stored as rating 0 with the count as its weight; the rows of one (user,
    item) add up into one (latest timestamp), counted in the read report.
- Timestamp (optional, per row): unix seconds (a whole number) or ISO-8601
  (``2024-05-01``, ``2024-05-01T12:30:00+02:00``; no offset = UTC). Empty = none.

``items.csv`` (optional): ``item,title[,author,year,subjects]``; subjects are
separated by ``|``; same delimiter, quoting and encoding rules; a first line
whose first two columns are ``item`` (or ``id``) and ``title`` (or ``name``)
is a header. An empty title is the item id; the year is a whole number (empty
= unknown; impossible years are nulled by cleaning). Without items.csv every
item id of interactions.csv becomes a catalogue row titled with its id; with
it, interactions naming an item it does not list are dropped by the cleaning
rule "ratings: known book". The item id is the work id the store and the
server use; ids are at most 64 (users) and 40 (items) characters.

Bad rows (wrong column count, empty user or item, an id too long, a value that
is not a number or is off the scale, a count <= 0, an unparsable timestamp, a
bad year, an item listed twice) fail the import with an InputError naming the
file, line, fault and row as written (the first 10 and the total) before the
store is opened. With ``skip_bad_rows`` they are dropped and counted in the
read report instead, as the other readers do.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bookrec.log import kv
from trainer.cleaning import rules
from trainer.cleaning.columnar import Columnar
from trainer.errors import InputError
from trainer.sources.lines import load_lines, rejected, utf8_lines
from trainer.sources.raw import RawBook, RawDataset, ReadReport

log = logging.getLogger("trainer.sources.generic")
SOURCE = "generic"
INTERACTIONS_FILE = "interactions.csv"
ITEMS_FILE = "items.csv"
EXPLICIT, IMPLICIT = "explicit", "implicit"
KINDS = (EXPLICIT, IMPLICIT)
ITEM_KEY_PREFIX = "item:"  # RawRating.book_key / RawBook.book_key of an item
SUBJECT_SEPARATOR = "|"
# Items are named by id (no ISBN, no editions to merge); implicit counts are weights.
RULES = (rules.RATINGS_IN_SCALE, rules.RATINGS_POSITIVE_WEIGHT, *rules.RATINGS_BY_ID[1:])
# The store's column widths (users.user_id, works.work_id).
MAX_USER_ID, MAX_ITEM_ID = 64, 40
DELIMITERS = ("\t", ";", ",")
_DELIMITER_NAMES = {"\t": "tab", ";": "semicolon", ",": "comma"}
SAMPLE_LINES = 20  # lines looked at to detect the delimiter
SHOWN = 10  # bad rows an error shows
INTERACTION_COLUMNS = (3, 4)
ITEM_COLUMNS = (2, 5)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_YEAR = re.compile(r"-?[0-9]+(?:\.0*)?")
_ITEM_HEADER = (("item", "item_id", "itemid", "id"), ("title", "name"))
_MAX_TS = 253_402_300_799  # 9999-12-31T23:59:59Z


@dataclass(frozen=True)
class ImportOptions:
    """How interactions.csv is read (TrainerConfig's interaction_kind, rating_scale,
    skip_bad_rows). A bad setting raises InputError when the options are made."""

    interaction_kind: str = EXPLICIT
    rating_scale: str = "1..10"
    skip_bad_rows: bool = False

    def __post_init__(self) -> None:
        if self.interaction_kind not in KINDS:
            raise InputError(
                f"interaction_kind {self.interaction_kind!r}: expected explicit (ratings) or "
                "implicit (counts: plays, clicks)"
            )
        parse_scale(self.rating_scale)

    @property
    def scale(self) -> tuple[float, float]:
        return parse_scale(self.rating_scale)


def parse_scale(text: str) -> tuple[float, float]:
    """``"1..5"`` -> (1.0, 5.0). The scale must lie above 0: 0 marks implicit here."""
    parts = text.split("..")
    lo_hi = [_number(p.strip()) for p in parts] if len(parts) == 2 else []
    if len(lo_hi) != 2 or lo_hi[0] is None or lo_hi[1] is None or not lo_hi[0] < lo_hi[1]:
        raise InputError(f"rating_scale {text!r}: expected LOW..HIGH with LOW < HIGH, e.g. 1..5")
    lo, hi = lo_hi[0], lo_hi[1]
    if lo <= 0:
        raise InputError(
            f"rating_scale {text!r}: an explicit scale must lie above 0 (rating 0 marks an "
            "implicit interaction in this project); shift the ratings (e.g. 0..4 -> 1..5) or "
            "read the values as counts with --interactions implicit"
        )
    return lo, hi


def to_project_scale(value: float, lo: float, hi: float) -> int:
    """A rating on lo..hi mapped linearly onto 1..10, rounded half up."""
    return min(10, max(1, math.floor(1 + (value - lo) * 9 / (hi - lo) + 0.5)))


def _number(s: str) -> float | None:
    if s.isascii() and s.isdigit():
        return float(s)
    if not _NUMBER.fullmatch(s):
        return None
    value = float(s)
    return value if math.isfinite(value) else None


def parse_timestamp(s: str) -> int | None:
    """Unix seconds or ISO-8601 (no offset = UTC) -> unix seconds; None when neither."""
    if s.isascii() and s.isdigit():
        return int(s) if int(s) <= _MAX_TS else None
    try:
        t = dt.datetime.fromisoformat(s)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    seconds = math.floor(t.timestamp())
    return seconds if seconds >= 0 else None


# -- lines, delimiter, header -------------------------------------------------------------


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text without its line end) of each non-blank line; UTF-8 checked."""
    return ((lineno, text) for lineno, text in utf8_lines(path) if text.strip())


def _split(text: str, delimiter: str) -> list[str]:
    if '"' not in text:
        return text.split(delimiter)
    return next(csv.reader([text], delimiter=delimiter))


def detect_delimiter(path: Path, columns: tuple[int, int]) -> str:
    """The delimiter that splits most of the first lines into ``columns`` (min, max)
    fields; ties go to the one leaving no stray quote, then to more fields, then to tab,
    semicolon, comma in that order."""
    sample = []
    for _, text in _lines(path):
        sample.append(text)
        if len(sample) == SAMPLE_LINES:
            break
    if not sample:
        raise InputError(f"{path}: file is empty")
    lo, hi = columns
    best: tuple[int, int, int, int] | None = None
    chosen = ""
    for order, d in enumerate(DELIMITERS):
        split = [_split(text, d) for text in sample]
        fits = sum(lo <= len(f) <= hi for f in split)
        clean = sum(lo <= len(f) <= hi and not any('"' in v for v in f) for f in split)
        score = (fits, clean, len(split[0]), -order)
        if fits and (best is None or score > best):
            best, chosen = score, d
    if not chosen:
        raise InputError(
            f"{path}: no delimiter (tab, semicolon, comma) splits the first lines into "
            f"{lo}..{hi} columns; first line: {sample[0]!r}"
        )
    return chosen


# -- bad rows -----------------------------------------------------------------------------


def _fail_on_bad_rows(paths: list[Path], reports: list[ReadReport]) -> None:
    bad = [(p, r) for p, r in zip(paths, reports, strict=True) if r.rejected]
    if not bad:
        return
    total = sum(r.rejected for _, r in bad)
    where = "; ".join(f"{p}: {r.rejected} bad row{'s' if r.rejected > 1 else ''}" for p, r in bad)
    shown = [e for _, r in bad for e in r.rejected_examples][:SHOWN]
    lines = [
        f"{where}; nothing was loaded. Fix the rows, or pass --skip-bad-rows "
        "(BOOKREC_TRAIN_SKIP_BAD_ROWS=1) to drop them and count them in the cleaning report:",
        *(f"  {e}" for e in shown),
    ]
    if total > len(shown):
        lines.append(f"  ... and {total - len(shown)} more ({total} bad rows in all)")
    raise InputError("\n".join(lines))


# -- interactions.csv ---------------------------------------------------------------------


@dataclass
class _Interactions:
    report: ReadReport
    merged: ReadReport | None  # implicit rows of one (user, item) summed
    delimiter: str
    header: bool
    rows: int  # rows written to raw_ratings


def _double(x: float) -> str:
    """A float as a SQL DOUBLE, bit for bit (a bare 0.1 would be an exact DECIMAL)."""
    return f"CAST('{x!r}' AS DOUBLE)"


def _sql_text(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def load_interactions(path: Path, options: ImportOptions, db: Columnar) -> _Interactions:
    """interactions.csv -> raw_ratings (implicit: one row per user and item, counts summed),
    read by the columnar engine: each rule of ``_interaction`` as SQL, the rows that break
    one kept with the reason for the report."""
    delimiter = detect_delimiter(path, (INTERACTION_COLUMNS[0], INTERACTION_COLUMNS[-1]))
    report = ReadReport(path.name)
    implicit = options.interaction_kind == IMPLICIT
    lo, hi = options.scale
    load_lines(db, path, "utf-8", "gen_lines", split_at_cr=False)
    d = _sql_text(delimiter)
    strip = "CASE WHEN simple_text({v}) THEN {v} ELSE py_strip({v}) END"
    db.execute(
        f"""CREATE OR REPLACE TABLE gen_fields AS
        SELECT lineno, line, CASE WHEN contains(line, '"') THEN py_csv_split_on(line, {d})
                                  ELSE string_split(line, {d}) END AS f
        FROM gen_lines
        WHERE line <> '' AND (simple_text(line) OR py_strip(line) <> '')"""
    )
    db.execute("DROP TABLE gen_lines")
    first = db.all("SELECT lineno, f FROM gen_fields ORDER BY lineno LIMIT 1")
    header = (
        bool(first)
        and len(first[0][1]) in INTERACTION_COLUMNS
        and (_number(first[0][1][2].strip()) is None)
    )
    skip = first[0][0] if header else 0
    number = (
        "CASE WHEN regexp_full_match({v}, '[0-9]+') THEN TRY_CAST({v} AS DOUBLE) "
        "WHEN regexp_full_match({v}, '[+-]?(?:[0-9]+\\.?[0-9]*|\\.[0-9]+)(?:[eE][+-]?[0-9]+)?') "
        "THEN TRY_CAST({v} AS DOUBLE) END"
    )
    if implicit:
        value_rule = (
            "WHEN v <= 0 THEN 'count ' || vt || ' is not positive (implicit values are counts > 0)'"
        )
    else:
        value_rule = (
            "WHEN v = 0 THEN 'value 0 is not an explicit rating (0 marks implicit here; "
            "for counts use --interactions implicit)' "
            f"WHEN NOT v BETWEEN {_double(lo)} AND {_double(hi)} THEN 'rating ' || vt || "
            f"' is outside the rating scale ' || {_sql_text(options.rating_scale)} || "
            "' (set --rating-scale)'"
        )
    db.execute(
        f"""CREATE OR REPLACE TABLE gen_rows AS
        WITH s AS (
          SELECT lineno, line, len(f) AS n, {strip.format(v="f[1]")} AS u,
                 {strip.format(v="f[2]")} AS i, {strip.format(v="f[3]")} AS vt,
                 CASE WHEN len(f) = 4 THEN {strip.format(v="f[4]")} ELSE '' END AS tt
          FROM gen_fields WHERE lineno > {skip}),
        p AS (
          SELECT *, {number.format(v="vt")} AS v0,
                 CASE WHEN tt = '' THEN NULL
                      WHEN regexp_full_match(tt, '[0-9]+')
                      THEN CASE WHEN TRY_CAST(tt AS HUGEINT) <= {_MAX_TS}
                                THEN CAST(tt AS BIGINT) END
                      ELSE py_timestamp(tt) END AS ts
          FROM s),
        q AS (SELECT *, CASE WHEN isfinite(v0) THEN v0 END AS v FROM p),
        r AS (SELECT lineno, line, u, i, v, ts,
          CASE WHEN n NOT IN (3, 4) THEN n || ' columns, expected user,item,value[,timestamp]'
               WHEN u = '' THEN 'empty user'
               WHEN i = '' THEN 'empty item'
               WHEN length(u) > {MAX_USER_ID} THEN 'user id longer than {MAX_USER_ID} characters'
               WHEN length(i) > {MAX_ITEM_ID} THEN 'item id longer than {MAX_ITEM_ID} characters'
               WHEN v IS NULL THEN 'value ' || py_repr(vt) || ' is not a number'
               {value_rule}
               WHEN tt <> '' AND ts IS NULL THEN 'timestamp ' || py_repr(tt)
                 || ' is neither unix seconds nor ISO-8601 (from 1970 on)'
          END AS reason FROM q)
        SELECT lineno, u, i, v, ts,
          CASE WHEN reason IS NOT NULL THEN reason || ': ' || py_repr(line) END AS why
        FROM r"""
    )
    db.execute("DROP TABLE gen_fields")
    report.lines = db.count("gen_rows")
    report.rejected, report.rejected_examples = rejected(db, "gen_rows", path.name)
    report.rows = report.lines - report.rejected
    merged = None
    if not implicit:
        low, high = _double(lo), _double(hi)
        rating = f"least(10, greatest(1, floor(1 + (v - {low}) * 9 / ({high} - {low}) + 0.5)))"
        db.execute(
            f"""INSERT INTO raw_ratings SELECT lineno, u, '', CAST({rating} AS BIGINT),
            '{ITEM_KEY_PREFIX}' || i, ts, 1.0 FROM gen_rows WHERE why IS NULL"""
        )
        rows = report.rows
    else:
        db.execute(
            f"""INSERT INTO raw_ratings SELECT min(lineno), u, '', 0, '{ITEM_KEY_PREFIX}' || i,
            max(ts), sum(v ORDER BY lineno) FROM gen_rows WHERE why IS NULL GROUP BY u, i"""
        )
        rows = int(
            db.scalar("SELECT count(*) FROM (SELECT DISTINCT u, i FROM gen_rows WHERE why IS NULL)")
        )
        merged = ReadReport(
            f"{path.name}: one row per user and item",
            lines=report.rows,
            rows=rows,
            why="implicit rows of one user and item: counts added up, latest timestamp kept",
        )
    db.execute("DROP TABLE gen_rows")
    return _Interactions(report, merged, delimiter, header, rows)


# -- items.csv ----------------------------------------------------------------------------


@dataclass
class _Items:
    books: list[RawBook]
    subjects: dict[str, list[str]]
    report: ReadReport


def read_items(path: Path) -> _Items:
    delimiter = detect_delimiter(path, ITEM_COLUMNS)
    report = ReadReport(path.name)
    books: list[RawBook] = []
    subjects: dict[str, list[str]] = {}
    first_line: dict[str, int] = {}
    first = True
    for lineno, text in _lines(path):
        fields = [f.strip() for f in _split(text, delimiter)]
        if first:
            first = False
            if (
                len(fields) >= 2
                and fields[0].lower() in _ITEM_HEADER[0]
                and fields[1].lower() in _ITEM_HEADER[1]
            ):
                continue
        report.lines += 1
        lo, hi = ITEM_COLUMNS
        why = ""
        if not lo <= len(fields) <= hi:
            why = f"{len(fields)} columns, expected item,title[,author,year,subjects]"
        elif not fields[0]:
            why = "empty item"
        elif len(fields[0]) > MAX_ITEM_ID:
            why = f"item id longer than {MAX_ITEM_ID} characters"
        elif fields[0] in first_line:
            why = f"item {fields[0]!r} repeats line {first_line[fields[0]]}"
        elif len(fields) >= 4 and fields[3] and not _YEAR.fullmatch(fields[3]):
            why = f"year {fields[3]!r} is not a whole number"
        if why:
            report.reject(lineno, f"{why}: {text!r}")
            continue
        item = fields[0]
        first_line[item] = lineno
        fields += [""] * (hi - len(fields))
        _, title, author, year, subject_text = fields
        year = year.split(".")[0]
        books.append(
            RawBook("", title or item, author, year, book_key=ITEM_KEY_PREFIX + item, work_key=item)
        )
        parts = [s.strip() for s in subject_text.split(SUBJECT_SEPARATOR)]
        if any(parts):
            subjects[item] = [s for s in parts if s]
        report.rows += 1
    return _Items(books, subjects, report)


# -- the data set -------------------------------------------------------------------------


def read_generic(data_dir: Path, options: ImportOptions) -> RawDataset:
    """interactions.csv (+ items.csv) of ``data_dir`` -> a RawDataset, or InputError."""
    inter_path, items_path = data_dir / INTERACTIONS_FILE, data_dir / ITEMS_FILE
    if not inter_path.is_file():
        raise InputError(f"{inter_path}: file not found (user,item,value[,timestamp] expected)")
    items = read_items(items_path) if items_path.is_file() else None
    data = RawDataset(SOURCE, rules=RULES)
    try:
        inter = load_interactions(inter_path, options, data.columnar())
    except BaseException:
        data.columnar().close()
        raise
    log.info(
        "interactions read",
        extra=kv(
            file=str(inter_path),
            delimiter=_DELIMITER_NAMES[inter.delimiter],
            header=inter.header,
            kind=options.interaction_kind,
            rating_scale=None if options.interaction_kind == IMPLICIT else options.rating_scale,
            items_file=items is not None,
        ),
    )
    paths, reports = [inter_path], [inter.report]
    if items is not None:
        paths.append(items_path)
        reports.append(items.report)
    try:
        if not options.skip_bad_rows:
            _fail_on_bad_rows(paths, reports)
        if not inter.rows:
            raise InputError(
                f"{inter_path}: no interactions read ({inter.report.rejected} bad rows); "
                "expected user,item,value[,timestamp] lines"
            )
    except BaseException:
        data.columnar().close()
        raise
    data.reports.append(inter.report)
    if inter.merged is not None:
        data.reports.append(inter.merged)
    if items is not None:
        data.books = items.books
        data.work_subjects = items.subjects
        data.reports.append(items.report)
    else:
        # every item rated, in the order of its first row
        db = data.columnar()
        db.execute(
            f"""INSERT INTO raw_books
            SELECT row_number() OVER (ORDER BY min(pos)), '', item, '', '', '', '',
                   '{ITEM_KEY_PREFIX}' || item, item
            FROM (SELECT pos, book_key[{len(ITEM_KEY_PREFIX) + 1}:] AS item FROM raw_ratings)
            GROUP BY item"""
        )
        absent = ReadReport(ITEMS_FILE, why="not found: every item is titled with its id")
        absent.lines = absent.rows = db.count("raw_books")
        data.reports.append(absent)
    return data
