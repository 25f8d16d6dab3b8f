"""Model quality and training cost: the issue-4 targets, measured.

    .venv/bin/python -m bench.model_quality [--scales small bookcrossing] [--repeat]

For each scale: a fresh SQLite store, `trainer run` (same seed, same split),
then the table of end-to-end metrics on the eval half and the ratios the
targets are about. ``--repeat`` trains a second time on the same store and
reports whether every metric matches to 4 decimals.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.common import demo_data, trainer, write_results


def _run(data: Path, work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    artifacts = work / "artifacts"
    figures = trainer(
        "run",
        "--data",
        str(data),
        "--artifacts",
        str(artifacts),
        "--store",
        f"sqlite:///{work / 'store.sqlite'}",
    )
    manifest = json.loads(next(artifacts.glob("*/manifest.json")).read_text())
    return figures, manifest["metrics"]


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def measure(scale: str, repeat: bool) -> dict[str, Any]:
    data = demo_data(scale)
    work = Path(tempfile.mkdtemp(prefix="bookrec-quality-"))
    try:
        figures, metrics = _run(data, work)
        same = None
        if repeat:
            shutil.rmtree(work / "artifacts")
            _, again = _run(data, work)
            same = all(metrics[g] == again[g] for g in ("warm", "cold"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    warm, cold = metrics["warm"], metrics["cold"]
    ndcg = {f"warm/{k}": v["ndcg@10"] for k, v in warm.items()}
    ndcg |= {f"cold/{k}": v["ndcg@10"] for k, v in cold.items()}
    return {
        "scale": scale,
        "seconds": figures["seconds"],
        "peak_rss_mb": figures["peak_rss_mb"],
        "stages": figures["stages"],
        "metrics": metrics,
        "als_vs_popularity": ratio(ndcg["warm/als"], ndcg["warm/popularity"]),
        "reranker_vs_als": ratio(ndcg.get("warm/als+reranker", 0.0), ndcg["warm/als"]),
        "cold_blend_vs_popularity": ratio(
            ndcg.get("cold/subject+prior", 0.0), ndcg.get("cold/popularity", 0.0)
        ),
        "served": metrics["served"],
        "same_metrics_on_repeat": same,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scales", nargs="+", default=["small", "bookcrossing"])
    p.add_argument("--repeat", action="store_true")
    args = p.parse_args()
    rows = [measure(s, args.repeat) for s in args.scales]
    lines = []
    for r in rows:
        lines += [
            f"### {r['scale']}: {r['seconds']} s, peak {r['peak_rss_mb']} MiB, "
            f"served {r['served']}",
            "",
            "| users | strategy | Recall@10 | Recall@50 | NDCG@10 | MAP@10 | Coverage@10 |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for group in ("warm", "cold"):
            for name, m in r["metrics"][group].items():
                lines.append(
                    f"| {group} ({m['users']}) | {name} | {m['recall@10']} | {m['recall@50']} "
                    f"| {m['ndcg@10']} | {m['map@10']} | {m['coverage@10']} |"
                )
        lines += [
            "",
            f"ALS / popularity NDCG@10: {r['als_vs_popularity']} (target >= 2); "
            f"ALS+reranker / ALS: {r['reranker_vs_als']} (target >= 1.10); "
            f"cold subject+prior / popularity: {r['cold_blend_vs_popularity']} (target >= 1.5); "
            f"same metrics on repeat: {r['same_metrics_on_repeat']}",
            "",
            "stages (s): " + ", ".join(f"{k} {v}" for k, v in r["stages"].items()),
            "",
        ]
    write_results("model_quality", rows, "\n".join(lines))


if __name__ == "__main__":
    main()
