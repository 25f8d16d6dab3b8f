"""Model fitting at scale: one ALS fit against interactions, one item-item fit against head size.

    .venv/bin/python -m bench.train_scale [--als 1000000 4000000 16000000]
        [--ease 2000 4000 6000 8000] [--factors 128] [--iterations 15] [--timeout 600]

Why: docs/scale.md says where the one-machine trainer stops; the full `trainer run` is
too slow to repeat at 4x and 16x Book-Crossing, so the two model fits that grow with
the data are timed on their own, each in a fresh child process (its peak RSS is its
own) with a time limit.

- ALS: implicit's CPU ALS (the trainer's train_als, fixed settings) on a synthetic
  user x work confidence matrix shaped like Book-Crossing: users and works grow with
  the interactions in the ratio of the real set (105k users and 190k works per 1.15M
  ratings), work popularity Zipf(0.95), user activity lognormal(1.8).
- Item-item: the trainer's ItemItemFitter (EASE, dense in the head; RP3beta off) on a
  1x-shaped binary matrix with ``max_items`` = the head size; the trainer caps the head
  at 6000 (trainer/config.py), so this cost does not grow with the catalogue.

``--run SCALE`` instead times a whole ``trainer run`` on that demo scale with the default
study clock (``whole_run``).

Writes bench/results/train_scale.{json,md}, keeping the points of earlier calls.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from bench.common import ROOT, peak_rss_mb, read_results, write_results
from trainer.demo.scales import SCALES

BOOKCROSSING = SCALES["bookcrossing"]
USERS_PER_RATING = BOOKCROSSING.n_users / BOOKCROSSING.n_ratings
WORKS_PER_RATING = BOOKCROSSING.n_works / BOOKCROSSING.n_ratings


def synthetic(interactions: int, seed: int = 0) -> sp.csr_matrix:
    """A user x work matrix of about ``interactions`` distinct entries, Book-Crossing shaped."""
    rng = np.random.default_rng(seed)
    n_users = max(10, int(interactions * USERS_PER_RATING))
    n_works = max(10, int(interactions * WORKS_PER_RATING))
    activity = rng.lognormal(0.0, BOOKCROSSING.activity_sigma, n_users)
    popularity = 1.0 / np.arange(1, n_works + 1) ** BOOKCROSSING.popularity_exponent
    rng.shuffle(popularity)
    draws = int(interactions * 1.08)  # duplicates are merged below
    users = rng.choice(n_users, draws, p=activity / activity.sum()).astype(np.int32)
    works = rng.choice(n_works, draws, p=popularity / popularity.sum()).astype(np.int32)
    conf = (1.0 + rng.integers(0, 11, draws)).astype(np.float32)
    m = sp.csr_matrix((conf, (users, works)), shape=(n_users, n_works), dtype=np.float32)
    m.sum_duplicates()
    return m


def als_point(interactions: int, factors: int, iterations: int) -> dict[str, Any]:
    from trainer.models.als import ALSParams, train_als

    t0 = time.perf_counter()
    m = synthetic(interactions)
    build = time.perf_counter() - t0
    params = ALSParams(factors=factors, iterations=iterations, regularization=0.05)
    t1 = time.perf_counter()
    model = train_als(m, params)
    fit = time.perf_counter() - t1
    return {
        "kind": "als",
        "interactions": int(m.nnz),
        "users": m.shape[0],
        "works": m.shape[1],
        "factors": factors,
        "iterations": iterations,
        "build_s": round(build, 1),
        "fit_s": round(fit, 1),
        "per_iteration_s": round(fit / iterations, 2),
        "factor_mb": round((model.user_factors.nbytes + model.item_factors.nbytes) / 2**20, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def ease_point(head: int) -> dict[str, Any]:
    from trainer.models.item_item import ItemItemFitter, ItemItemParams

    m = synthetic(BOOKCROSSING.n_ratings)
    m.data[:] = 1.0
    params = ItemItemParams(max_items=head, rp3_share=0.0)
    t0 = time.perf_counter()
    fitter = ItemItemFitter(m, params)
    gram = time.perf_counter() - t0
    t1 = time.perf_counter()
    fitted = fitter.fit(params)
    solve = time.perf_counter() - t1
    return {
        "kind": "ease",
        "head": len(fitted.head),
        "gram_s": round(gram, 1),
        "solve_s": round(solve, 1),
        "seconds": round(gram + solve, 1),
        "nnz": int(fitted.matrix.nnz),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def _child(args: list[str], timeout: float) -> dict[str, Any]:
    """Run one point in a fresh process; a point past ``timeout`` is reported as stopped."""
    cmd = [sys.executable, "-m", "bench.train_scale", "--point", *args]
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"stopped": f"past {timeout:.0f} s", "seconds": round(time.perf_counter() - start)}
    if proc.returncode != 0:
        return {"stopped": f"exit {proc.returncode}", "error": proc.stderr[-500:]}
    row: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return row


def _markdown(rows: list[dict[str, Any]]) -> str:
    from bench.report import markdown_table  # here: a point's child keeps its RSS its own

    # A point that stopped has only what was asked (its size) and why.
    als = [
        {**r, "size": r.get("interactions", r.get("asked"))}
        for r in rows
        if r.get("kind") == "als" or "als" in r.get("asked", "")
    ]
    ease = [
        {**r, "size": r.get("head", r.get("asked"))}
        for r in rows
        if r.get("kind") == "ease" or "ease" in r.get("asked", "")
    ]
    note = ("note", "stopped")
    peak = ("peak RSS MiB", "peak_rss_mb")
    als_columns = (
        ("ALS interactions", "size"),
        ("users", "users"),
        ("works", "works"),
        ("fit s", "fit_s"),
        ("s / iteration", "per_iteration_s"),
        peak,
        note,
    )
    ease_columns = (
        ("EASE head", "size"),
        ("XᵀX s", "gram_s"),
        ("solve s", "solve_s"),
        ("total s", "seconds"),
        peak,
        note,
    )
    runs = [r for r in rows if r.get("kind") == "run"]
    run_columns = (
        ("trainer run", "asked"),
        ("wall s", "seconds"),
        peak,
        ("interactions", "interactions"),
        ("stages s", "stages"),
        ("stopped", "timed_out"),
    )
    return (
        markdown_table(als, als_columns)
        + "\n\n"
        + markdown_table(ease, ease_columns)
        + "\n\n"
        + markdown_table(runs, run_columns)
    )


def whole_run(scale: str, timeout: float, columnar_memory: str) -> dict[str, Any]:
    """A whole ``trainer run`` on a demo scale from an empty SQLite store, default study
    clock: wall time, peak RSS (polled, so a run stopped at ``timeout`` has one too) and
    the seconds of each stage; the data pipeline's DuckDB spills under the run's folder."""
    import shutil
    import tempfile
    from pathlib import Path

    from bench.common import demo_data
    from bench.pipeline_scale import replicated, run_trainer

    known = ("bookcrossing", "bookcrossing4x", "bookcrossing16x")
    data = demo_data(scale) if scale in known or "x" not in scale else replicated(scale)
    work = Path(tempfile.mkdtemp(prefix="bookrec-run-"))
    args = ["run", "--data", str(data), "--store", f"sqlite:///{work / 'store.sqlite'}"]
    args += ["--artifacts", str(work / "artifacts"), "--columnar-temp-dir", str(work / "duckdb")]
    if columnar_memory:
        args += ["--columnar-memory", columnar_memory]
    try:
        out = run_trainer(args, timeout, work / "duckdb")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"asked": f"run {scale}", "kind": "run", **out}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--run", help="a whole `trainer run` on this demo scale instead (bookcrossing16x)"
    )
    p.add_argument("--columnar-memory", default="", help="the run's DuckDB memory limit")
    p.add_argument("--als", nargs="*", type=int, default=[1_000_000, 4_000_000, 16_000_000])
    p.add_argument("--ease", nargs="*", type=int, default=[2000, 4000, 6000, 8000])
    p.add_argument("--factors", type=int, default=128)
    p.add_argument("--iterations", type=int, default=15)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per point")
    p.add_argument("--point", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.run:
        row = whole_run(args.run, args.timeout, args.columnar_memory)
        print(json.dumps(row), flush=True)
        kept = [r for r in read_results("train_scale") if r.get("asked") != row["asked"]]
        write_results("train_scale", [*kept, row], _markdown([*kept, row]))
        return
    if args.point:
        kind, size = args.point[0], int(args.point[1])
        row = als_point(size, args.factors, args.iterations) if kind == "als" else ease_point(size)
        print(json.dumps(row))
        return
    rows: list[dict[str, Any]] = []
    fit_args = ["--factors", str(args.factors), "--iterations", str(args.iterations)]
    for n in args.als:
        rows.append({"asked": f"als {n}", **_child(["als", str(n), *fit_args], args.timeout)})
        print(json.dumps(rows[-1]), flush=True)
    for n in args.ease:
        rows.append({"asked": f"ease {n}", **_child(["ease", str(n)], args.timeout)})
        print(json.dumps(rows[-1]), flush=True)
    asked = {r["asked"] for r in rows}
    rows = [r for r in read_results("train_scale") if r.get("asked") not in asked] + rows
    write_results("train_scale", rows, _markdown(rows))


if __name__ == "__main__":
    main()
