"""What is served is decided by paired bootstraps over users (trainer/evaluation/)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from trainer.evaluation.bootstrap import interval, paired
from trainer.evaluation.decisions import BETTER_ON_AVERAGE, decide
from trainer.evaluation.metrics import RankingReport, evaluate_lists

N_ITEMS = 200


def _world(seed: int, users: int = 400) -> tuple[np.ndarray, list[set[int]]]:
    """Each user's 50-book list and 3 held-out books at random places in it."""
    rng = np.random.default_rng(seed)
    lists = np.stack([rng.permutation(N_ITEMS)[:50] for _ in range(users)]).astype(np.int64)
    targets = [set(rng.choice(row, 3, replace=False).tolist()) for row in lists]
    return lists, targets


def _shuffled(lists: np.ndarray, seed: int) -> np.ndarray:
    """The same books in a new random order: no better, no worse, on average."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(row) for row in lists])


def test_a_component_no_better_is_switched_off() -> None:
    lists, targets = _world(0)
    base = evaluate_lists(lists, targets, N_ITEMS)
    same = evaluate_lists(_shuffled(lists, 1), targets, N_ITEMS)
    decision = decide("reranker", same, base, "als", seed=0)
    assert not decision.served
    assert decision.gain.low <= 0.0 <= decision.gain.high
    assert "not served" in decision.reason()


def test_a_component_clearly_better_is_kept() -> None:
    lists, targets = _world(0)
    base = evaluate_lists(lists, targets, N_ITEMS)
    better = lists.copy()
    for row, t in zip(better, targets, strict=True):  # move a held-out book to the top
        hit = int(np.flatnonzero(np.isin(row, list(t)))[0])
        row[[0, hit]] = row[[hit, 0]]
    decision = decide("reranker", evaluate_lists(better, targets, N_ITEMS), base, "als", seed=0)
    assert decision.served and decision.gain.low > 0
    assert decision.row()["ndcg@10_gain"]["users"] == 400


def test_a_small_steady_gain_is_told_from_noise_by_pairing() -> None:
    """The same +0.01 a user on top of a large spread: the unpaired intervals overlap,
    the paired one excludes 0."""
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 1, 500)
    b = a + 0.01
    assert interval(b).low < interval(a).high  # unpaired: no verdict
    assert paired(b, a).low > 0  # paired: a clear one


def test_same_seed_same_interval() -> None:
    values = np.random.default_rng(5).normal(size=300)
    assert interval(values, seed=7) == interval(values, seed=7)


def test_better_on_average_serves_a_small_unproven_gain_and_never_a_loss() -> None:
    """The item-item blend's rule: a mean gain above 0 serves it even when the interval
    reaches below 0 (the reranker's rule would not); a mean loss never does."""
    rng = np.random.default_rng(11)
    without = rng.uniform(0, 1, 700)
    noise = rng.normal(0, 0.1, 700)
    small = _report(without + 0.004 + noise)
    loss = _report(without - 0.004 + noise)
    base = _report(without)
    proven = decide("reranker", small, base, "als", seed=0)
    average = decide("item_item", small, base, "als", seed=0, rule=BETTER_ON_AVERAGE)
    assert proven.gain == average.gain and average.gain.low < 0 < average.gain.mean
    assert not proven.served and average.served
    assert "mean above 0: served" in average.reason()
    assert average.row()["rule"] == BETTER_ON_AVERAGE
    worse = decide("item_item", loss, base, "als", seed=0, rule=BETTER_ON_AVERAGE)
    assert worse.gain.mean < 0 and not worse.served
    assert "mean not above 0: not served" in worse.reason()


def _report(per_user: npt.NDArray[np.float64]) -> RankingReport:
    """A report holding only what decide reads: the per-user NDCG@10."""
    ci = interval(per_user)
    return RankingReport(
        users=len(per_user), recall_at_10=0.0, recall_at_50=0.0,
        ndcg_at_10=float(per_user.mean()), map_at_10=0.0, coverage_at_10=0.0,
        ndcg_curve=(), per_user_ndcg=per_user, ndcg_ci=ci, recall_ci=ci, coverage_ci=ci,
    )  # fmt: skip
