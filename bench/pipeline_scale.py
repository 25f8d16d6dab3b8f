"""Data pipeline at scale: ingest + clean + load + split + export, SQLite and MariaDB.

    .venv/bin/python -m bench.pipeline_scale [--scales small bookcrossing bookcrossing4x]
        [--backends sqlite mysql] [--mysql mysql://root@127.0.0.1:3306] [--timeout 600]

Each (scale, backend) starts from an empty store. Wall time is the sum of the
two trainer commands (`ingest`, then `export` which freezes the split); peak
memory is the larger of their peak RSS (VmHWM, polled from /proc, so a command
stopped at ``--timeout`` still has one). A command that runs past the timeout is
stopped and the row says in which stage (docs/scale.md: where one machine stops).
``--columnar`` instead times a DuckDB prototype of the ratings rules (needs the duckdb
package, not a project dependency: `pip install --target DIR duckdb`, PYTHONPATH=DIR).
Rows of other (scale, backend) pairs already in bench/results/pipeline_scale.json
are kept, so scales can be measured one invocation at a time. Targets (issue 3):
bookcrossing scale under 3 minutes and under 4 GiB on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bench.common import ROOT, demo_data, peak_rss_mb, read_results, write_results
from bench.serverproc import status_kb


async def _mysql(server: str, statement: str) -> None:
    import asyncmy

    p = urlparse(server)
    conn = await asyncmy.connect(
        host=p.hostname or "127.0.0.1",
        port=p.port or 3306,
        user=p.username or "root",
        password=p.password or "",
    )
    async with conn.cursor() as cur:
        await cur.execute(statement)
    conn.close()


def run_trainer(args: list[str], timeout: float) -> dict[str, Any]:
    """`python -m trainer ARGS` with a time limit: its stage times, row counts and peak RSS.

    Why not bench.common.trainer: that one waits for ever and reads peak RSS from the
    last log line, which a command stopped at the limit never writes.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainer", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    events: list[dict[str, Any]] = []
    tail: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                tail.append(line)
                del tail[:-40]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    peak = 0.0
    timed_out = False
    while proc.poll() is None:
        peak = max(peak, status_kb(proc.pid, "VmHWM") / 1024)
        if time.perf_counter() - start > timeout:
            timed_out = True
            proc.kill()
            proc.wait()
            break
        time.sleep(0.5)
    reader.join(timeout=5)
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, None) and not timed_out:
        raise RuntimeError(f"trainer {' '.join(args)} failed:\n{''.join(tail)[-3000:]}")
    out: dict[str, Any] = {"stages": {}, "seconds": round(seconds, 1), "timed_out": timed_out}
    for doc in events:
        event = doc.get("event")
        if event == "stage started":
            out["last_stage"] = doc["stage"]
        elif event == "stage done":
            out["stages"][doc["stage"]] = doc["seconds"]
        elif event == "command finished":
            peak = max(peak, float(doc["peak_rss_mb"]))
        elif event == "read file" and doc.get("file") == "BX-Book-Ratings.csv":
            out["rating_rows"] = doc["rows"]
        elif event == "store loaded":
            out.update(interactions=doc["interactions"], users=doc["users"], works=doc["works"])
        elif event == "split frozen":
            out["train_rows"] = doc["train"]
    out["peak_rss_mb"] = round(peak, 1)
    return out


def measure(scale: str, backend: str, mysql: str, timeout: float) -> dict[str, Any]:
    data = demo_data(scale)
    work = Path(tempfile.mkdtemp(prefix="bookrec-bench-"))
    database = f"bookrec_bench_{uuid.uuid4().hex[:8]}"
    if backend == "sqlite":
        url = f"sqlite:///{work / 'store.sqlite'}"
    else:
        asyncio.run(_mysql(mysql, f"CREATE DATABASE {database}"))
        url = f"{mysql.rstrip('/')}/{database}"
    runs: list[dict[str, Any]] = []
    store_mb = 0.0
    try:
        runs.append(run_trainer(["ingest", "--data", str(data), "--store", url], timeout))
        if backend == "sqlite" and (work / "store.sqlite").exists():
            store_mb = (work / "store.sqlite").stat().st_size / 2**20
        if not runs[0]["timed_out"]:
            export = ["export", "--store", url, "--out", str(work / "export")]
            runs.append(run_trainer(export, timeout))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if backend == "mysql":
            asyncio.run(_mysql(mysql, f"DROP DATABASE {database}"))
    row: dict[str, Any] = {"scale": scale, "backend": backend}
    for key in ("rating_rows", "interactions", "users", "works", "train_rows"):
        row[key] = next((r[key] for r in runs if key in r), None)
    stopped = next((r for r in runs if r["timed_out"]), None)
    row.update(
        seconds=round(sum(r["seconds"] for r in runs), 1),
        peak_rss_mb=max(r["peak_rss_mb"] for r in runs),
        store_mb=round(store_mb, 1),
        stages={k: v for r in runs for k, v in r["stages"].items()},
        stopped_in=stopped.get("last_stage", "start") if stopped else None,
    )
    return row


# Canonical ISBN-13 of a stripped, upper-case ISBN-10/13 ``s``, or NULL: trainer/cleaning/isbn.py.
_ISBN13 = """CASE
  WHEN regexp_full_match(s, '[0-9]{9}[0-9X]') AND (list_sum(list_transform(range(9),
       lambda i: (10 - i) * CAST(substr(s, i + 1, 1) AS INT)))
       + CASE WHEN substr(s, 10, 1) = 'X' THEN 10 ELSE CAST(substr(s, 10, 1) AS INT) END) % 11 = 0
  THEN '978' || substr(s, 1, 9) || CAST((10 - list_sum(list_transform(range(12), lambda i:
       CAST(substr('978' || s, i + 1, 1) AS INT) * (1 + 2 * (i % 2)))) % 10) % 10 AS VARCHAR)
  WHEN regexp_full_match(s, '97[89][0-9]{10}') AND list_sum(list_transform(range(13),
       lambda i: CAST(substr(s, i + 1, 1) AS INT) * (1 + 2 * (i % 2)))) % 10 = 0 THEN s
END"""


