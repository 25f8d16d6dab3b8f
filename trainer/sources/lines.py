"""A text file's lines as a table of the columnar engine: (lineno, line).

Why not DuckDB's CSV parser on the fields: the readers' rules for dirty lines (a
stray `;` recovered, a broken quote kept to its line, the line number of every
rejection) are per line, as Python numbers them. So DuckDB reads whole lines (no
quote, a delimiter the file does not hold), and the readers split them in SQL.

Python's numbering splits lines at `\\n`, `\\r\\n` and a lone `\\r`; DuckDB's reader
does not count a lone `\\r` the same way, and a line holding the delimiter byte
would be cut. A file with either (checked byte-wise first), or one DuckDB cannot
decode, is read line by line in Python instead: slower, same table.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import duckdb

from trainer.cleaning.columnar import CHUNK, Columnar
from trainer.errors import InputError

_DELIMITER = b"\x01"
_SCAN = 1 << 24
SHOWN = 10  # rejected lines a report quotes


def _plain(path: Path) -> bool:
    """No delimiter byte and no lone carriage return anywhere in the file."""
    if path.suffix == ".gz":
        return True  # DuckDB decompresses; the demo and Open Library dumps are LF text
    tail = b""
    with path.open("rb") as f:
        while block := f.read(_SCAN):
            block = tail + block
            if _DELIMITER in block:
                return False
            # a lone CR: one not followed by LF (the block's last byte waits for the next)
            if block.count(b"\r") - block.count(b"\r\n") > int(block.endswith(b"\r")):
                return False
            tail = block[-1:]
    return not tail.endswith(b"\r")


def load_lines(
    db: Columnar, path: Path, encoding: str, table: str, split_at_cr: bool = True
) -> None:
    """Table ``table`` (lineno BIGINT, line VARCHAR): every line of ``path``, numbered
    from 1, without its line end; an empty line is ''. ``split_at_cr``: a lone CR ends a
    line (Python's text mode); without it, only LF does, and the file must be UTF-8
    (InputError naming the first line that is not)."""
    if _plain(path):
        quoted = str(path).replace("'", "''")
        enc = "latin-1" if encoding == "latin-1" else "utf-8"
        try:
            db.execute(
                f"""CREATE OR REPLACE TABLE {table}_scan AS SELECT line FROM read_csv('{quoted}',
                columns = {{'line': 'VARCHAR'}}, delim = '\x01', quote = '', escape = '',
                header = false, auto_detect = false, strict_mode = false, encoding = '{enc}')"""
            )
            db.execute(
                f"""CREATE OR REPLACE TABLE {table} AS
                SELECT rowid + 1 AS lineno, coalesce(line, '') AS line FROM {table}_scan"""
            )
            db.execute(f"DROP TABLE {table}_scan")
            return
        except duckdb.Error:
            db.execute(f"DROP TABLE IF EXISTS {table}_scan")
    if split_at_cr:
        _python_lines(db, path, encoding, table)
    else:
        _utf8_lines(db, path, table)


def utf8_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text without its line end) of every line, a leading BOM dropped;
    a line that is not UTF-8 is an InputError naming it."""
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                text = (raw.removeprefix(b"\xef\xbb\xbf") if lineno == 1 else raw).decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(
                    f"{path}:{lineno}: not UTF-8 ({e.reason} at byte {e.start}); save the file "
                    "as UTF-8"
                ) from e
            yield lineno, text.rstrip("\r\n")


def _utf8_lines(db: Columnar, path: Path, table: str) -> None:
    db.execute(f"CREATE OR REPLACE TABLE {table} (lineno BIGINT, line VARCHAR)")
    batch: list[tuple[int, str]] = []
    for line in utf8_lines(path):
        batch.append(line)
        if len(batch) == CHUNK:
            db.insert(table, ("lineno", "line"), batch)
            batch = []
    db.insert(table, ("lineno", "line"), batch)


def _python_lines(db: Columnar, path: Path, encoding: str, table: str) -> None:
    db.execute(f"CREATE OR REPLACE TABLE {table} (lineno BIGINT, line VARCHAR)")
    opener = gzip.open if path.suffix == ".gz" else open
    batch: list[tuple[int, str]] = []
    with opener(path, "rt", encoding=encoding, errors="replace", newline="") as f:
        for lineno, line in enumerate(f, start=1):
            batch.append((lineno, line.rstrip("\r\n")))
            if len(batch) == CHUNK:
                db.insert(table, ("lineno", "line"), batch)
                batch = []
    db.insert(table, ("lineno", "line"), batch)


def rejected(db: Columnar, table: str, file: str) -> tuple[int, list[str]]:
    """How many rows of ``table`` have a ``why``, and the first ``SHOWN`` as
    ``file:lineno: why``."""
    n = int(db.scalar(f"SELECT count(*) FROM {table} WHERE why IS NOT NULL"))
    first = db.all(
        f"SELECT lineno, why FROM {table} WHERE why IS NOT NULL ORDER BY lineno LIMIT {SHOWN}"
    )
    return n, [f"{file}:{lineno}: {why}" for lineno, why in first]
