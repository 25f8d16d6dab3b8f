"""The columnar engine the data pipeline runs in: one DuckDB database per pipeline run.

Why DuckDB: the readers, the cleaning rules and the store's load are joins, group-bys
and sorts over every rating row; as Python objects they held about 1.2 KB per row
(12 GiB at 16x Book-Crossing). DuckDB holds them in columns, uses every core, and
spills to ``temp_dir`` past ``memory_limit`` (docs/scale.md).

The database is a file under ``temp_dir`` (so its tables can leave memory too), made
for one run and deleted when it is closed. Text rules that must match the server
and the rest of the trainer character for character (ISBN check digits, subject and
title normalisation, Python's ``str.strip``) are the project's own Python functions,
registered as scalar functions (``trainer/cleaning/udfs.py``) and applied to distinct
values wherever a column repeats them.
"""

from __future__ import annotations

import os
import tempfile
import uuid
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from trainer.errors import InputError

CHUNK = 100_000  # rows per insert or fetch between Python and DuckDB


@dataclass(frozen=True)
class ColumnarSettings:
    """DuckDB's limits: ``memory_limit`` as DuckDB reads it ("4GB", "80%"), ``temp_dir``
    where it spills (empty: the system's temporary folder), ``threads`` (0: all cores)."""

    memory_limit: str = "4GB"
    temp_dir: str = ""
    threads: int = 0

    def directory(self) -> Path:
        return Path(self.temp_dir or tempfile.gettempdir()) / "bookrec-duckdb"


_current = [ColumnarSettings()]  # what configure() set


def configure(settings: ColumnarSettings) -> None:
    """The settings every later ``Columnar.open()`` of this process uses (the trainer's
    config sets them once per command)."""
    _current[0] = settings


def _remove(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    con.close()
    for p in (path, path.with_suffix(".duckdb.wal")):
        p.unlink(missing_ok=True)
    tmp = path.parent / (path.stem + ".tmp")
    if tmp.is_dir():
        for f in tmp.iterdir():
            f.unlink(missing_ok=True)
        tmp.rmdir()


class Columnar:
    """A DuckDB database for one pipeline run. Not thread-safe; close it when done."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:
        self.con = con
        self.path = path
        self.closed = False
        # A caller that never closes it (a tool reading Cleaned.works) still leaves no file.
        self._finalizer = weakref.finalize(self, _remove, con, path)

    @staticmethod
    def open(settings: ColumnarSettings | None = None) -> Columnar:
        from trainer.cleaning import udfs

        s = settings or _current[0]
        folder = s.directory()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"run-{os.getpid()}-{uuid.uuid4().hex[:8]}.duckdb"
        # In memory: a file-backed database checkpoints (compresses, fsyncs) after each
        # statement, which cost 10x the CPU in waits on a busy disk; an in-memory one
        # still spills to temp_directory past memory_limit.
        con = duckdb.connect(":memory:")
        try:
            con.execute(f"SET memory_limit = '{s.memory_limit.replace(chr(39), '')}'")
        except duckdb.Error as e:
            con.close()
            raise InputError(
                f"columnar_memory {s.memory_limit!r}: expected a size DuckDB reads, e.g. 4GB or "
                f"50% (--columnar-memory, BOOKREC_TRAIN_COLUMNAR_MEMORY): {e}"
            ) from e
        con.execute(f"SET temp_directory = '{folder / (path.stem + '.tmp')}'")
        con.execute(f"SET threads = {s.threads or os.cpu_count() or 1}")
        con.execute("SET preserve_insertion_order = true")
        con.execute("SET enable_progress_bar = false")  # the trainer logs its own progress
        udfs.register(con)
        return Columnar(con, path)

    def close(self) -> None:
        """Close and delete the database; closing twice is harmless."""
        self.closed = True
        self._finalizer()

    def __enter__(self) -> Columnar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> duckdb.DuckDBPyConnection:
        return self.con.execute(sql, params) if params is not None else self.con.execute(sql)

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        row = self.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def all(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.execute(sql, params).fetchall()

    def chunks(self, sql: str, size: int = CHUNK) -> Iterator[list[tuple[Any, ...]]]:
        """The rows of ``sql`` a chunk at a time (never all of them in Python at once)."""
        cur = self.con.cursor()
        try:
            cur.execute(sql)
            while rows := cur.fetchmany(size):
                yield rows
        finally:
            cur.close()

    def has(self, table: str) -> bool:
        n = self.scalar("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [table])
        return bool(n)

    def count(self, table: str) -> int:
        return int(self.scalar(f"SELECT count(*) FROM {table}"))

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Append Python rows to ``table`` a chunk at a time (one statement per chunk)."""
        cols = ", ".join(columns)
        unnest = ", ".join(f"unnest(${i + 1})" for i in range(len(columns)))
        for start in range(0, len(rows), CHUNK):
            part = rows[start : start + CHUNK]
            values = [[r[i] for r in part] for i in range(len(columns))]
            self.con.execute(f"INSERT INTO {table} ({cols}) SELECT {unnest}", values)
