"""Trials in one study clock: one trainer against N trainers sharing the study.

    .venv/bin/python -m bench.shared_study [--data DIR] [--scale tiny] [--trainers 1 2]
        [--als-seconds 40] [--threads 1] [--repeats 1]

Why: a study shared through the store's MariaDB (trainer/models/shared_study.py,
docs/scale.md) should give N trainers about N times the trials of one in the same
clock. Each point is whole `trainer run`s on this machine, started together, with
the same study clock (``--als-seconds`` for the ALS study) and a trial budget too
large to reach, item-item and the reranker off; the trials are counted in the study
afterwards (per trainer, and pruned ones apart). The study's first points are a
grid of ``--points`` points of one cost (``--factors``, ``--iterations``; alpha
varies), so that the count measures throughput, not which points TPE happened to
draw (a 512-factor, 30-iteration point costs a hundred 8-factor ones); a grid far
larger than the clock can use costs time of its own, since Optuna reads every
waiting trial back from the storage at each trial. ``busy_s`` is the time spent
inside trials, summed over the trainers. On a machine with fewer free cores
than trainers the figure is what the cores allow, not what N hosts would give: the
load average is printed beside it.

Needs the MariaDB at 127.0.0.1:3306 (root, no password): each point gets a fresh
database, dropped after.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import optuna
import pymysql

ROOT = Path(__file__).resolve().parents[1]


def _env(
    threads: int, als_seconds: float, factors: int, iterations: int, points: int
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKREC_TRAIN_")}
    alphas = ",".join(f"{1 + i / 100:.2f}" for i in range(points))
    return {
        **env,
        "BOOKREC_TRAIN_ALS_GRID": (
            f"factors={factors};iterations={iterations};scheme=log;alpha={alphas}"
        ),
        "PYTHONPATH": str(ROOT),
        "BOOKREC_TRAIN_THREADS": str(threads),
        "BOOKREC_TRAIN_STUDY_TRIALS": "10000",
        # the ALS study gets two thirds of the clock (trainer/training.py)
        "BOOKREC_TRAIN_STUDY_SECONDS": str(als_seconds * 3 / 2),
        "BOOKREC_TRAIN_ITEM_ITEM": "0",
        "BOOKREC_TRAIN_RERANK": "off",
        "BOOKREC_TRAIN_SUBJECT_EPOCHS": "1",
    }


def _trainer(data: Path, url: str, artifacts: Path, env: dict[str, str]) -> list[str]:
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
        url,
        "--study-storage",
        url,
        "--study-name",
        "bench",
    ]


def point(
    data: Path,
    trainers: int,
    threads: int,
    als_seconds: float,
    factors: int,
    iterations: int,
    points: int,
) -> dict[str, Any]:
    """``trainers`` trainers on one shared study; its trials counted afterwards."""
    db = f"bookrec_bench_{uuid.uuid4().hex[:8]}"
    conn = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
    url = f"mysql://root:@127.0.0.1:3306/{db}"
    env = _env(threads, als_seconds, factors, iterations, points)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for command in ("ingest", "split"):  # one store, loaded once
                argv = [sys.executable, "-m", "trainer", command, "--data", str(data)]
                subprocess.run(
                    [*argv, "--store", url],
                    cwd=ROOT,
                    env=env,
                    check=True,
                    capture_output=True,
                )
            load_before = os.getloadavg()[0]
            procs = [
                subprocess.Popen(
                    _trainer(data, url, Path(tmp) / f"a{i}", env),
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for i in range(trainers)
            ]
            codes = [p.wait() for p in procs]
            study = optuna.load_study(
                study_name="bench", storage=f"mysql+pymysql://root:@127.0.0.1:3306/{db}"
            )
            trials = study.get_trials(deepcopy=False)
            ran = [t for t in trials if t.state.name != "WAITING"]
            hosts: dict[str, int] = {}
            for t in ran:
                key = str(t.user_attrs.get("host"))
                hosts[key] = hosts.get(key, 0) + 1
            states = [t.state.name for t in trials]
            return {
                "trainers": trainers,
                "threads": threads,
                "als_seconds": als_seconds,
                "exit_codes": codes,
                "trials": len(ran),
                "complete": states.count("COMPLETE"),
                "pruned": states.count("PRUNED"),
                "per_trainer": sorted(hosts.values()),
                "best": round(float(study.best_value), 4),
                "trial_s_median": _median([t.duration.total_seconds() for t in ran if t.duration]),
                "busy_s": round(sum(t.duration.total_seconds() for t in ran if t.duration), 1),
                "load_avg_1m": [round(load_before, 1), round(os.getloadavg()[0], 1)],
            }
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE {db}")
        conn.close()


def _median(xs: list[float]) -> float | None:
    return round(sorted(xs)[len(xs) // 2], 2) if xs else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, help="a data directory (default: a fresh demo set)")
    p.add_argument("--scale", default="tiny", help="demo scale when --data is not given")
    p.add_argument("--trainers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--als-seconds", type=float, default=40.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--factors", type=int, default=32)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--points", type=int, default=40)
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            from trainer.demo import generate

            data = Path(tmp) / "data"
            generate(data, args.scale, seed=0)
        for _ in range(args.repeats):
            for n in args.trainers:
                start = time.perf_counter()
                row = point(
                    data,
                    n,
                    args.threads,
                    args.als_seconds,
                    args.factors,
                    args.iterations,
                    args.points,
                )
                row["wall_s"] = round(time.perf_counter() - start, 1)
                print(row, flush=True)


if __name__ == "__main__":
    main()
