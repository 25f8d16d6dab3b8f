"""Data pipeline at scale: ingest + clean + load + split + export, SQLite and MariaDB.

    .venv/bin/python -m bench.pipeline_scale [--scales small bookcrossing bookcrossing4x]
        [--backends sqlite mysql] [--mysql mysql://root@127.0.0.1:3306] [--timeout 600]
        [--columnar-memory 4GB]

Each (scale, backend) starts from an empty store. Wall time is the sum of the
two trainer commands (`ingest`, then `export` which freezes the split); peak
memory is the larger of their peak RSS (VmHWM, polled from /proc, so a command
stopped at ``--timeout`` still has one). A command that runs past the timeout is
stopped and the row says in which stage (docs/scale.md: where one machine stops).
Read, clean and load run in DuckDB (trainer/cleaning/columnar.py): its memory limit is
``--columnar-memory`` (the trainer's default otherwise), and it spills into the run's
temporary folder, whose largest size is the row's "DuckDB on disk" (its database file
and spill files together). ``bookcrossing64x`` (and any 16*k x) is the 16x demo set
with its users copied k times (``replicated``).
Rows of other (scale, backend) pairs already in bench/results/pipeline_scale.json
are kept, so scales can be measured one invocation at a time. Targets (issue 3):
bookcrossing scale under 3 minutes and under 4 GiB on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
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

from bench.common import ROOT, demo_data, read_results, write_results
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


def run_trainer(args: list[str], timeout: float, spill: Path | None = None) -> dict[str, Any]:
    """`python -m trainer ARGS` with a time limit: its stage times, row counts and peak RSS.

    Why not bench.common.trainer: that one waits for ever and reads peak RSS from the
    last log line, which a command stopped at the limit never writes.
    """
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
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
    spill_mb = 0.0
    timed_out = False
    while proc.poll() is None:
        peak = max(peak, status_kb(proc.pid, "VmHWM") / 1024)
        if spill is not None:
            spill_mb = max(spill_mb, _folder_mb(spill))
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
    out["duckdb_disk_mb"] = round(spill_mb, 1)
    # CPU seconds (user + system) of the command: on a shared machine, wall time carries
    # the load of the moment, CPU time much less.
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    out["cpu_s"] = round(cpu, 1)
    return out


def measure(
    scale: str, backend: str, mysql: str, timeout: float, columnar: list[str]
) -> dict[str, Any]:
    known = ("bookcrossing", "bookcrossing4x", "bookcrossing16x")
    data = demo_data(scale) if scale in known or "x" not in scale else replicated(scale)
    work = Path(tempfile.mkdtemp(prefix="bookrec-bench-"))
    spill = work / "duckdb"
    columnar = [*columnar, "--columnar-temp-dir", str(spill)]
    database = f"bookrec_bench_{uuid.uuid4().hex[:8]}"
    if backend == "sqlite":
        url = f"sqlite:///{work / 'store.sqlite'}"
    else:
        asyncio.run(_mysql(mysql, f"CREATE DATABASE {database}"))
        url = f"{mysql.rstrip('/')}/{database}"
    runs: list[dict[str, Any]] = []
    store_mb = 0.0
    try:
        ingest = ["ingest", "--data", str(data), "--store", url, *columnar]
        runs.append(run_trainer(ingest, timeout, spill))
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
        duckdb_disk_mb=max(r["duckdb_disk_mb"] for r in runs),
        cpu_s=round(sum(r["cpu_s"] for r in runs), 1),
        stages={k: v for r in runs for k, v in r["stages"].items()},
        stopped_in=stopped.get("last_stage", "start") if stopped else None,
    )
    return row


def replicated(scale: str) -> Path:
    """``bookcrossingNx`` for N = 16 * k past 16x: the 16x set with its users copied k
    times (ids suffixed ``~i``), so k times its rating rows and users on the same books.

    Why not ``trainer demo-data``: its generator holds the whole set in memory (8.7 GiB
    at 16x), so 64x would not fit this machine; copying the files line by line does."""
    k = int(scale.removeprefix("bookcrossing").removesuffix("x")) // 16
    src = demo_data("bookcrossing16x")
    out = src.parent / scale
    if (out / "BX-Book-Ratings.csv").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    for name in ("BX-Books.csv", "ol_dump_editions.txt", "ol_dump_works.txt"):
        if (src / name).exists() and not (out / name).exists():
            (out / name).symlink_to(src / name)
    for name in ("BX-Users.csv", "BX-Book-Ratings.csv"):
        with (src / name).open("rb") as f, (out / f"{name}.part").open("wb") as dst:
            header = f.readline()
            dst.write(header)
            for i in range(k):
                f.seek(len(header))
                suffix = b"" if i == 0 else f"~{i}".encode()
                for line in f:
                    end = line.find(b'";', 1)
                    if line.startswith(b'"') and end > 0:
                        dst.write(line[:end] + suffix + line[end:])
                    elif i == 0:
                        dst.write(line)
        (out / f"{name}.part").rename(out / name)
    return out


def _folder_mb(path: Path) -> float:
    total = 0
    for p in path.rglob("*"):
        with contextlib.suppress(OSError):
            total += p.stat().st_size if p.is_file() else 0
    return total / 2**20


def _markdown(rows: list[dict[str, Any]]) -> str:
    from bench.report import markdown_table

    stage_names = list(dict.fromkeys(s for r in rows for s in r["stages"]))
    columns = (
        ("scale", "scale"),
        ("backend", "backend"),
        ("rating rows", "rating_rows"),
        ("interactions", "interactions"),
        ("wall s", "seconds"),
        ("CPU s", "cpu_s"),
        ("peak RSS MiB", "peak_rss_mb"),
        ("DuckDB on disk MiB", "duckdb_disk_mb"),
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
    p.add_argument("--columnar-memory", default="", help="DuckDB's memory limit (trainer default)")
    args = p.parse_args()
    columnar = ["--columnar-memory", args.columnar_memory] if args.columnar_memory else []
    new = [
        measure(s, b, args.mysql, args.timeout, columnar)
        for s in args.scales
        for b in args.backends
    ]
    fresh = {(r["scale"], r["backend"]) for r in new}
    kept = [r for r in read_results("pipeline_scale") if (r["scale"], r["backend"]) not in fresh]
    rows = kept + new
    write_results("pipeline_scale", rows, _markdown(rows))


if __name__ == "__main__":
    main()
