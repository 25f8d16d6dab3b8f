"""The reranker's features and its study: one computation on both sides, and a decision
that serves it when a feature carries the answer and switches it off when none does."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from bookrec import rerank_features as rf
from bookrec.artifact import read_manifest
from server.engine.blended import blended
from server.engine.bundle import Bundle
from server.engine.retrieval import candidates
from tests.conftest import tiny_config
from trainer.evaluation.decisions import decide
from trainer.evaluation.lists import candidate_pool
from trainer.evaluation.metrics import evaluate_lists
from trainer.features import build_features
from trainer.models import reranker as rr
from trainer.models.study import StudyBudget
from trainer.models.subject_model import SubjectModel, user_vector
from trainer.run_report import split_config
from trainer.snapshot import Snapshot
from trainer.store.store import Store


def test_the_per_book_columns() -> None:
    count = np.array([0, 5, 5, 2, 9], np.int32)
    np.testing.assert_allclose(rf.count_percentile(count), [0.0, 0.4, 0.4, 0.2, 0.8])
    # Ten interactions, timestamps 0..9: the latest tenth is the one at 9 (book 2).
    items = np.array([0, 0, 1, 1, 1, 1, 0, 0, 0, 2], np.int32)
    stamps = np.arange(10, dtype=np.int64)
    np.testing.assert_allclose(rf.book_recency(items, stamps, 4), [0.0, 0.0, 1.0, 0.0])
    # Without timestamps (-1), or with one timestamp for all: no recency.
    assert not rf.book_recency(items, np.full(10, -1, np.int64), 4).any()
    assert not rf.book_recency(items, np.full(10, 7, np.int64), 4).any()
    # Subject affinity: the user read 3 books, 2 with subject 0 and 1 with subject 1.
    subjects = np.array([[0, -1], [0, 1], [2, -1], [0, 2], [-1, -1]], np.int32)
    got = rf.subject_affinity(subjects, np.array([0, 1, 2], np.int32), np.array([3, 4, 1]))
    k = rf.AFFINITY_PRIOR
    np.testing.assert_allclose(got, [(2 + 1 + 1 + 1) / (3 + k), 0.0, (2 + 1 + 1 + 1) / (3 + k)])
    # No history: each subject counts 1/k.
    none = rf.subject_affinity(subjects, np.empty(0, np.int32), np.array([1, 4]))
    np.testing.assert_allclose(none, [2 / k, 0.0])


def test_retrieval_score_features() -> None:
    table = _table(np.random.default_rng(0), 20)
    ctx = _context(0)
    cand = np.array([3, 1, 7], np.int32)
    x = rf.compute(table, ctx, cand, np.array([2.0, 1.0, 0.5], np.float32), cand * 0.0, cand * 0.0)
    col = {name: x[:, j] for j, name in enumerate(rf.FEATURES)}
    np.testing.assert_allclose(col["score_share"], [1.0, 0.5, 0.25])
    np.testing.assert_allclose(col["score_gap"], [0.0, 1.0, 1.5])
    np.testing.assert_allclose(col["score_rank"], [0, 1, 2])
    negative = rf.compute(
        table, ctx, cand, np.array([-1.0, -2, -3], np.float32), cand * 0.0, cand * 0.0
    )
    assert not negative[:, rf.FEATURES.index("score_share")].any()


def _snapshot(url: str, tiny_data: Path) -> Snapshot:
    cfg = tiny_config(tiny_data, Path("."), url)

    async def export() -> Snapshot:
        async with await Store.open(url) as store:
            return await store.export(await store.freeze_split(split_config(cfg)))

    return asyncio.run(export())


def test_trainer_and_server_compute_the_same_features(
    tiny_artifact: Path, tiny_store: str, tiny_data: Path
) -> None:
    """The tiny artifact's reranker (rerank="always"): its candidates, their three scores
    and every feature, from the trainer's code on the published rows and from the server's
    bundle, are the same for every user."""
    bundle = Bundle.open(tiny_artifact)
    reranker = bundle.reranker
    assert reranker is not None
    metrics = read_manifest(tiny_artifact).metrics["reranker"]
    assert reranker.candidates == metrics["params"]["candidates"]
    assert metrics["training_queries"] >= rr.MIN_QUERIES
    assert metrics["study"]["n_trials"] >= 1
    assert "book_recency.npy" in bundle.manifest.files

    # The trainer's side, rebuilt as the refit built the published features.
    cfg = tiny_config(tiny_data, Path("."), tiny_store)
    snap = _snapshot(tiny_store, tiny_data)
    split = build_features(snap, cfg.min_subject_books, cfg.max_subjects, cfg.prior_strength)
    every = np.ones(len(snap.users), dtype=bool)
    feats = build_features(
        snap, prior_strength=cfg.prior_strength, use_rows=every, vocab=split.vocab
    )
    vectors = np.asarray(bundle.subjects.book_vectors)
    table = rr.item_table(snap, feats, vectors, every)
    for name in ("prior", "count", "count_pct", "recency", "mean", "std", "year_bucket"):
        np.testing.assert_array_equal(getattr(table, name), getattr(reranker.table, name), name)
    sm = SubjectModel(
        bundle.subjects.pooling,
        np.asarray(bundle.subjects.subject_vectors),
        dict(bundle.subjects.weights),
        history=[],
    )
    history = sp.csr_matrix(
        (np.ones(len(snap.users), np.float32), (snap.users, snap.items)),
        shape=(snap.n_users, snap.n_items),
    )
    history.sum_duplicates()
    history.sort_indices()
    served = np.unique(snap.users)  # artifact user row r is snapshot user served[r]
    rows = np.arange(0, len(served), max(1, len(served) // 40), dtype=np.int32)
    n = reranker.candidates
    rated = sp.csr_matrix(
        (
            np.ones(len(bundle.user_items_indices), np.float32),
            bundle.user_items_indices,
            bundle.user_items_indptr,
        ),
        shape=(len(served), snap.n_items),
    )
    model = bundle.item_item
    if model is not None:
        m = sp.csr_matrix(
            (model.weights, model.indices, model.indptr), shape=(snap.n_items, snap.n_items)
        )
        pool = candidate_pool(
            np.asarray(bundle.user_factors),
            np.asarray(bundle.item_factors),
            m,
            rows,
            rated,
            model.candidates,
        )
        got = rr.blended(pool, model.weight, n)
    else:
        got = rr.candidates(
            np.asarray(bundle.user_factors), np.asarray(bundle.item_factors), rows, rated, n
        )
    compared = 0
    for i, row in enumerate(rows.tolist()):
        u = int(served[row])
        assert bundle.user_row[snap.user_ids[u]] == row
        seen = np.asarray(bundle.rated_items(row))
        vector = np.asarray(bundle.user_factors[row])
        if model is not None:
            ranked = blended(bundle, model, vector, seen, None)
            top = min(n, len(ranked.items))
            s_cand, s_scores = ranked.items[:top], ranked.scores[:top]
            s_als, s_ii = ranked.als[:top], ranked.item_item[:top]
        else:
            s_cand, s_scores = candidates(bundle, vector, n, seen, None)
            s_als, s_ii = s_scores, np.zeros_like(s_scores)
        valid = got.items[i] >= 0
        t_cand = got.items[i, valid].astype(np.int32)
        assert t_cand.tolist() == s_cand.tolist()
        np.testing.assert_allclose(got.scores[i, valid], s_scores, rtol=0, atol=1e-6)
        np.testing.assert_allclose(got.als[i, valid], s_als, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(got.item_item[i, valid], s_ii, rtol=1e-6, atol=1e-7)

        ctx = rr.user_context(u, history, feats, lambda s: user_vector(sm, s.tolist()))
        assert ctx.history.tolist() == seen.tolist()
        want = rf.compute(
            table, ctx, t_cand, got.scores[i, valid], got.als[i, valid], got.item_item[i, valid]
        )
        server = reranker.features(bundle.subjects, row, seen, s_cand, s_scores, s_als, s_ii)
        assert server.shape == (len(s_cand), len(rf.FEATURES))
        np.testing.assert_allclose(server, want, rtol=1e-5, atol=1e-6)
        # And the server's own inputs through the trainer's table give the server's matrix.
        exact = rf.compute(table, ctx, s_cand, s_scores, s_als, s_ii)
        np.testing.assert_array_equal(server, exact)
        compared += len(s_cand)
    assert compared > 0


# Synthetic queries: a catalogue of books with random per-book columns, users whose
# candidates come in a random retrieval order.
N_BOOKS, N_CAND, TUNE, EVAL = 800, 80, 600, 400


def _table(rng: np.random.Generator, n: int) -> rf.ItemTable:
    count = rng.integers(1, 200, n).astype(np.int32)
    return rf.ItemTable(
        author_id=rng.integers(0, 50, n).astype(np.int32),
        series_id=np.zeros(n, np.int32),
        series_volume=np.zeros(n, np.int16),
        book_subjects=np.where(rng.random((n, 2)) < 0.7, rng.integers(0, 10, (n, 2)), -1).astype(
            np.int32
        ),
        subject_vectors=np.zeros((n, 4), np.float32),
        year_bucket=rng.integers(0, 14, n).astype(np.int8),
        prior=rng.random(n).astype(np.float32),
        count=count,
        count_pct=rf.count_percentile(count),
        recency=rng.random(n).astype(np.float32),
        mean=np.zeros(n, np.float32),
        std=np.zeros(n, np.float32),
    )


def _context(count: int) -> rf.UserContext:
    return rf.UserContext(
        history=np.arange(count, dtype=np.int32),
        favourite_subjects=np.full(5, -1, np.int32),
        subject_vector=np.zeros(4, np.float32),
        count=float(count),
        mean=0.0,
        std=0.0,
    )


def _world(
    planted: bool, seed: int
) -> tuple[rr.Queries, list[set[int]], rr.Queries, list[set[int]]]:
    """Tune and eval queries. ``planted``: each user's targets are the two most recent of
    their first 50 candidates; else two of those 50 drawn at random."""
    rng = np.random.default_rng(seed)
    table = _table(rng, N_BOOKS)

    def users(n: int) -> tuple[rr.Queries, list[set[int]]]:
        items = np.stack([rng.choice(N_BOOKS, N_CAND, replace=False) for _ in range(n)])
        scores = -np.sort(-rng.random((n, N_CAND)), axis=1).astype(np.float32)
        als = (scores * rng.uniform(0.5, 2.0, (n, 1))).astype(np.float32)
        got = rr.Retrieved(items.astype(np.int64), scores, als, np.zeros_like(scores))
        targets = []
        for row in items:
            head = row[:50]
            pick = head[np.argsort(-table.recency[head])[:2]] if planted else rng.choice(head, 2)
            targets.append({int(i) for i in pick})
        contexts = [_context(int(c)) for c in rng.integers(0, 30, n)]
        return rr.queries(table, contexts, got), targets

    tune_q, tune_t = users(TUNE)
    eval_q, eval_t = users(EVAL)
    return tune_q, tune_t, eval_q, eval_t


@pytest.mark.parametrize("planted", [True, False])
def test_the_study_and_the_decision(planted: bool) -> None:
    """Labels that follow book_recency: the tuned reranker beats the retrieval order on
    users it never saw and the paired decision serves it. Labels that follow nothing:
    the decision switches it off."""
    tune_q, tune_t, eval_q, eval_t = _world(planted, seed=3)
    held_out = rr.holdout([f"user{u}" for u in range(TUNE)], seed=0)
    assert 0.25 < held_out.mean() < 0.42
    budget = StudyBudget(trials=4, seconds=120.0)
    tuned = rr.tune(tune_q, tune_t, held_out, rr.RerankerParams(), budget, seed=0)
    assert tuned.booster is not None and tuned.study is not None
    assert len(tuned.study.trials) == 4
    assert tuned.study.trials[0]["params"]["candidates"] == 300  # the configured point first
    assert rr.CANDIDATE_RANGE[0] <= tuned.params.candidates <= rr.CANDIDATE_RANGE[1]
    info = tuned.info
    assert info["tune_users"] == TUNE
    assert info["study_fit_users"] + info["study_validation_users"] == TUNE
    assert info["training_queries"] == TUNE  # every target lies in the first 50
    assert info["study"]["best_params"] == tuned.study.best_params
    n = tuned.params.candidates
    reranked = evaluate_lists(rr.rerank(tuned.booster, eval_q, n), eval_t, N_BOOKS)
    retrieval = evaluate_lists(rr.retrieval_order(eval_q, n), eval_t, N_BOOKS)
    decision = decide("reranker", reranked, retrieval, "retrieval", seed=0)
    assert decision.served is planted, decision.reason()
    if planted:
        assert reranked.ndcg_at_10 > retrieval.ndcg_at_10 + 0.3
        # Same seed, same study and model.
        again = rr.tune(tune_q, tune_t, held_out, rr.RerankerParams(), budget, seed=0)
        assert [t["value"] for t in again.study.trials] == [  # type: ignore[union-attr]
            t["value"] for t in tuned.study.trials
        ]
        assert again.booster is not None
        assert again.booster.model_to_string() == tuned.booster.model_to_string()


def test_too_few_labelled_queries_fit_nothing() -> None:
    tune_q, tune_t, _, _ = _world(True, seed=4)
    empty: list[set[int]] = [set() for _ in tune_t]  # nobody's validation item among the candidates
    held_out = rr.holdout([f"user{u}" for u in range(TUNE)], seed=0)
    tuned = rr.tune(tune_q, empty, held_out, rr.RerankerParams(), StudyBudget(2, 60.0), 0)
    assert tuned.booster is None and tuned.study is None
    assert "fewer than" in tuned.info["reason"]


def test_book_recency_is_checked_when_present(tiny_artifact: Path, tmp_path: Path) -> None:
    import json
    import shutil

    from bookrec import artifact

    copy = tmp_path / tiny_artifact.name
    shutil.copytree(tiny_artifact, copy)
    doc = json.loads((copy / "manifest.json").read_text())
    doc["files"]["book_recency.npy"]["dtype"] = "float64"
    (copy / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(artifact.ArtifactError, match="book_recency"):
        artifact.verify(copy, artifact.read_manifest(copy), check_hashes=False)
