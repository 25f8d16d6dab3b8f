"""Training progress on stderr (trainer/progress.py): rich.progress bars on a terminal,
drawn under the JSON log lines without breaking them, with one summary line per task
and one for the run; JSON "progress" lines (nothing drawn) anywhere else."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pyte

from tests.trainerproc import ROOT, run_command, trainer_env

# Wide enough that no log line wraps: a wrapped line would not be one JSON document.
COLUMNS, ROWS = 4000, 5000
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_on_a_terminal(cmd: list[str], env: dict[str, str]) -> tuple[int, str]:
    """``cmd`` with stderr on a pseudo-terminal; (exit code, what the terminal got)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=follower, stdin=subprocess.DEVNULL
    )
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(timeout=300), b"".join(chunks).decode("utf-8", "replace")


def final_lines(output: str) -> list[str]:
    """What stays on the screen once the program ends: a terminal emulator (pyte) plays
    the output, cursor moves and line erases included."""
    screen = pyte.Screen(COLUMNS, ROWS)
    pyte.Stream(screen).feed(output)
    rows = [screen.buffer[y] for y in range(ROWS)]
    return ["".join(row[x].data for x in range(max(row, default=-1) + 1)).rstrip() for row in rows]


def test_a_real_run_on_a_terminal_draws_bars_under_intact_log_lines(
    tiny_data: Path, tmp_path: Path
) -> None:
    # Every task's bar, however quick this machine runs the tiny set.
    env = {**trainer_env(), "TERM": "xterm", "BOOKREC_PROGRESS_AFTER": "0"}
    env.pop("BOOKREC_PROGRESS", None)
    cmd = run_command(tiny_data, tmp_path / "artifacts", f"sqlite:///{tmp_path / 's.sqlite'}")
    rc, output = run_on_a_terminal(cmd, env)
    assert rc == 0, output[-3000:]
    # The bar itself (rich's), for the study inside its stage.
    drawn = ANSI.sub("", output)
    assert re.search(r"als study {5,}━+.* \d/4 trials", drawn), drawn[-3000:]
    lines = [line for line in final_lines(output) if line.strip()]
    summaries = [line for line in lines if not line.startswith("{")]
    for line in lines:
        if line.startswith("{"):
            json.loads(line)  # every log line survives the bar whole
    assert any(s.startswith("als study: ") and "trials, done in" in s for s in summaries)
    assert any(s.startswith("models: done in") for s in summaries), summaries
    assert summaries[-1].startswith("trainer: done in") and "published " in summaries[-1]
    # Nothing but the summaries and log lines stays: the bars are gone.
    assert all(": " in s and "done in " in s for s in summaries), summaries


def test_off_a_terminal_progress_is_json_lines(tmp_path: Path) -> None:
    script = """
import logging, time
from bookrec import log as logsetup
from trainer import progress
logsetup.configure()
progress.LINE_SECONDS = 0.2
with progress.task("stage"):
    with progress.task("demo study", 3, "trials") as bar:
        for i in range(3):
            time.sleep(0.3)
            logging.getLogger("trainer").info("trial", extra={"fields": {"i": i}})
            bar.advance(note=f"best {i}")
    time.sleep(0.5)
progress.say(progress.run_summary({"stage": 1.4}, "published x"))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    docs = [json.loads(line) for line in done.stderr.splitlines()]  # every line is JSON
    assert "\r" not in done.stderr and "\x1b" not in done.stderr
    events = [d["event"] for d in docs]
    assert "progress" in events and events.count("trial") == 3
    final = next(d for d in docs if d["event"] == "progress done")
    assert final["task"] == "demo study" and final["done"] == final["total"] == 3
    assert final["note"] == "best 2"
    assert docs[-1]["event"] == "summary" and docs[-1]["text"].startswith("trainer: done in")
