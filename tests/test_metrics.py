"""Ranking metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainer.evaluation.metrics import evaluate_lists


def _lists(*rows: list[int]) -> np.ndarray:
    out = np.full((len(rows), 50), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def test_perfect_and_empty_rankings() -> None:
    perfect = evaluate_lists(_lists([1, 2], [3]), [{1, 2}, {3}], n_items=10)
    assert perfect.ndcg_at_10 == pytest.approx(1.0)
    assert perfect.recall_at_10 == perfect.map_at_10 == 1.0
    assert perfect.coverage_at_10 == pytest.approx(0.3)
    miss = evaluate_lists(_lists([5, 6]), [{1}], n_items=10)
    assert miss.ndcg_at_10 == miss.recall_at_50 == miss.map_at_10 == 0.0


def test_hand_computed_values() -> None:
    # Relevant {7, 9}; ranked 9 at rank 2 and 7 at rank 4.
    report = evaluate_lists(_lists([1, 9, 2, 7]), [{7, 9}], n_items=100)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3)
    assert report.ndcg_at_10 == pytest.approx(dcg / idcg)
    assert report.map_at_10 == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert report.recall_at_10 == 1.0
    assert report.ndcg_curve[0] == 0.0  # nothing relevant at rank 1
    assert len(report.ndcg_curve) == 50
