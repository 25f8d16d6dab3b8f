"""Model quality on data the trainer was not designed for, and what training costs.

    .venv/bin/python -m bench.model_quality [--sets lastfm-2k ciaodvd small bookcrossing]
        [--seeds 0 1] [--repeat]

For each set (bench/quality_data.py): an outer holdout is set aside, the trainer
runs with its defaults (`trainer run`, its own study and decisions) on the rest,
and the published artifact is queried in process through the server's engine,
exactly as `Recommend` and `ColdStart` answer.

- Warm users (each one's latest 20%, or a seeded 20% without timestamps): the
  served lists beside popularity counts, the Bayesian prior, ALS with the old
  default grid, an independently tuned ALS and EASE alone tuned on the same split
  (bench/quality_baselines.py); paired intervals of served - EASE and served - ALS.
- New users (sets held out whole, ``cold``): the journeys of issue 22, defined as
  the trainer's (trainer/evaluation/journeys.py): ColdStart with the favourite
  subjects of their first ratings (where the data has subjects), and n = 1, 3, 5,
  10 earliest ratings told to Recommend; each against popularity counts and the
  Bayesian prior of the training rows, paired.

Every figure has its 95% bootstrap interval over users and its number of users.
With several ``--seeds`` each seed is a new outer split and a new training, and the
report says whether each decision held on every seed. ``--repeat`` trains a second
time on the same seed and says whether the lists and decisions came out the same.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from bench import quality_baselines as qb
from bench.common import demo_data, trainer, write_results
from bench.quality_data import (
    CIAODVD,
    LASTFM,
    Interactions,
    Outer,
    outer_split,
    read_clean,
    write_bookcrossing,
    write_ciaodvd,
    write_generic,
    write_lastfm,
)
from trainer.evaluation import journeys as jy
from trainer.evaluation.bootstrap import paired
from trainer.evaluation.metrics import RankingReport, evaluate_lists
from trainer.sources.generic import EXPLICIT, IMPLICIT, ImportOptions

SETS = ("lastfm-2k", "ciaodvd", "small", "bookcrossing")
K = 50
GRID_POINTS = {"lastfm-2k": 40, "ciaodvd": 40, "small": 24, "bookcrossing": 12}
# New users held out whole: ciaodvd's users are mostly light, so a larger share.
COLD_SHARE = {"ciaodvd": 0.2, "small": 0.1, "bookcrossing": 0.1}


@dataclass
class Journey:
    """One journey's users, what each told the service (rows, oldest first) and
    their targets (item names)."""

    users: list[str]
    known: list[list[int]]
    targets: list[set[str]]


def _load(name: str, seed: int) -> tuple[Interactions, Outer, Path, list[str]]:
    """The set's interactions, its outer holdout, its source dir and the trainer's flags."""
    if name == "lastfm-2k":
        src = Path(tempfile.mkdtemp(prefix="bookrec-lastfm-"))
        shutil.copy(LASTFM / "user_artists.dat", src / "interactions.csv")
        data = read_clean(src, ImportOptions(interaction_kind=IMPLICIT))
        shutil.rmtree(src)
        return data, outer_split(data, seed, cold=False), LASTFM, ["--interactions", "implicit"]
    if name == "ciaodvd":
        src = Path(tempfile.mkdtemp(prefix="bookrec-ciaodvd-"))
        write_ciaodvd(CIAODVD, src)
        data = read_clean(src, ImportOptions(interaction_kind=EXPLICIT, rating_scale="1..5"))
        outer = outer_split(data, seed, cold=True, cold_share=COLD_SHARE[name], cold_min=2)
        return data, outer, src, ["--interactions", "explicit", "--rating-scale", "1..10"]
    src = demo_data(name)
    data = read_clean(src)
    return (
        data,
        outer_split(data, seed, cold=True, cold_share=COLD_SHARE[name], cold_min=2),
        src,
        [],
    )


def _write_input(name: str, src: Path, out: Path, data: Interactions, outer: Outer) -> None:
    if name == "lastfm-2k":
        write_lastfm(out, data, outer.train)
    elif name == "ciaodvd":
        write_generic(src, out, data, outer.train)
    else:
        write_bookcrossing(src, out, data, outer.train)


def journeys(data: Interactions, outer: Outer, subjects: bool) -> dict[str, Journey]:
    """The new users' journeys, as trainer/evaluation/journeys.py defines them: the
    subjects of the first SUBJECT_SEED ratings (not told; left out of the list), or
    the first n ratings told to Recommend; every later rating is a target."""
    out: dict[str, Journey] = {}
    told = ([(jy.SUBJECTS, jy.SUBJECT_SEED)] if subjects else []) + [
        (jy.journey_name(n), n) for n in jy.NS
    ]
    for name, n in told:
        j = Journey([], [], [])
        for user, rows in outer.cold_rows.items():
            if len(rows) > n:
                j.users.append(user)
                j.known.append(rows[:n])
                j.targets.append({data.items[r] for r in rows[n:]})
        if j.users:
            out[name] = j
    return out


def _served(
    work: Path,
    flags: list[str],
    outer: Outer,
    data: Interactions,
    paths: dict[str, Journey],
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

    def rating(r: int) -> int:
        return int(data.values[r]) if data.explicit[r] else 0

    lists: dict[str, np.ndarray] = {}
    none = Filters()
    with threadpool_limits(1):  # as the server's workers run
        lists["warm"] = np.stack(
            [
                ids([s.item for s in recommend(bundle, u, K, none, False).items])
                for u in outer.warm_targets
            ]
        )
        for name, j in paths.items():
            got = []
            for user, rows in zip(j.users, j.known, strict=True):
                books = [data.items[r] for r in rows]
                if name == jy.SUBJECTS:
                    counts = Counter(
                        int(s)
                        for b in books
                        if b in bundle.book_row
                        for s in bundle.subjects_of(bundle.book_row[b])
                    )
                    favs = [bundle.subject_ids[s] for s, _ in counts.most_common(jy.N_FAVOURITES)]
                    unseen = Filters(exclude_book_ids=frozenset(books))
                    answer = cold_start(bundle, favs, None, K, unseen, False)
                else:
                    told = {data.items[r]: rating(r) for r in rows}
                    answer = recommend(
                        bundle, f"bench-{name}-{user}", K, none, False, new_ratings=told
                    )
                got.append(ids([s.item for s in answer.items]))
            lists[name] = np.stack(got)
    return figures, lists, dict(found[1].metrics)


def _excluding(scores: np.ndarray, known: list[set[int]]) -> np.ndarray:
    """Items by ``scores`` (ties by id), each user's known items left out."""
    order = np.argsort(-scores, kind="stable")
    out = np.full((len(known), K), -1, dtype=np.int64)
    for row, seen in enumerate(known):
        top = [int(i) for i in order[: K + len(seen)] if int(i) not in seen][:K]
        out[row, : len(top)] = top
    return out


