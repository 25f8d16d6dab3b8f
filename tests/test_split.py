"""The frozen split: deterministic, per-user, time-aware when it can be."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import numpy as np
import numpy.typing as npt
import pytest

from trainer.evaluation.split import COLD, TEST, TRAIN, VAL, SplitConfig, _key, assign


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


def _reference_assign(
    user_ids: list[str],
    work_ids: list[str],
    ratings: npt.NDArray[np.int8],
    timestamps: npt.NDArray[np.int64],
    cfg: SplitConfig,
    weights: npt.NDArray[np.float32] | None = None,
) -> tuple[npt.NDArray[np.int8], str]:
    """The split as a Python loop over interactions (before 2026-12-07), kept verbatim
    to check that the array version gives the same parts and the same id."""
    n = len(user_ids)
    parts = np.zeros(n, dtype=np.int8)
    timed = n > 0 and bool((timestamps >= 0).all())
    by_user: dict[str, list[int]] = {}
    for i, u in enumerate(user_ids):
        by_user.setdefault(u, []).append(i)
    cold_cut = int(cfg.cold_user_fraction * 2**64)
    for user, rows in by_user.items():
        if _key(cfg.seed, "cold", user) < cold_cut:
            parts[rows] = COLD
            continue
        if len(rows) < cfg.min_holdout:
            continue
        if timed:
            rows.sort(key=lambda i: (int(timestamps[i]), work_ids[i]))
        else:
            rows.sort(key=lambda i: (_key(cfg.seed, user, work_ids[i]), work_ids[i]))
        n_test = max(1, round(cfg.test_fraction * len(rows))) if cfg.test_fraction else 0
        n_val = max(1, round(cfg.val_fraction * len(rows))) if cfg.val_fraction else 0
        tail = rows[len(rows) - n_test - n_val :]
        parts[tail[:n_val]] = VAL
        parts[tail[n_val:]] = TEST
    h = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode())
    columns = [user_ids, work_ids, ratings.tolist(), timestamps.tolist()]
    if weights is not None and bool((weights != 1.0).any()):
        h.update(b"weights")
        columns.append([float(w) for w in weights.tolist()])
    for row in sorted(zip(*columns, strict=True)):
        h.update(repr(row).encode())
    return parts, h.hexdigest()[:16]


@pytest.mark.parametrize("case", range(40))
def test_the_array_split_gives_the_python_loops_parts_and_id(case: int) -> None:
    """Random sets with the edges: 1-30 interactions a user, timestamps or not (with
    ties), weights or not, min_holdout 0-6 (a negative tail start), zero fractions,
    ids that are prefixes of one another, quotes and non-ASCII in ids, rows shuffled."""
    rng = np.random.default_rng(case)
    names = ["u", "u1", "u10", "ü'x", 'q"2', "Ø", "u2", "a b"]
    user_ids: list[str] = []
    work_ids: list[str] = []
    for u in range(int(rng.integers(1, 40))):
        name = names[u % len(names)] + ("" if u < len(names) else str(u))
        n = int(rng.integers(1, 31))
        picks = rng.choice(60, size=min(n, 60), replace=False)
        user_ids += [name] * len(picks)
        work_ids += [f"w{p}" if p % 5 else f"w{p}'é" for p in picks]
    order = rng.permutation(len(user_ids))
    user_ids = [user_ids[i] for i in order]
    work_ids = [work_ids[i] for i in order]
    ratings = rng.integers(0, 11, len(user_ids)).astype(np.int8)
    timed = case % 2 == 0
    ts = rng.integers(0, 50, len(user_ids)) if timed else np.full(len(user_ids), -1)
    weights = rng.choice([1.0, 0.5, 3.25], len(user_ids)).astype(np.float32)
    cfg = SplitConfig(
        seed=case,
        val_fraction=[0.1, 0.0, 0.25, 0.49][case % 4],
        test_fraction=[0.1, 0.2, 0.0, 0.33][(case // 4) % 4],
        cold_user_fraction=[0.0, 0.05, 0.3][case % 3],
        min_holdout=case % 7,
    )
    for w in (None, weights if case % 3 else np.ones(len(user_ids), np.float32)):
        want_parts, want_id = _reference_assign(
            user_ids, work_ids, ratings, ts.astype(np.int64), cfg, w
        )
        parts, sid = assign(user_ids, work_ids, ratings, ts.astype(np.int64), cfg, w)
        assert sid == want_id
        assert parts.tolist() == want_parts.tolist()
