"""Run `python -m trainer` as a subprocess with the tiny settings, and kill it on a log line.

The fault tests need a real process to SIGKILL, so they cannot call the pipeline
in process; the settings match tests/conftest.py's ``tiny_config`` (through the
``BOOKREC_TRAIN_*`` variables), so a run takes seconds.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import TINY_ALS_GRID

ROOT = Path(__file__).resolve().parents[1]

TINY_ENV = {
    "BOOKREC_TRAIN_THREADS": "1",
    "BOOKREC_TRAIN_ALS_GRID": TINY_ALS_GRID,
    "BOOKREC_TRAIN_STUDY_TRIALS": "4",
    "BOOKREC_TRAIN_STUDY_SECONDS": "120",
    "BOOKREC_TRAIN_ITEM_ITEM_TRIALS": "2",
    "BOOKREC_TRAIN_RERANK": "always",
    "BOOKREC_TRAIN_SUBJECT_EPOCHS": "2",
}


def trainer_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKREC_TRAIN_")}
    return {**env, **TINY_ENV, "PYTHONPATH": str(ROOT)}


def run_command(data: Path, artifacts: Path, store: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "trainer",
        "run",
        "--data",
        str(data),
        "--artifacts",
        str(artifacts),
        "--store",
        store,
    ]


def train(data: Path, artifacts: Path, store: str) -> subprocess.CompletedProcess[str]:
    """One whole `trainer run`, to completion."""
    return subprocess.run(
        run_command(data, artifacts, store),
        cwd=ROOT,
        env=trainer_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def stage_line(stage: str) -> str:
    """How the trainer's JSON log (orjson, no spaces) announces a stage."""
    return f'"event":"stage started","stage":"{stage}"'


def train_until(data: Path, artifacts: Path, store: str, line: str) -> str:
    """Start `trainer run` and SIGKILL it as soon as its stderr prints ``line``.

    Returns the stderr read until then; fails if the run ended before printing it.
    """
    proc = subprocess.Popen(
        run_command(data, artifacts, store),
        cwd=ROOT,
        env=trainer_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen: list[str] = []
    try:
        for text in proc.stderr:
            seen.append(text)
            if line in text:
                proc.send_signal(signal.SIGKILL)
                break
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert rc == -signal.SIGKILL, f"run ended ({rc}) before {line!r}:\n{''.join(seen)[-3000:]}"
    return "".join(seen)


def sqlite_tables(path: Path) -> dict[str, int]:
    """Row count of every table of a SQLite store; asserts the file is intact."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: int(conn.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0]) for n in names}
    finally:
        conn.close()


def run_statuses(path: Path) -> list[str]:
    """The status of each recorded run (runs started in one second may sort either way)."""
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT status FROM runs ORDER BY started_at, run_id")]
    finally:
        conn.close()