def _gain(a: RankingReport, b: RankingReport, seed: int) -> dict[str, Any]:
    return paired(a.per_user_ndcg, b.per_user_ndcg, seed).row()


def _ratio(a: RankingReport, b: RankingReport) -> float | None:
    return round(a.ndcg_at_10 / b.ndcg_at_10, 3) if b.ndcg_at_10 else None


def _warm(
    name: str,
    seed: int,
    data: Interactions,
    outer: Outer,
    m: qb.Matrix,
    item_id: dict[str, int],
    served: np.ndarray,
    progress: Any,
    points: int,
) -> tuple[list[dict[str, Any]], dict[str, RankingReport]]:
    users = list(outer.warm_targets)
    targets = [{item_id[b] for b in outer.warm_targets[u]} for u in users]
    rows: list[dict[str, Any]] = []
    reports: dict[str, RankingReport] = {}

    def add(label: str, got: np.ndarray, extra: dict[str, Any] | None = None) -> None:
        reports[label] = evaluate_lists(got, targets, len(item_id), seed)
        rows.append({"strategy": f"warm: {label}", **reports[label].row(), **(extra or {})})

    add("popularity counts", qb.popularity_lists(m, users))
    add("Bayesian prior", qb.ranked_by(m, qb.prior_scores(m), users))
    for label, grid in (
        ("ALS, old default grid", qb.OLD_GRID),
        ("ALS, tuned", qb.wide_grid(points, seed)),
    ):
        uf, itf, chosen = qb.tuned_als(m, grid, seed, progress)
        add(label, qb.als_lists(m, uf, itf, users), {"chosen": chosen})
    ease, chosen = qb.tuned_ease(m, seed, progress)
    add("EASE alone, tuned", qb.ease_lists(m, ease, users), {"chosen": chosen})
    del ease
    add("served", served)
    return rows, reports


