"""Data pipeline at scale: ingest + clean + load + split + export, SQLite and MariaDB.

    .venv/bin/python -m bench.pipeline_scale [--scales small bookcrossing bookcrossing4x]
        [--backends sqlite mysql] [--mysql mysql://root@127.0.0.1:3306]

Each (scale, backend) starts from an empty store. Wall time is the sum of the
two trainer commands (`ingest`, then `export` which freezes the split); peak
memory is the larger of their peak RSS. Targets (issue 3): bookcrossing scale
under 3 minutes and under 4 GiB on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bench.common import demo_data, trainer, write_results


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


def measure(scale: str, backend: str, mysql: str) -> dict[str, Any]:
    data = demo_data(scale)
    work = Path(tempfile.mkdtemp(prefix="bookrec-bench-"))
    database = f"bookrec_bench_{uuid.uuid4().hex[:8]}"
    if backend == "sqlite":
        url = f"sqlite:///{work / 'store.sqlite'}"
    else:
        asyncio.run(_mysql(mysql, f"CREATE DATABASE {database}"))
        url = f"{mysql.rstrip('/')}/{database}"
    try:
        ingest = trainer("ingest", "--data", str(data), "--store", url)
        export = trainer("export", "--store", url, "--out", str(work / "export"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if backend == "mysql":
            asyncio.run(_mysql(mysql, f"DROP DATABASE {database}"))
    stages = {**ingest["stages"], **export["stages"]}
    return {
        "scale": scale,
        "backend": backend,
        "seconds": round(ingest["seconds"] + export["seconds"], 1),
        "peak_rss_mb": max(ingest["peak_rss_mb"], export["peak_rss_mb"]),
        "stages": stages,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scales", nargs="+", default=["small", "bookcrossing", "bookcrossing4x"])
    p.add_argument("--backends", nargs="+", default=["sqlite", "mysql"])
    p.add_argument("--mysql", default="mysql://root@127.0.0.1:3306")
    args = p.parse_args()
    rows = [measure(s, b, args.mysql) for s in args.scales for b in args.backends]
    stage_names = list(rows[0]["stages"])
    lines = [
        "| scale | backend | wall s | peak RSS MiB | " + " | ".join(stage_names) + " |",
        "|---|---|---:|---:|" + "---:|" * len(stage_names),
    ]
    for r in rows:
        cells = " | ".join(str(r["stages"].get(s, "")) for s in stage_names)
        lines.append(
            f"| {r['scale']} | {r['backend']} | {r['seconds']} | {r['peak_rss_mb']} | {cells} |"
        )
    write_results("pipeline_scale", rows, "\n".join(lines))


if __name__ == "__main__":
    main()
