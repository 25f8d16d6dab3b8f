"""The frozen split: deterministic, per-user, time-aware when it can be."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.evaluation.split import COLD, TEST, TRAIN, VAL, SplitConfig, assign


def _data(n_users: int = 50, per_user: int = 20, timed: bool = False) -> tuple:  # type: ignore[type-arg]
    users = [f"u{u}" for u in range(n_users) for _ in range(per_user)]
    works = [f"w{(u * 7 + i) % 97}" for u in range(n_users) for i in range(per_user)]
    ratings = np.full(len(users), 5, dtype=np.int8)
    ts = (
        np.array([1000 * i for _ in range(n_users) for i in range(per_user)], dtype=np.int64)
        if timed
        else np.full(len(users), -1, dtype=np.int64)
    )
    return users, works, ratings, ts


def test_same_data_and_config_give_the_same_split_in_any_row_order() -> None:
    users, works, ratings, ts = _data()
    parts, sid = assign(users, works, ratings, ts, SplitConfig(seed=1))
    perm = np.random.default_rng(0).permutation(len(users))
    parts2, sid2 = assign(
        [users[i] for i in perm],
        [works[i] for i in perm],
        ratings[perm],
        ts[perm],
        SplitConfig(seed=1),
    )
    assert sid == sid2
    assert (parts2 == parts[perm]).all()
    assert assign(users, works, ratings, ts, SplitConfig(seed=2))[1] != sid


def test_every_warm_user_keeps_most_history_in_train_and_holds_some_out() -> None:
    users, works, ratings, ts = _data()
    parts, _ = assign(users, works, ratings, ts, SplitConfig(seed=1, cold_user_fraction=0.2))
    per_user: dict[str, list[int]] = {}
    for u, p in zip(users, parts.tolist(), strict=True):
        per_user.setdefault(u, []).append(p)
    cold = [u for u, ps in per_user.items() if set(ps) == {COLD}]
    assert 3 <= len(cold) <= 20  # about 20% of 50
    for u, ps in per_user.items():
        if u in cold:
            continue
        assert COLD not in ps
        assert ps.count(TEST) == 2 and ps.count(VAL) == 2 and ps.count(TRAIN) == 16


def test_time_aware_split_holds_out_the_latest_interactions() -> None:
    users, works, ratings, ts = _data(timed=True)
    parts, _ = assign(users, works, ratings, ts, SplitConfig(seed=1, cold_user_fraction=0.0))
    for u in set(users):
        rows = [i for i, x in enumerate(users) if x == u]
        train_ts = ts[[i for i in rows if parts[i] == TRAIN]]
        held_ts = ts[[i for i in rows if parts[i] in (VAL, TEST)]]
        assert train_ts.max() < held_ts.min()
        assert (
            ts[[i for i in rows if parts[i] == VAL]].max()
            < ts[[i for i in rows if parts[i] == TEST]].min()
        )


def test_users_with_little_history_stay_in_train() -> None:
    users, works, ratings, ts = _data(per_user=3)
    parts, _ = assign(users, works, ratings, ts, SplitConfig(cold_user_fraction=0.0, min_holdout=5))
    assert (parts == TRAIN).all()


def test_bad_fractions_are_refused() -> None:
    with pytest.raises(ValueError, match="test_fraction"):
        SplitConfig(test_fraction=0.7)
