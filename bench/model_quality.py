"""Model quality on data the trainer was not designed for, and what training costs.

    .venv/bin/python -m bench.model_quality [--sets lastfm-2k small bookcrossing] [--repeat]

For each set (bench/quality_data.py): an outer holdout is set aside, the trainer
runs with its defaults (`trainer run`, its own study and decisions) on the rest,
and the published artifact is queried in process through the server's engine,
exactly as `Recommend` and `ColdStart` answer. Beside it, on the same users:
popularity, ALS with the old default grid and an independently tuned ALS
(bench/quality_baselines.py). Every figure has its 95% bootstrap interval over
users; the served pipeline's gain over the tuned ALS is a paired interval.
``--repeat`` trains a second time from scratch and says whether the metrics and
decisions came out the same.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from bench import quality_baselines as qb
from bench.common import demo_data, trainer, write_results
from bench.quality_data import (
    LASTFM,
    Interactions,
    Outer,
    outer_split,
    read_clean,
    write_bookcrossing,
    write_lastfm,
)
from trainer.evaluation.bootstrap import paired
from trainer.evaluation.metrics import RankingReport, evaluate_lists
from trainer.sources.generic import IMPLICIT, ImportOptions

SETS = ("lastfm-2k", "small", "bookcrossing")
K = 50
GRID_POINTS = {"lastfm-2k": 40, "small": 24, "bookcrossing": 12}


def _load(name: str, seed: int) -> tuple[Interactions, Outer, Path, list[str]]:
    """The set's interactions, its outer holdout, its source dir and the trainer's flags."""
    if name == "lastfm-2k":
        src = Path(tempfile.mkdtemp(prefix="bookrec-lastfm-"))
        shutil.copy(LASTFM / "user_artists.dat", src / "interactions.csv")
        data = read_clean(src, ImportOptions(interaction_kind=IMPLICIT))
        shutil.rmtree(src)
        return data, outer_split(data, seed, cold=False), LASTFM, ["--interactions", "implicit"]
    src = demo_data(name)
    data = read_clean(src)
    return data, outer_split(data, seed, cold=True), src, []


def _write_input(name: str, src: Path, out: Path, data: Interactions, outer: Outer) -> None:
    if name == "lastfm-2k":
        write_lastfm(out, data, outer.train)
    else:
        write_bookcrossing(src, out, data, outer.train)


def _seeds(data: Interactions, outer: Outer) -> dict[str, list[tuple[str, int]]]:
    """Each cold user's seed as (book, rating 0..10) pairs, oldest first."""
    return {
        user: [(data.items[r], int(data.values[r]) if data.explicit[r] else 0) for r in rows]
        for user, rows in outer.cold_seed.items()
    }


def _served(
    work: Path,
    flags: list[str],
    outer: Outer,
    seeds: dict[str, list[tuple[str, int]]],
    item_id: dict[str, int],
) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, Any]]:
    """Train with the defaults, then every holdout user's lists from the engine."""
    from bookrec.artifact import newest_valid
    from server.engine.bundle import Bundle
    from server.engine.cold_start import cold_start
    from server.engine.recommend import recommend
    from server.engine.types import Filters

    artifacts = work / "artifacts"
    figures = trainer(
        "run",
        "--data",
        str(work / "input"),
        "--artifacts",
        str(artifacts),
        "--store",
        f"sqlite:///{work / 'store.sqlite'}",
        *flags,
    )
    found = newest_valid(artifacts)
    assert found is not None, "the trainer published nothing"
    bundle = Bundle.open(found[0])

    def ids(rows: list[int]) -> np.ndarray:
        out = np.full(K, -1, dtype=np.int64)
        # A catalogue book nobody rated has no id yet: it gets one (a miss, and coverage).
        got = [item_id.setdefault(bundle.book_ids[r], len(item_id)) for r in rows[:K]]
        out[: len(got)] = got
        return out

    lists: dict[str, np.ndarray] = {}
    none = Filters()
    with threadpool_limits(1):  # as the server's workers run
        lists["served"] = np.stack(
            [
                ids([s.item for s in recommend(bundle, u, K, none, False).items])
                for u in outer.warm_targets
            ]
        )
        cold, history = [], []
        for user, seed in seeds.items():
            known = [(b, r) for b, r in seed if b in bundle.book_row]
            counts = Counter(
                int(s) for b, _ in known for s in bundle.subjects_of(bundle.book_row[b])
            )
            favs = [bundle.subject_ids[s] for s, _ in counts.most_common(3)]
            unseen = Filters(exclude_book_ids=frozenset(b for b, _ in seed))
            got = cold_start(bundle, favs, None, K, unseen, False).items if favs else []
            cold.append(ids([s.item for s in got]))
            fresh = dict(known)
            rec = recommend(bundle, f"bench-new-{user}", K, none, False, new_ratings=fresh)
            history.append(ids([s.item for s in rec.items]))
        if seeds:
            lists["cold_start"] = np.stack(cold)
            lists["history"] = np.stack(history)
    return figures, lists, dict(found[1].metrics)


def _row(
    name: str, report: RankingReport, seconds: float | None, peak: float | None
) -> dict[str, Any]:
    return {"strategy": name, **report.row(), "train_seconds": seconds, "peak_rss_mb": peak}


