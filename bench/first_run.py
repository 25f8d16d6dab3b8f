"""A newcomer's `make run`, timed: clone a repository to a temporary folder, run
`make run` there on free ports, and when the server is up ask it for one list with
the CLI (the first answer), then stop it. Prints the time of each step (venv
install, web build, demo data, training, key and start, first answer) from the
moment each step's first output line appears. A figure, never a timed test.

    python -m bench.first_run [--repo /work/main] [--commit C] [--keep DIR] [--log]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import ROOT

# (step, a regular expression for the output line that starts it), in the order of make run.
STEPS = (
    ("venv", re.compile(r"creating the virtual environment|installing Python dependencies")),
    ("web build", re.compile(r"npm (ci|run)")),
    ("demo data", re.compile(r'"event":"catalogue: ')),
    ("training", re.compile(r"-m trainer run")),
    ("key and start", re.compile(r"added key|key 'local' already|-m server --artifacts")),
)
_TRY = re.compile(r"recommend --user (\S+)")


@dataclass
class Timeline:
    began: float = field(default_factory=time.monotonic)
    marks: dict[str, float] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def see(self, line: str) -> None:
        now = time.monotonic() - self.began
        self.lines.append(f"{now:7.1f}  {line}")
        for step, pattern in STEPS:
            if step not in self.marks and pattern.search(line):
                self.marks[step] = now

    def table(self, answered: float) -> str:
        order = [s for s, _ in STEPS if s in self.marks]
        bounds = [self.marks[s] for s in order] + [answered]
        rows = [
            f"| {s} | {b - a:.1f} |" for s, a, b in zip(order, bounds, bounds[1:], strict=False)
        ]
        head = f"| setup before the first step | {bounds[0]:.1f} |" if order else ""
        return "\n".join(
            ["| step | seconds |", "|---|---:|", head, *rows, f"| **total** | **{answered:.1f}** |"]
        )


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def first_answer(clone: Path, port: int, user: str) -> str:
    """One `recommend` through the clone's own CLI with the key make run wrote."""
    key = (clone / "data" / "local-api-key").read_text().strip()
    done = subprocess.run(
        [
            ".venv/bin/python",
            "-m",
            "clients",
            "--target",
            f"127.0.0.1:{port}",
            "recommend",
            "--user",
            user,
            "--k",
            "3",
        ],
        cwd=clone,
        env={**os.environ, "BOOKREC_API_KEY": key},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def run(clone: Path, env: dict[str, str]) -> tuple[Timeline, float, str]:
    port, web = free_port(), free_port()
    env = {**os.environ, "BOOKREC_PORT": str(port), "WEB_PORT": str(web), **env}
    tl = Timeline()
    proc = subprocess.Popen(
        ["make", "run"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    try:
        for raw in proc.stdout:
            line = raw.rstrip()
            tl.see(line)
            m = _TRY.search(line)
            if m and line.startswith("try:"):
                out = first_answer(clone, port, m.group(1))
                return tl, time.monotonic() - tl.began, out
        raise RuntimeError("make run ended without serving:\n" + "\n".join(tl.lines[-40:]))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.first_run", description=__doc__)
    p.add_argument("--repo", default=str(ROOT), help="what to clone (committed HEAD)")
    p.add_argument("--commit", help="check this commit out in the clone (default: HEAD)")
    p.add_argument("--keep", help="clone here and keep it (default: a temporary folder)")
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for make run")
    p.add_argument("--log", action="store_true", help="print every output line with its time")
    args = p.parse_args(argv)
    env = dict(e.split("=", 1) for e in args.env)
    tmp = None if args.keep else tempfile.mkdtemp(prefix="bookrec-first-run-")
    clone = Path(args.keep or tmp or "")
    try:
        subprocess.run(["git", "clone", "-q", args.repo, str(clone)], check=True)
        if args.commit:
            subprocess.run(["git", "checkout", "-q", args.commit], cwd=clone, check=True)
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=clone,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        tl, answered, out = run(clone, env)
        load = os.getloadavg()
        if args.log:
            print("\n".join(tl.lines))
        print(
            f"make run on a fresh clone of {args.repo} at {commit}, {os.cpu_count()} cores, "
            f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
        )
        print(tl.table(answered))
        print("first answer:\n" + out)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
