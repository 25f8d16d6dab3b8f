"""Ranking metrics over top-K lists: what users see, not how well ratings are fitted.

Binary relevance: an item is relevant when it is one of the user's held-out
interactions. NDCG uses log2 discounts and the ideal ordering of min(|rel|, K)
hits; MAP@K divides by min(|rel|, K); coverage@K is the share of the catalogue
that appears in at least one user's top K. Every figure carries its bootstrap
interval over users (trainer/evaluation/bootstrap.py), and the per-user values
stay on the report for paired comparisons.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bookrec.log import kv
from trainer.evaluation.bootstrap import Interval, coverage_interval, interval

log = logging.getLogger("trainer.evaluation.metrics")
CURVE_MAX_K = 50


@dataclass(frozen=True)
class RankingReport:
    users: int
    recall_at_10: float
    recall_at_50: float
    ndcg_at_10: float
    map_at_10: float
    coverage_at_10: float
    ndcg_curve: tuple[float, ...]  # NDCG@K for K = 1..CURVE_MAX_K
    per_user_ndcg: npt.NDArray[np.float64]  # NDCG@10 of each user, in input order
    ndcg_ci: Interval
    recall_ci: Interval
    coverage_ci: Interval

    def row(self) -> dict[str, float | list[float]]:
        return {
            "users": self.users,
            "recall@10": round(self.recall_at_10, 4),
            "recall@10_ci": [round(self.recall_ci.low, 4), round(self.recall_ci.high, 4)],
            "recall@50": round(self.recall_at_50, 4),
            "ndcg@10": round(self.ndcg_at_10, 4),
            "ndcg@10_ci": [round(self.ndcg_ci.low, 4), round(self.ndcg_ci.high, 4)],
            "map@10": round(self.map_at_10, 4),
            "coverage@10": round(self.coverage_at_10, 4),
            "coverage@10_ci": [round(self.coverage_ci.low, 4), round(self.coverage_ci.high, 4)],
        }


_DISCOUNT = 1.0 / np.log2(np.arange(2, CURVE_MAX_K + 2))


def evaluate_lists(
    ranked: npt.NDArray[np.int64], relevant: Sequence[set[int]], n_items: int, seed: int = 0
) -> RankingReport:
    """``ranked``: (users, >= 50) item indices best first, -1 padded; ``relevant``: per user."""
    if len(relevant) == 0:
        raise ValueError("no users to evaluate")
    k = CURVE_MAX_K
    top = ranked[:, :k]
    hits = np.array(
        [[i in rel for i in row] for row, rel in zip(top.tolist(), relevant, strict=True)]
    )
    n_rel = np.array([len(r) for r in relevant], dtype=np.float64)
    dcg = np.cumsum(hits * _DISCOUNT[: hits.shape[1]], axis=1)
    ideal_cum = np.cumsum(_DISCOUNT)
    curve = []
    for kk in range(1, k + 1):
        ideal = ideal_cum[np.minimum(n_rel, kk).astype(int) - 1]
        curve.append(float(np.mean(dcg[:, kk - 1] / ideal)))
    precision_at = np.cumsum(hits[:, :10], axis=1) / np.arange(1, 11)
    ap10 = (precision_at * hits[:, :10]).sum(axis=1) / np.minimum(n_rel, 10)
    shown = top[:, :10]
    per_user = dcg[:, 9] / ideal_cum[np.minimum(n_rel, 10).astype(int) - 1]
    recall10 = hits[:, :10].sum(axis=1) / n_rel
    return RankingReport(
        users=len(relevant),
        recall_at_10=float(np.mean(recall10)),
        recall_at_50=float(np.mean(hits[:, :50].sum(axis=1) / n_rel)),
        ndcg_at_10=curve[9],
        map_at_10=float(np.mean(ap10)),
        coverage_at_10=len(np.unique(shown[shown >= 0])) / n_items,
        ndcg_curve=tuple(curve),
        per_user_ndcg=per_user,
        ndcg_ci=interval(per_user, seed),
        recall_ci=interval(recall10, seed),
        coverage_ci=coverage_interval(shown, n_items, seed),
    )


def ndcg_at_10(ranked: npt.NDArray[np.int64], relevant: Sequence[set[int]]) -> float:
    """Mean NDCG@10 alone: a study trial's score, without the intervals' cost."""
    if len(relevant) == 0:
        raise ValueError("no users to evaluate")
    top = ranked[:, :10].tolist()
    hits = np.array([[i in rel for i in row] for row, rel in zip(top, relevant, strict=True)])
    n_rel = np.minimum([len(r) for r in relevant], 10)
    ideal = np.cumsum(_DISCOUNT[:10])[n_rel - 1]
    return float(np.mean((hits * _DISCOUNT[: hits.shape[1]]).sum(axis=1) / ideal))


def report_into(
    out: dict[str, RankingReport],
    name: str,
    ranked: npt.NDArray[np.int64],
    relevant: Sequence[set[int]],
    n_items: int,
) -> None:
    """Score one strategy's lists into ``out`` and log its row."""
    out[name] = evaluate_lists(ranked, relevant, n_items)
    log.info("evaluated", extra=kv(strategy=name, **out[name].row()))


def ndcg_per_user(
    ranked: npt.NDArray[np.int64], relevant: Sequence[set[int]]
) -> npt.NDArray[np.float64]:
    """NDCG@10 of each user (no intervals): the grids of the new-user journeys."""
    if len(relevant) == 0:
        return np.empty(0, dtype=np.float64)
    top = ranked[:, :10].tolist()
    hits = np.array([[i in rel for i in row] for row, rel in zip(top, relevant, strict=True)])
    n_rel = np.minimum([len(r) for r in relevant], 10)
    ideal = np.cumsum(_DISCOUNT[:10])[n_rel - 1]
    out: npt.NDArray[np.float64] = (hits * _DISCOUNT[: hits.shape[1]]).sum(axis=1) / ideal
    return out