def measure(name: str, seed: int, repeat: bool, progress: Any = print) -> dict[str, Any]:
    data, outer, src, flags = _load(name, seed)
    item_id = {w: i for i, w in enumerate(sorted(set(data.items)))}
    work = Path(tempfile.mkdtemp(prefix=f"bookrec-quality-{name}-"))
    try:
        _write_input(name, src, work / "input", data, outer)
        seeds = _seeds(data, outer)
        figures, lists, metrics = _served(work, flags, outer, seeds, item_id)
        again = None
        if repeat:
            shutil.rmtree(work / "artifacts")
            (work / "store.sqlite").unlink()
            _, lists2, metrics2 = _served(work, flags, outer, seeds, item_id)
            again = {
                "same_lists": all(np.array_equal(lists[k], lists2[k]) for k in lists),
                "same_decisions": all(
                    metrics[k] == metrics2[k] for k in ("served", "warm", "cold", "history")
                ),
                "served": [metrics["served"], metrics2["served"]],
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n_items = len(item_id)  # the rated books, and any other book a served list showed
    m = qb.matrix(data, outer.train, item_id)
    users = list(outer.warm_targets)
    targets = [{item_id[b] for b in outer.warm_targets[u]} for u in users]
    rows: list[dict[str, Any]] = []
    reports: dict[str, RankingReport] = {}

    def add(label: str, got: np.ndarray, t: list[set[int]], seconds: float | None = None) -> None:
        reports[label] = evaluate_lists(got, t, n_items, seed)
        rows.append({"strategy": label, **reports[label].row(), "train_seconds": seconds})

    add("warm: popularity", qb.popularity_lists(m, users), targets)
    for label, grid in (
        ("warm: ALS, old default grid", qb.OLD_GRID),
        ("warm: ALS, tuned (own wide grid)", qb.wide_grid(GRID_POINTS[name], seed)),
    ):
        uf, itf, chosen = qb.tuned_als(m, grid, seed, progress)
        add(label, qb.als_lists(m, uf, itf, users), targets, chosen["seconds"])
        rows[-1]["chosen"] = chosen
    served = f"warm: served ({metrics['served']})"
    add(served, lists["served"], targets, figures["seconds"])
    tuned = reports["warm: ALS, tuned (own wide grid)"]
    gain = paired(reports[served].per_user_ndcg, tuned.per_user_ndcg, seed)
    pop = reports["warm: popularity"].ndcg_at_10
    if "cold_start" in lists:
        cold_users = list(seeds)
        cold_t = [{item_id[b] for b in outer.cold_targets[u]} for u in cold_users]
        seen = {u: {b for b, _ in seeds[u]} for u in cold_users}
        order = np.argsort(-np.asarray(m.seen().sum(axis=0)).ravel(), kind="stable")
        name_of = {v: k for k, v in item_id.items()}

        def popular(u: str) -> np.ndarray:
            top = [int(i) for i in order[: K + len(seen[u])] if name_of[int(i)] not in seen[u]]
            return np.array(top[:K], dtype=np.int64)

        add("cold: popularity", np.stack([popular(u) for u in cold_users]), cold_t)
        add("cold: served ColdStart (default weight)", lists["cold_start"], cold_t)
        add("few ratings, unknown user: served Recommend", lists["history"], cold_t)
    return {
        "set": name,
        "users": len(users),
        "items": n_items,
        "rows": rows,
        "served_minus_tuned_als": gain.row(),
        "served_over_popularity": round(reports[rows[3]["strategy"]].ndcg_at_10 / pop, 3)
        if pop
        else None,
        "trainer": figures,
        "decisions": {
            k: metrics.get(k, {}).get("reason")
            for k in ("item_item", "reranker", "cold_start", "new_user_history")
        },
        "als_chosen": metrics.get("als", {}).get("chosen"),
        "repeat": again,
    }


def _markdown(r: dict[str, Any]) -> str:
    lines = [
        f"### {r['set']}: {r['users']} warm users, {r['items']} items; trainer "
        f"{r['trainer']['seconds']} s, peak {r['trainer']['peak_rss_mb']} MiB",
        "",
        "| strategy | users | NDCG@10 [95% CI] | Recall@10 [95% CI] | Coverage@10 [95% CI] "
        "| train s |",
        "|---|---:|---|---|---|---:|",
    ]
    for row in r["rows"]:
        n, rc, cv = row["ndcg@10_ci"], row["recall@10_ci"], row["coverage@10_ci"]
        lines.append(
            f"| {row['strategy']} | {row['users']} | {row['ndcg@10']} [{n[0]}, {n[1]}] | "
            f"{row['recall@10']} [{rc[0]}, {rc[1]}] | {row['coverage@10']} [{cv[0]}, {cv[1]}] | "
            f"{row['train_seconds'] if row['train_seconds'] is not None else ''} |"
        )
    g = r["served_minus_tuned_als"]
    lines += [
        "",
        f"served - tuned ALS, NDCG@10 (paired): {g['mean']:+.4f} "
        f"[{g['low']:+.4f}, {g['high']:+.4f}] on {g['users']} users; "
        f"served / popularity: {r['served_over_popularity']}",
        "",
        "decisions: " + "; ".join(f"{k}: {v}" for k, v in r["decisions"].items() if v),
        f"ALS chosen by the study: {r['als_chosen']}",
    ]
    if r["repeat"] is not None:
        lines.append(f"second training, same seed: {r['repeat']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sets", nargs="+", choices=SETS, default=["lastfm-2k", "small"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", action="store_true", help="train twice; compare")
    args = p.parse_args()
    rows = []
    for name in args.sets:
        rows.append(measure(name, args.seed, args.repeat))
        print(_markdown(rows[-1]), flush=True)
    write_results("model_quality", rows, "\n".join(_markdown(r) for r in rows))


if __name__ == "__main__":
    main()
