"""Reader for Open Library dumps (tab-separated, JSON in the last column).

Editions map ISBNs to work keys; works carry raw subject strings. Plain or
gzip files are accepted; nothing is ever fetched from the network. The columnar
engine reads them (``load_*`` write the raw tables; ``read_*`` give a small
file's mapping as Python objects).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from trainer.cleaning.columnar import Columnar
from trainer.errors import InputError
from trainer.sources.lines import load_lines

EDITIONS_FILE = "ol_dump_editions.txt"
WORKS_FILE = "ol_dump_works.txt"


@dataclass(frozen=True)
class OLWork:
    work_id: str  # "OL45W"
    title: str
    subjects: tuple[str, ...]


def find(data_dir: Path, name: str) -> Path | None:
    for candidate in (data_dir / name, data_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _records(db: Columnar, path: Path) -> None:
    """Table ol_records (lineno, j): each line's JSON; InputError at the first bad line."""
    load_lines(db, path, "utf-8", "ol_lines")
    db.execute(
        """CREATE OR REPLACE TABLE ol_records AS
        SELECT lineno, len(string_split(line, chr(9))) AS n,
               string_split(line, chr(9))[-1] AS j FROM ol_lines"""
    )
    db.execute("DROP TABLE ol_lines")
    bad = db.all(
        "SELECT lineno, n, j FROM ol_records WHERE n < 5 OR NOT coalesce(json_valid(j), false) "
        "ORDER BY lineno LIMIT 1"
    )
    if bad:
        lineno, n, j = bad[0]
        if n < 5:
            raise InputError(
                f"{path}:{lineno}: {n} tab-separated columns, an Open Library "
                "dump line has 5 (type, key, revision, last_modified, JSON)"
            )
        try:
            json.loads(j)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{lineno}: last column is not JSON: {e}") from e
        raise InputError(f"{path}:{lineno}: last column is not JSON")


def load_editions(path: Path, db: Columnar) -> None:
    """Canonical ISBN-13 -> work id (the first edition naming an ISBN wins) into
    source_isbn_work."""
    _records(db, path)
    db.execute(
        """CREATE OR REPLACE TABLE ol_isbns AS
        WITH e AS (
          SELECT lineno, string_split(json_extract_string(j, '$.works[0].key'), '/')[-1] AS work,
                 list_concat(coalesce(json_extract_string(j, '$.isbn_10[*]'), []),
                             coalesce(json_extract_string(j, '$.isbn_13[*]'), [])) AS l
          FROM ol_records),
        x AS (SELECT lineno, work, unnest(l) AS raw, generate_subscripts(l, 1) AS k FROM e
              WHERE work IS NOT NULL),
        canon AS (SELECT raw, py_isbn13(raw) AS isbn FROM (SELECT DISTINCT raw FROM x))
        SELECT x.lineno, x.k, x.work, canon.isbn FROM x JOIN canon USING (raw)"""
    )
    db.execute(
        """INSERT INTO source_isbn_work
        SELECT isbn, arg_min(work, lineno * 100000 + k) FROM ol_isbns WHERE isbn IS NOT NULL
        GROUP BY isbn"""
    )
    db.execute("DROP TABLE ol_isbns")
    db.execute("DROP TABLE ol_records")


def load_works(path: Path, db: Columnar) -> None:
    """Each work's raw subjects (the last record of a work key wins) into raw_subjects."""
    _records(db, path)
    db.execute(
        """INSERT INTO raw_subjects
        WITH w AS (
          SELECT string_split(json_extract_string(j, '$.key'), '/')[-1] AS work_id,
                 arg_max(coalesce(json_extract_string(j, '$.subjects[*]'), []), lineno) AS l
          FROM ol_records GROUP BY work_id)
        SELECT work_id, generate_subscripts(l, 1) - 1 AS rpos, unnest(l) AS raw FROM w"""
    )
    db.execute("DROP TABLE ol_records")


# -- small files as Python objects (tests, tools) -------------------------------------------


def read_editions(path: Path) -> dict[str, str]:
    """Canonical ISBN-13 -> work id."""
    with _tables() as db:
        load_editions(path, db)
        return dict(db.all("SELECT isbn, work FROM source_isbn_work"))


def read_works(path: Path) -> dict[str, OLWork]:
    with _tables() as db:
        load_works(path, db)
        subjects: dict[str, list[str]] = {}
        for wid, raw in db.all("SELECT work_id, raw FROM raw_subjects ORDER BY work_id, rpos"):
            subjects.setdefault(wid, []).append(raw)
    return {w: OLWork(w, "", tuple(s)) for w, s in subjects.items()}


def _tables() -> Columnar:
    from trainer.sources.raw import RAW_TABLES

    db = Columnar.open()
    for name, columns in RAW_TABLES.items():
        db.execute(f"CREATE TABLE {name} ({columns})")
    return db
