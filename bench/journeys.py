"""The new-user journeys of trainer/models/cold.py on a loaded store, without the studies:
ALS, item-item and the blend weight as a finished run chose them (its manifest), the
split and the journeys' folds at ``--seed``. For the figures of docs/models.md (two
seeds) when a whole ``trainer run`` per seed costs too much.

    .venv/bin/python -m bench.journeys --store sqlite:///DATA/bookrec.sqlite \
        --manifest ARTIFACT/manifest.json --seed 1 [--folds 3] [--out result.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from trainer.evaluation import journeys as jy
from trainer.evaluation.split import SplitConfig
from trainer.features import build_features
from trainer.modeling import ModelConfig, fit_subject_model
from trainer.models.als import ALSParams
from trainer.models.cold import evaluate_new_users
from trainer.models.item_item import ItemItemParams
from trainer.models.subject_model import SubjectModelParams, book_vectors
from trainer.snapshot import Snapshot
from trainer.store.store import Store


def snapshot(url: str, seed: int) -> Snapshot:
    async def export() -> Snapshot:
        async with await Store.open(url) as store:
            return await store.export(await store.freeze_split(SplitConfig(seed=seed)))

    return asyncio.run(export())


def settings(manifest: dict[str, Any]) -> tuple[ALSParams, ItemItemParams | None, float]:
    als = ALSParams(**{k: v for k, v in manifest["params"]["als"].items() if k != "threads"})
    ii = manifest["metrics"]["item_item"]
    served = manifest["metrics"]["served"]
    if not served.startswith(("als+item_item", "item_item")):
        return als, None, 1.0
    return als, ItemItemParams(**ii["params"]), float(manifest["params"]["item_item_blend"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folds", type=int, default=jy.FOLDS)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    start = time.perf_counter()
    snap = snapshot(args.store, args.seed)
    feats = build_features(snap)
    als, ii, weight = settings(json.loads(args.manifest.read_text()))
    sm = fit_subject_model(snap, feats, SubjectModelParams())
    vectors = book_vectors(sm, feats.book_subjects)
    js = jy.build(snap, feats.book_subjects, args.seed, args.folds)
    cfg = ModelConfig()
    new = evaluate_new_users(
        snap,
        feats,
        sm,
        vectors,
        js,
        (als, ii, weight, cfg.blend_candidates),
        cfg.popularity_weights,
        cfg.prior_strength,
        args.seed,
    )
    out = {"seed": args.seed, "seconds": round(time.perf_counter() - start, 1), **new.metrics}
    print(table(out))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))


def table(m: dict[str, Any]) -> str:
    lines = [
        f"seed {m['seed']}: popularity form {m['popularity_form']['chosen']}, "
        f"shrink k {m.get('shrink', {}).get('chosen')}, "
        f"ColdStart weight {m.get('cold_start', {}).get('chosen')}, {m['seconds']} s",
        "| journey | users | popularity (counts) | prior | served | served / popularity | "
        "served - popularity, paired | served - prior, paired |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def fig(row: dict[str, Any]) -> str:
        low, high = row["ndcg@10_ci"]
        return f"{row['ndcg@10']:.4f} [{low:.4f}, {high:.4f}]"

    def gain(g: dict[str, Any]) -> str:
        return f"{g['mean']:+.4f} [{g['low']:+.4f}, {g['high']:+.4f}]"

    for name, r in m["journeys"].items():
        lines.append(
            f"| {name} | {r['served']['users']} | {fig(r['popularity'])} | {fig(r['prior'])} | "
            f"{fig(r['served'])} | {r['served_vs_popularity']['ratio']:.2f}x | "
            f"{gain(r['served_vs_popularity'])} | {gain(r['served_vs_prior'])} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
