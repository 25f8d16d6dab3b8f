"""The ALS grid: every combination is fitted on train and scored on the tune half.

A grid is written ``"factors=64,128;alpha=5,20;scheme=rating,log"``: one
``name=v1,v2`` group per ALSParams field, the cartesian product is searched.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, fields, replace
from typing import Any

import scipy.sparse as sp

from bookrec.log import kv
from trainer.als import ALSModel, ALSParams, confidence_matrix, train_als
from trainer.evaluate import F32, I32, WarmSet, top_lists
from trainer.metrics import evaluate_lists
from trainer.snapshot import Snapshot
from trainer.split import TRAIN

log = logging.getLogger("trainer.tuning")


def parse_grid(text: str, base: ALSParams) -> list[ALSParams]:
    kinds = {f.name: type(getattr(base, f.name)) for f in fields(ALSParams)}
    axes: list[list[tuple[str, Any]]] = []
    for group in filter(None, (g.strip() for g in text.split(";"))):
        name, _, values = group.partition("=")
        name = name.strip()
        if name not in kinds or name in ("seed", "threads"):
            raise ValueError(f"ALS grid: unknown field {name!r} in {group!r}")
        try:
            axes.append([(name, kinds[name](v.strip())) for v in values.split(",") if v.strip()])
        except ValueError as e:
            raise ValueError(f"ALS grid: bad value in {group!r}: {e}") from e
    return [replace(base, **dict(combo)) for combo in itertools.product(*axes)] or [base]


def conf_for(snap: Snapshot, p: ALSParams) -> sp.csr_matrix:
    train = snap.mask(TRAIN)
    return confidence_matrix(
        snap.users[train],
        snap.items[train],
        snap.ratings[train],
        snap.n_users,
        snap.n_items,
        p.alpha,
        p.scheme,
    )


def als_scorer(model: ALSModel) -> Callable[[I32], F32]:
    def score(users: I32) -> F32:
        out: F32 = model.user_factors[users] @ model.item_factors.T
        return out

    return score


def tune_als(
    snap: Snapshot, grid: list[ALSParams], tune: WarmSet, exclude: sp.csr_matrix
) -> tuple[ALSParams, ALSModel, list[dict[str, Any]]]:
    """The grid point with the best NDCG@10 on the tune half (ties: first in the grid)."""
    results: list[dict[str, Any]] = []
    best: tuple[float, ALSParams, ALSModel] | None = None
    for n, params in enumerate(grid, start=1):
        start = time.perf_counter()
        model = train_als(conf_for(snap, params), params)
        lists = top_lists(als_scorer(model), tune.users, exclude)
        ndcg = evaluate_lists(lists, tune.targets, snap.n_items).ndcg_at_10
        row = {
            **asdict(params),
            "ndcg@10": round(ndcg, 4),
            "seconds": round(time.perf_counter() - start, 2),
        }
        results.append(row)
        log.info("als grid point", extra=kv(point=f"{n}/{len(grid)}", **row))
        if best is None or ndcg > best[0]:
            best = (ndcg, params, model)
    assert best is not None
    return best[1], best[2], results
