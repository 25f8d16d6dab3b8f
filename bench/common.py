"""Helpers the benchmarks share: run a trainer command, read its figures."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "results"


def trainer(*args: str) -> dict[str, Any]:
    """Run `python -m trainer ARGS`; return its 'command finished' and stage figures."""
    proc = subprocess.run(
        [sys.executable, "-m", "trainer", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"trainer {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    figures: dict[str, Any] = {"stages": {}}
    for line in proc.stderr.splitlines():
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            continue
        if doc.get("event") == "stage done":
            figures["stages"][doc["stage"]] = doc["seconds"]
        elif doc.get("event") == "command finished":
            figures["seconds"] = doc["seconds"]
            figures["peak_rss_mb"] = doc["peak_rss_mb"]
    return figures


def demo_data(scale: str) -> Path:
    """The demo set of one scale, generated once and kept under bench/data/."""
    out = DATA / scale
    if not (out / "BX-Book-Ratings.csv").exists():
        trainer("demo-data", "--scale", scale, "--out", str(out))
    return out


def peak_rss_mb() -> float:
    """This process's peak RSS so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_results(name: str) -> list[dict[str, Any]]:
    """The rows an earlier ``write_results(name, ...)`` kept; none if there are none."""
    try:
        rows: list[dict[str, Any]] = json.loads((RESULTS / f"{name}.json").read_text())
    except (OSError, json.JSONDecodeError):
        return []
    return rows


def write_results(name: str, rows: list[dict[str, Any]], markdown: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=2))
    (RESULTS / f"{name}.md").write_text(markdown + "\n")
    print(markdown)