def _isbn13(column: str) -> str:
    stripped = f"upper(regexp_replace({column}, '[\\s-]', '', 'g'))"
    return f"(SELECT {_ISBN13} FROM (SELECT {stripped} AS s))"


def columnar(scale: str) -> dict[str, Any]:
    """The ratings rules (value range, valid ISBN, edition -> work through the Open
    Library editions, known book, exact duplicates, one per user and work) in DuckDB.

    Why: docs/scale.md claims a columnar engine is the first change; this times the
    heaviest rules on the same files. Not a drop-in: the catalogue merge by title and
    author, the users rules and the k-core are left out, and a book with no Open
    Library work stands for its own work.
    """
    import duckdb  # type: ignore[import-not-found,unused-ignore]

    data = demo_data(scale)
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    start = time.perf_counter()
    csv = (
        "delim=';', quote='\"', escape='\"', header=true, auto_detect=false,"
        " strict_mode=false, null_padding=true, ignore_errors=true"
    )
    books_cols = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(1, 8))
    ol_isbns = (
        "unnest(list_concat("
        "coalesce(CAST(json_extract(j, '$.isbn_10') AS VARCHAR[]), []),"
        "coalesce(CAST(json_extract(j, '$.isbn_13') AS VARCHAR[]), [])))"
    )
    editions = data / "ol_dump_editions.txt"
    ol_columns = "{'t': 'VARCHAR', 'k': 'VARCHAR', 'r': 'VARCHAR', 'm': 'VARCHAR', 'j': 'VARCHAR'}"
    con.execute(
        f"""CREATE TABLE isbn_work AS
        SELECT isbn, min(work) AS work FROM (
          SELECT {_isbn13("raw")} AS isbn, work FROM (
            SELECT {ol_isbns} AS raw, json_extract_string(j, '$.works[0].key') AS work
            FROM read_csv('{editions}', delim='\t', header=false, quote='', escape='',
                          columns={ol_columns})
          )
        ) WHERE isbn IS NOT NULL AND work IS NOT NULL GROUP BY isbn"""
    )
    con.execute(
        f"""CREATE TABLE books AS SELECT DISTINCT {_isbn13("isbn")} AS isbn
        FROM read_csv('{data / "BX-Books.csv"}', {csv}, encoding='latin-1',
                      columns={{'isbn': 'VARCHAR', {books_cols}}})"""
    )
    con.execute(
        f"""CREATE TABLE ratings AS
        WITH r AS (
          SELECT u, {_isbn13("isbn")} AS isbn, TRY_CAST(v AS INT) AS rating
          FROM read_csv('{data / "BX-Book-Ratings.csv"}', {csv}, encoding='latin-1',
                        columns={{'u': 'VARCHAR', 'isbn': 'VARCHAR', 'v': 'VARCHAR'}})
        ), known AS (
          SELECT DISTINCT r.u, coalesce(w.work, r.isbn) AS work, r.rating
          FROM r JOIN books b ON b.isbn = r.isbn LEFT JOIN isbn_work w ON w.isbn = r.isbn
          WHERE r.rating BETWEEN 0 AND 10
        )
        SELECT u, work, max(rating) AS rating, sum(CASE WHEN rating = 0 THEN 1 ELSE 0 END)
               AS implicit_weight
        FROM known GROUP BY u, work"""
    )
    seconds = time.perf_counter() - start
    (rows,) = con.execute("SELECT count(*) FROM ratings").fetchone() or (0,)
    (threads,) = con.execute("SELECT current_setting('threads')").fetchone() or ("",)
    return {
        "scale": scale,
        "backend": "duckdb-prototype",
        "threads": threads,
        "interactions": rows,
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "stages": {"read+clean (ratings rules)": round(seconds, 1)},
        "stopped_in": None,
    }


def _markdown(rows: list[dict[str, Any]]) -> str:
    from bench.report import markdown_table

    stage_names = list(dict.fromkeys(s for r in rows for s in r["stages"]))
    columns = (
        ("scale", "scale"),
        ("backend", "backend"),
        ("rating rows", "rating_rows"),
        ("interactions", "interactions"),
        ("wall s", "seconds"),
        ("peak RSS MiB", "peak_rss_mb"),
        *((name, f"stages.{name}") for name in stage_names),
        ("stopped in", "stopped_in"),
    )
    return markdown_table(rows, columns)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scales", nargs="+", default=["small", "bookcrossing", "bookcrossing4x"])
    p.add_argument("--backends", nargs="+", default=["sqlite", "mysql"])
    p.add_argument("--mysql", default="mysql://root@127.0.0.1:3306")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per trainer command")
    p.add_argument("--columnar", action="store_true", help="DuckDB prototype of the ratings rules")
    args = p.parse_args()
    if args.columnar:
        new = [columnar(s) for s in args.scales]
    else:
        new = [measure(s, b, args.mysql, args.timeout) for s in args.scales for b in args.backends]
    fresh = {(r["scale"], r["backend"]) for r in new}
    kept = [r for r in read_results("pipeline_scale") if (r["scale"], r["backend"]) not in fresh]
    rows = kept + new
    write_results("pipeline_scale", rows, _markdown(rows))


if __name__ == "__main__":
    main()