def _new_users(
    seed: int,
    data: Interactions,
    m: qb.Matrix,
    item_id: dict[str, int],
    paths: dict[str, Journey],
    lists: dict[str, np.ndarray],
) -> dict[str, dict[str, Any]]:
    counts = np.asarray(m.seen().sum(axis=0)).ravel().astype(np.float64)
    prior = np.zeros(len(counts))
    prior[: m.shape[1]] = qb.prior_scores(m)
    out: dict[str, dict[str, Any]] = {}
    for name, j in paths.items():
        known = [{item_id[data.items[r]] for r in rows} for rows in j.known]
        targets = [{item_id[b] for b in t} for t in j.targets]
        n_items = len(item_id)
        served = evaluate_lists(lists[name], targets, n_items, seed)
        by_counts = evaluate_lists(_excluding(counts, known), targets, n_items, seed)
        by_prior = evaluate_lists(_excluding(prior, known), targets, n_items, seed)
        out[name] = {
            "users": len(j.users),
            "served": served.row(),
            "popularity counts": by_counts.row(),
            "Bayesian prior": by_prior.row(),
            "served - counts": _gain(served, by_counts, seed),
            "served - prior": _gain(served, by_prior, seed),
            "served / counts": _ratio(served, by_counts),
            "served / prior": _ratio(served, by_prior),
        }
    return out


def _decisions(metrics: dict[str, Any]) -> dict[str, Any]:
    ii = metrics.get("item_item", {})
    new = metrics.get("new_users", {})
    return {
        "served": metrics.get("served"),
        "item_item": ii.get("reason"),
        "item_item_strategy": ii.get("strategy"),
        "item_item_weight": ii.get("weight"),
        "reranker": metrics.get("reranker", {}).get("reason"),
        "popularity_form": metrics.get("popularity_form", {}).get("chosen"),
        "cold_start": metrics.get("cold_start", {}).get("reason"),
        "new_users": new.get("settings", new.get("decisions")),
    }


