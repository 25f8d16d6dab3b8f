"""The journeys of new and light users (trainer/evaluation/journeys.py) and what the
trainer learns on them (trainer/models/cold.py), on generated data whose answer is known:
users who read inside one cluster (their own ratings say everything: the shrink leans on
them) and users who read the popular books whatever they read before (their ratings say
nothing: the shrink leans on popularity)."""

from __future__ import annotations

import numpy as np
import pytest

from bookrec.fold_in import FewRatings, fold_in
from trainer.evaluation import journeys as jy
from trainer.evaluation.split import TEST, TRAIN
from trainer.features import build_features
from trainer.models import popularity as pop
from trainer.models.als import ALSParams
from trainer.models.cold import K_GRID, evaluate_new_users
from trainer.models.subject_model import SubjectModelParams, book_vectors, initial_subject_model
from trainer.snapshot import Snapshot

CLUSTERS, PER_CLUSTER, USERS, READS = 4, 12, 500, 12


def _snapshot(kind: str, timed: bool = True, seed: int = 0) -> Snapshot:
    """``kind`` "clustered": each user reads books of one cluster only, the clusters
    equally popular; "popular": each user reads books drawn by one global Zipf law."""
    rng = np.random.default_rng(seed)
    n = CLUSTERS * PER_CLUSTER
    zipf = 1.0 / np.arange(1, n + 1) ** 1.1
    zipf = zipf[rng.permutation(n)]
    users, items, stamps = [], [], []
    for u in range(USERS):
        if kind == "clustered":
            c = u % CLUSTERS
            books = c * PER_CLUSTER + rng.choice(PER_CLUSTER, READS, replace=False)
        else:
            books = rng.choice(n, READS, replace=False, p=zipf / zipf.sum())
        books = np.sort(books)
        users += [u] * len(books)
        items += books.tolist()
        stamps += rng.permutation(len(books)).tolist()
    m = len(users)
    parts = np.full(m, TRAIN, np.int8)
    return Snapshot(
        split_id="planted",
        work_ids=[f"w{i:03d}" for i in range(n)],
        titles=[f"t{i}" for i in range(n)],
        authors=["a"] * n,
        years=np.zeros(n, np.int16),
        pages=np.zeros(n, np.int32),
        series=[""] * n,
        series_volume=np.zeros(n, np.int16),
        isbns=[[] for _ in range(n)],
        subjects=[[f"cluster-{i // PER_CLUSTER}"] for i in range(n)],
        user_ids=[f"u{u:04d}" for u in range(USERS)],
        age_buckets=[""] * USERS,
        countries=[""] * USERS,
        users=np.array(users, np.int32),
        items=np.array(items, np.int32),
        ratings=np.full(m, 9, np.int8),
        timestamps=np.array(stamps, np.int64) if timed else np.full(m, -1, np.int64),
        parts=parts,
        weights=np.ones(m, np.float32),
    )


def test_known_items_are_the_earliest_and_the_rest_are_targets() -> None:
    snap = _snapshot("clustered")
    js = jy.build(snap, np.full((snap.n_items, 1), -1), seed=3)
    assert js.timed and set(js.journeys) == {f"n={n}" for n in jy.NS}
    for name, j in js.journeys.items():
        assert len(j.users) == USERS  # every user read READS > n books
        for u, rows, targets in zip(j.users.tolist(), j.known, j.targets, strict=True):
            mine = np.flatnonzero(snap.users == u)
            order = mine[np.argsort(snap.timestamps[mine], kind="stable")]
            assert rows.tolist() == order[: j.n].tolist(), name
            assert targets == set(snap.items[order[j.n :]].tolist())
            assert len(targets) == len(mine) - j.n > 0


def test_every_user_is_in_one_fold_and_no_fold_model_sees_its_users() -> None:
    snap = _snapshot("popular")
    parts = snap.parts.copy()
    parts[::7] = TEST
    snap = Snapshot(**{**snap.__dict__, "parts": parts})
    js = jy.build(snap, np.full((snap.n_items, 1), -1), seed=1, folds=4)
    assert sorted(set(js.fold_of.tolist())) == [0, 1, 2, 3]
    seen = np.zeros(snap.n_users, bool)
    for f in range(js.folds):
        rows = jy.fit_mask(snap, js, f)
        assert not (js.fold_of[snap.users[rows]] == f).any()
        assert (snap.parts[rows] == TRAIN).all()
        outside = (js.fold_of[snap.users] != f) & (snap.parts == TRAIN)
        assert (rows == outside).all()
        seen[js.fold_of == f] = True
    assert seen.all()
    j = js.journeys["n=3"]
    assert np.array_equal(j.folds, js.fold_of[j.users])


def test_a_journey_nobody_can_take_is_left_out() -> None:
    snap = _snapshot("popular")
    js = jy.build(snap, np.full((snap.n_items, 1), -1), seed=0, ns=(1, READS, 50))
    assert set(js.journeys) == {"n=1"}


def test_without_timestamps_the_known_items_are_a_seeded_draw() -> None:
    snap = _snapshot("clustered", timed=False)
    a = jy.build(snap, np.full((snap.n_items, 1), -1), seed=5)
    b = jy.build(snap, np.full((snap.n_items, 1), -1), seed=5)
    c = jy.build(snap, np.full((snap.n_items, 1), -1), seed=6)
    assert not a.timed
    ka, kb, kc = (x.journeys["n=3"].known for x in (a, b, c))
    assert all(np.array_equal(x, y) for x, y in zip(ka, kb, strict=True))
    assert any(not np.array_equal(x, y) for x, y in zip(ka, kc, strict=True))


def test_subjects_journey_takes_the_first_positive_ratings_subjects() -> None:
    snap = _snapshot("clustered")
    feats = build_features(snap)
    js = jy.build(snap, feats.book_subjects, seed=0)
    j = js.journeys[jy.SUBJECTS]
    assert len(j.users) == USERS
    for fav, known in zip(j.favourites, j.known, strict=True):
        assert len(known) == jy.SUBJECT_SEED
        own = {int(s) for i in snap.items[known] for s in feats.book_subjects[i] if s >= 0}
        assert fav == sorted(own) and len(fav) == 1  # one cluster per user


def test_few_ratings_fold_in_equals_the_servers_solve() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=(300, 24)).astype(np.float32)
    yty = y.astype(np.float64).T @ y.astype(np.float64)
    few = FewRatings(y, yty, 0.3)
    items = [rng.choice(300, n, replace=False).astype(np.int32) for n in (1, 3, 5, 10, 0)]
    conf = [(1.0 + rng.random(len(i)) * 9).astype(np.float32) for i in items]
    got = few.many(items, conf)
    for i, c, g in zip(items, conf, got, strict=True):
        want = fold_in(y, yty, 0.3, i, c) if len(i) else np.zeros(24, np.float32)
        np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-5)


def _learn(kind: str) -> tuple[float | None, dict[str, dict[str, float]]]:
    snap = _snapshot(kind)
    feats = build_features(snap)
    sm = initial_subject_model(len(feats.vocab.slugs), SubjectModelParams(dim=8))
    vectors = book_vectors(sm, feats.book_subjects)
    js = jy.build(snap, feats.book_subjects, seed=0, folds=3, ns=(1, 3))
    params = ALSParams(factors=8, iterations=8, regularization=0.1, alpha=5.0, threads=1)
    new = evaluate_new_users(
        snap, feats, sm, vectors, js, (params, None, 1.0, 20), (0.0, 0.5, 1.0), 10.0, 0
    )
    rows = {
        name: {
            "served": r["served"]["ndcg@10"],
            "popularity": r["popularity"]["ndcg@10"],
            "low": r["served_vs_popularity"]["low"],
        }
        for name, r in new.metrics["journeys"].items()
    }
    assert new.settings.popularity_form in (pop.COUNTS, pop.RECENT, pop.PRIOR)
    return new.settings.shrink_k, rows


@pytest.mark.timeout(300)
def test_the_shrink_leans_on_what_the_ratings_say() -> None:
    """Clustered readers: a rating tells their cluster, so the learned k is small and the
    served lists beat popularity on every journey, intervals above 0. Readers of the
    popular books: ratings tell nothing, so k is large (mostly popularity) and the served
    lists are not below popularity."""
    k, rows = _learn("clustered")
    assert k is not None and k <= 1.0, (k, rows)
    for name in ("n=1", "n=3"):
        assert rows[name]["served"] > 1.5 * rows[name]["popularity"], rows
        assert rows[name]["low"] > 0, rows
    k, rows = _learn("popular")
    assert k is not None and k >= K_GRID[5], (k, rows)
    for name in ("n=1", "n=3"):
        assert rows[name]["served"] >= rows[name]["popularity"] - 0.01, rows