def measure(
    name: str, seed: int, repeat: bool, progress: Any = print, grid_points: int | None = None
) -> dict[str, Any]:
    data, outer, src, flags = _load(name, seed)
    item_id = {w: i for i, w in enumerate(sorted(set(data.items)))}
    paths = journeys(data, outer, subjects=name != "lastfm-2k")
    work = Path(tempfile.mkdtemp(prefix=f"bookrec-quality-{name}-"))
    try:
        _write_input(name, src, work / "input", data, outer)
        figures, lists, metrics = _served(work, flags, outer, data, paths, item_id)
        again = None
        if repeat:
            shutil.rmtree(work / "artifacts")
            (work / "store.sqlite").unlink()
            _, lists2, metrics2 = _served(work, flags, outer, data, paths, item_id)
            again = {
                "same_lists": all(np.array_equal(lists[k], lists2[k]) for k in lists),
                "same_decisions": _decisions(metrics) == _decisions(metrics2),
                "served": [metrics["served"], metrics2["served"]],
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if name == "ciaodvd":
            shutil.rmtree(src, ignore_errors=True)
    m = qb.matrix(data, outer.train, item_id)
    points = grid_points or GRID_POINTS[name]
    rows, reports = _warm(name, seed, data, outer, m, item_id, lists["warm"], progress, points)
    rows[-1]["train_seconds"] = figures["seconds"]
    rows[-1]["strategy"] = f"warm: served ({metrics['served']})"
    s = reports["served"]
    return {
        "set": name,
        "seed": seed,
        "timed": outer.timed,
        "users": len(outer.warm_targets),
        "items": len(item_id),
        "rows": rows,
        "served_minus_ease": _gain(s, reports["EASE alone, tuned"], seed),
        "served_over_ease": _ratio(s, reports["EASE alone, tuned"]),
        "served_minus_tuned_als": _gain(s, reports["ALS, tuned"], seed),
        "served_over_popularity": _ratio(s, reports["popularity counts"]),
        "new_users": _new_users(seed, data, m, item_id, paths, lists),
        "trainer": figures,
        "trainer_new_users": metrics.get("new_users", {}).get("journeys"),
        "decisions": _decisions(metrics),
        "als_chosen": metrics.get("als", {}).get("chosen"),
        "repeat": again,
    }


def _ci(row: dict[str, Any], key: str = "ndcg@10") -> str:
    low, high = row[f"{key}_ci"]
    return f"{row[key]} [{low}, {high}]"


def _g(g: dict[str, Any]) -> str:
    return f"{g['mean']:+.4f} [{g['low']:+.4f}, {g['high']:+.4f}]"


def _markdown(r: dict[str, Any]) -> str:
    lines = [
        f"### {r['set']}, seed {r['seed']}: {r['users']} warm users, {r['items']} items, "
        f"{'temporal' if r['timed'] else 'random (no timestamps)'} holdout; trainer "
        f"{r['trainer']['seconds']} s, peak {r['trainer']['peak_rss_mb']} MiB",
        "",
        "| strategy | users | NDCG@10 [95% CI] | Recall@10 [95% CI] | Coverage@10 [95% CI] |",
        "|---|---:|---|---|---|",
    ]
    for row in r["rows"]:
        lines.append(
            f"| {row['strategy']} | {row['users']} | {_ci(row)} | {_ci(row, 'recall@10')} "
            f"| {_ci(row, 'coverage@10')} |"
        )
    e, a = r["served_minus_ease"], r["served_minus_tuned_als"]
    lines += [
        "",
        f"served - EASE alone (paired): {_g(e)} on {e['users']} users, "
        f"served / EASE {r['served_over_ease']}; served - tuned ALS: {_g(a)}; "
        f"served / popularity {r['served_over_popularity']}",
    ]
    if r["new_users"]:
        lines += [
            "",
            "| journey | users | served NDCG@10 | counts | prior | served - counts (paired) "
            "| served - prior (paired) | served / counts |",
            "|---|---:|---|---|---|---|---|---:|",
        ]
        for name, j in r["new_users"].items():
            lines.append(
                f"| {name} | {j['users']} | {_ci(j['served'])} | {_ci(j['popularity counts'])} "
                f"| {_ci(j['Bayesian prior'])} | {_g(j['served - counts'])} "
                f"| {_g(j['served - prior'])} | {j['served / counts']} |"
            )
    lines += ["", "decisions: " + "; ".join(f"{k}: {v}" for k, v in r["decisions"].items() if v)]
    lines.append(f"ALS chosen by the study: {r['als_chosen']}")
    if r["repeat"] is not None:
        lines.append(f"second training, same seed: {r['repeat']}")
    return "\n".join(lines) + "\n"


def _above(g: dict[str, Any]) -> str:
    return "above 0" if g["low"] > 0 else "below 0" if g["high"] < 0 else "spans 0"


def _verdict(value: Any) -> str:
    """A decision's outcome without its figures: a component's reason ends in ': served'
    or ': not served' (whatever its rule); a cold-start one names its weight before the
    figures ("popularity weight 0.95 on counts; served vs popularity ...")."""
    if not isinstance(value, str):
        return str(value)
    if value.startswith("NDCG@10 gain") and value.endswith(": served"):
        return "served"
    if value.startswith("NDCG@10 gain") and value.endswith(": not served"):
        return "not served"
    return value.split("; ")[0]


def held(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per comparison, where its paired interval lies on each seed, and whether that (and
    each trainer decision) is the same on every seed."""
    out: dict[str, Any] = {}
    checks: dict[str, list[str]] = {
        "served - EASE": [_above(r["served_minus_ease"]) for r in results],
        "served - tuned ALS": [_above(r["served_minus_tuned_als"]) for r in results],
    }
    for name in results[0]["new_users"]:
        for base in ("counts", "prior"):
            checks[f"{name}: served - {base}"] = [
                _above(r["new_users"][name][f"served - {base}"])
                for r in results
                if name in r["new_users"]
            ]
    for k in results[0]["decisions"]:
        checks[f"trainer {k}"] = [_verdict(r["decisions"][k]) for r in results]
    for k, v in checks.items():
        out[k] = {"per_seed": v, "held": len(set(v)) == 1}
    return out


def _held_markdown(name: str, h: dict[str, Any]) -> str:
    lines = [f"### {name}: did each decision hold on every seed?", ""]
    for k, v in h.items():
        lines.append(
            f"- {k}: {'held' if v['held'] else 'DID NOT HOLD'} ({', '.join(v['per_seed'])})"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sets", nargs="+", choices=SETS, default=["lastfm-2k", "ciaodvd"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--repeat", action="store_true", help="train twice per seed; compare")
    p.add_argument("--grid-points", type=int, help="the tuned ALS's grid (default per set)")
    p.add_argument("--results-name", default="model_quality", help="bench/results/NAME.json")
    p.add_argument(
        "--combine", nargs="+", type=Path, help="results JSON files of one set, several seeds"
    )
    args = p.parse_args()
    if args.combine:
        runs = [r for f in args.combine for r in json.loads(f.read_text()) if "rows" in r]
        for name in dict.fromkeys(r["set"] for r in runs):
            print(_held_markdown(name, held([r for r in runs if r["set"] == name])))
        return
    rows, text = [], []
    for name in args.sets:
        per_seed = []
        for seed in args.seeds:
            per_seed.append(measure(name, seed, args.repeat, grid_points=args.grid_points))
            text.append(_markdown(per_seed[-1]))
            print(text[-1], flush=True)
        rows.extend(per_seed)
        if len(per_seed) > 1:
            h = held(per_seed)
            rows.append({"set": name, "held": h})
            text.append(_held_markdown(name, h))
            print(text[-1], flush=True)
    write_results(args.results_name, rows, "\n".join(text))


if __name__ == "__main__":
    main()
