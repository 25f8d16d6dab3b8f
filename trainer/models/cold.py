"""Users the model does not know, decided on the journeys they take
(trainer/evaluation/journeys.py): ColdStart with favourite subjects, and a user who
rated n = 1, 3, 5 or 10 books then asks Recommend.

Every eligible user is scored, each by models fitted without them: k folds of users,
and per fold ALS (the chosen settings), item-item (when served) and every popularity
form on the training part of the other folds' users. Three choices, each on the same
per-user NDCG@10:

1. **Popularity's form** (trainer/models/popularity.py ``forms``: counts, recent
   counts where there are timestamps, the Bayesian prior): the best mean over the
   journeys of each journey's mean.
2. **Shrink by evidence** (bookrec/blend.py ``shrunk``): a user with n ratings gets
   ``w(n) * personal + (1 - w(n)) * popularity`` with ``w(n) = n / (n + k)``; ``k`` from
   ``K_GRID`` (the last point is popularity alone).
3. **ColdStart's popularity weight** (bookrec/cold_score.py ``blend``) on the chosen form.

Each choice is cross-fitted: the users of fold f are scored at the value chosen on the
other folds, so every reported figure is out of sample; the served value is the one
chosen on all folds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from bookrec import blend, cold_score
from bookrec.confidence import confidence
from bookrec.fold_in import FewRatings
from bookrec.log import kv
from trainer.evaluation import journeys as jy
from trainer.evaluation.bootstrap import Interval, paired
from trainer.evaluation.lists import ranked
from trainer.evaluation.metrics import RankingReport, evaluate_lists, ndcg_per_user
from trainer.evaluation.protocol import F32, I32, I64, K, exclusion_for, top_lists
from trainer.features import Features
from trainer.models import popularity as pop
from trainer.models.als import ALSModel, ALSParams, is_positive, train_als, training_matrix
from trainer.models.item_item import ItemItemParams, fit_item_item
from trainer.models.subject_model import SubjectModel, user_vector
from trainer.snapshot import Snapshot

log = logging.getLogger("trainer.models.cold")
COLD_CHUNK = 128  # subject-journey users scored at once: (128, n_books) temporaries
# k of w(n) = n / (n + k); 1e9: popularity alone at every n of the journeys.
K_GRID = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 1e9)


@dataclass(frozen=True)
class NewUserSettings:
    """What the journeys decided and the artifact serves."""

    popularity_form: str
    shrink_k: float | None  # None: no n-journey to learn it on (today's behaviour)
    cold_start_weight: float


@dataclass(frozen=True)
class NewUserResult:
    settings: NewUserSettings
    reports: dict[str, dict[str, RankingReport]]  # journey -> strategy -> report
    metrics: dict[str, Any]


@dataclass(frozen=True)
class Personal:
    """The personal models the server would serve, fitted on one fold's rows."""

    als: ALSModel
    params: ALSParams
    in_als: npt.NDArray[np.bool_]
    item_item: sp.csr_matrix | None
    blend_weight: float  # ALS's share (1.0 without item-item)
    candidates: int


def fold_forms(snap: Snapshot, js: jy.Journeys, prior_strength: float) -> list[dict[str, F32]]:
    """Every popularity form (served01) on each fold's rows."""
    out = []
    for f in range(js.folds):
        rows = jy.fit_mask(snap, js, f)
        out.append(
            pop.forms(
                snap.items[rows],
                snap.ratings[rows],
                snap.timestamps[rows],
                snap.n_items,
                prior_strength,
            )
        )
    return out


def by_fold(j: jy.Journey, folds: int, lists_of: Callable[[int, jy.Journey], I64]) -> I64:
    """Lists for every user of ``j``, each fold's users by ``lists_of(fold, their part)``."""
    out = np.full((len(j.users), K), -1, dtype=np.int64)
    for f in range(folds):
        pos = j.in_fold(f)
        if len(pos):
            out[pos] = lists_of(f, j.take(pos))
    return out


def popularity_lists(snap: Snapshot, j: jy.Journey, scores: F32) -> I64:
    """One order for every user, minus what each one told the service."""
    pos = np.arange(len(j.users), dtype=np.int32)
    excl = exclusion_for(pos, jy.known_items(snap, j), snap.n_items)
    return top_lists(lambda b: np.broadcast_to(scores, (len(b), len(scores))), pos, excl)


def fit_personal(
    snap: Snapshot,
    rows: npt.NDArray[np.bool_],
    params: ALSParams,
    ii_params: ItemItemParams | None,
    blend_weight: float,
    candidates: int,
) -> Personal:
    matrix = training_matrix(
        snap.users[rows],
        snap.items[rows],
        snap.ratings[rows],
        snap.weights[rows],
        (snap.n_users, snap.n_items),
        params,
    )
    als = train_als(matrix, params)
    in_als = np.bincount(snap.items[rows], minlength=snap.n_items) > 0
    ii = None
    if ii_params is not None:
        binary = sp.csr_matrix(
            (np.ones(int(rows.sum()), np.float32), (snap.users[rows], snap.items[rows])),
            shape=(snap.n_users, snap.n_items),
        )
        binary.sum_duplicates()
        binary.data[:] = 1.0
        ii = fit_item_item(binary, ii_params).matrix.tocsr()
        ii.sort_indices()
    return Personal(als, params, in_als, ii, blend_weight if ii is not None else 1.0, candidates)


def fold_vectors(snap: Snapshot, model: Personal, j: jy.Journey) -> F32:
    """Each user's known ratings folded in as the server folds them (recommend.py
    ``_new_user_vector``): ratings ALS would have fitted, confidences as trained."""
    itf = model.als.item_factors
    yty = itf.astype(np.float64).T @ itf.astype(np.float64)
    few = FewRatings(itf, yty, model.params.regularization, model.params.regularization_scaling)
    items, conf = [], []
    for rows in j.known:
        keep = is_positive(snap.ratings[rows], model.params.min_rating)
        r = rows[keep]
        items.append(snap.items[r].astype(np.int32))
        conf.append(
            confidence(snap.ratings[r], model.params.alpha, model.params.scheme, snap.weights[r])
        )
    return few.many(items, conf)


def shrink_lists(
    model: Personal, vectors: F32, known: list[I32], pop01: F32, shares: list[F32]
) -> list[I64]:
    """For each share grid (one share per user), every user's top K by ``blend.shrunk``
    over ALS's top n, item-item's top n and popularity's top n, minus what they rated."""
    n, itf = model.candidates, model.als.item_factors
    n_items = len(pop01)
    pos = np.arange(len(known), dtype=np.int32)
    excl = exclusion_for(pos, known, n_items)
    off = ~model.in_als

    def als_score(b: I32) -> F32:
        s = vectors[b] @ itf.T
        s[:, off] = -np.inf
        return np.asarray(s, dtype=np.float32)

    als_top = top_lists(als_score, pos, excl, k=n)
    pop_order = np.lexsort((np.arange(n_items), -pop01))
    pop_order = pop_order[model.in_als[pop_order]]
    outs = [np.full((len(known), K), -1, dtype=np.int64) for _ in shares]
    for u, seen in enumerate(known):
        cand, a, ii = _candidates(model, vectors[u], seen, als_top[u], pop_order)
        for out, share in zip(outs, shares, strict=True):
            s = blend.shrunk(a, ii, model.blend_weight, pop01[cand], float(share[u]))
            best = ranked(cand, s, K)
            out[u, : len(best)] = best
    return outs


def _candidates(
    model: Personal, vector: F32, seen: I32, als_top: I64, pop_order: I64
) -> tuple[I32, F32, F32]:
    """The union of the three sources' top n (the server's ``shrunk_list``)."""
    n = model.candidates
    head = pop_order[: n + len(seen)]
    parts: list[npt.NDArray[np.integer]] = [head[~np.isin(head, seen)][:n]]
    if vector.any():
        parts.append(als_top[als_top >= 0])
    books = np.empty(0, np.int32)
    scores = np.empty(0, np.float32)
    if model.item_item is not None:
        w = model.item_item
        books, scores = blend.item_item_scores(
            w.indptr.astype(np.int64), w.indices, w.data, np.sort(seen)
        )
        keep = ~np.isin(books, seen) & model.in_als[books]
        books, scores = books[keep], scores[keep]
        parts.append(books[np.lexsort((books, -scores))[:n]])
    cand = np.unique(np.concatenate(parts)).astype(np.int32)
    als = (model.als.item_factors[cand] @ vector).astype(np.float32)
    return cand, als, blend.lookup(books, scores, cand)


def shares_for(n: int, users: int) -> list[F32]:
    return [np.full(users, blend.shrink_weight(n, k), dtype=np.float32) for k in K_GRID]


def subject_lists(
    snap: Snapshot,
    feats: Features,
    sm: SubjectModel,
    vectors: F32,
    rows: npt.NDArray[np.bool_],
    j: jy.Journey,
    pop01: F32,
    weights: tuple[float, ...],
) -> list[I64]:
    """ColdStart's lists (bookrec/cold_score.py) for each popularity weight."""
    counts = np.bincount(snap.items[rows], minlength=snap.n_items)
    lift = cold_score.SubjectLift(feats.book_subjects, counts, len(feats.vocab.slugs))
    uvecs = np.stack([user_vector(sm, f) for f in j.favourites]).astype(np.float32)
    known = jy.known_items(snap, j)
    outs = [np.full((len(j.users), K), -1, dtype=np.int64) for _ in weights]
    for start in range(0, len(j.users), COLD_CHUNK):
        r = np.arange(start, min(start + COLD_CHUNK, len(j.users)), dtype=np.int32)
        sim = cold_score.similarity(uvecs[r], vectors, lift([j.favourites[i] for i in r]))
        excl = exclusion_for(r - start, [known[i] for i in r], snap.n_items)
        local = np.arange(len(r), dtype=np.int32)
        for out, w in zip(outs, weights, strict=True):

            def score(b: I32, w: float = w, sim: F32 = sim) -> F32:
                return cold_score.blend(sim[b], pop01, w)

            out[r] = top_lists(score, local, excl)
    return outs


def cross_fit(per_user: dict[str, npt.NDArray[np.float64]], folds: dict[str, I32], n: int) -> Any:
    """For each fold, the grid index with the best mean over journeys of each journey's
    mean NDCG@10 on the other folds' users; and the index chosen on all users."""

    def best(exclude: int | None) -> int:
        total = np.zeros(n)
        for name, m in per_user.items():
            sel = folds[name] != exclude if exclude is not None else np.ones(len(m), bool)
            if sel.any():
                total += m[sel].mean(axis=0)
        return int(np.argmax(total))

    fold_ids = sorted({int(f) for fs in folds.values() for f in fs.tolist()})
    return {f: best(f) for f in fold_ids}, best(None)


def gain_row(a: RankingReport, b: RankingReport, seed: int) -> dict[str, Any]:
    g: Interval = paired(a.per_user_ndcg, b.per_user_ndcg, seed)
    ratio = a.ndcg_at_10 / b.ndcg_at_10 if b.ndcg_at_10 > 0 else float("nan")
    return {**g.row(), "ratio": round(ratio, 3)}


def evaluate_new_users(
    snap: Snapshot,
    feats: Features,
    sm: SubjectModel,
    vectors: F32,
    js: jy.Journeys,
    personal: tuple[ALSParams, ItemItemParams | None, float, int],
    weights: tuple[float, ...],
    prior_strength: float,
    seed: int,
) -> NewUserResult:
    """``personal``: ALS's settings, item-item's (None: not served), the blend's ALS
    share and candidates per source, as chosen on warm users."""
    forms = fold_forms(snap, js, prior_strength)
    names = list(forms[0])
    journeys = js.journeys

    def lists_of(form: str) -> Callable[[int, jy.Journey], I64]:
        return lambda f, part: popularity_lists(snap, part, forms[f][form])

    base = {
        name: {form: by_fold(j, js.folds, lists_of(form)) for form in names}
        for name, j in journeys.items()
    }
    form_means = {
        name: {
            form: float(ndcg_per_user(lists, journeys[name].targets).mean())
            for form, lists in by_form.items()
        }
        for name, by_form in base.items()
    }
    form = names[int(np.argmax([sum(m[f] for m in form_means.values()) for f in names]))]
    grids = _grids(snap, feats, sm, vectors, js, personal, weights, forms, form)
    reports: dict[str, dict[str, RankingReport]] = {}
    choices: dict[str, Any] = {}
    served = {"shrink": K_GRID, "cold_start": weights}
    settings: dict[str, float] = {}
    for what, grid in served.items():
        names_in = [n for n in grids if (n == jy.SUBJECTS) == (what == "cold_start")]
        if not names_in:
            continue
        per_user = {
            n: np.stack([ndcg_per_user(x, journeys[n].targets) for x in grids[n]], 1)
            for n in names_in
        }
        by_f, chosen = cross_fit(per_user, {n: journeys[n].folds for n in names_in}, len(grid))
        settings[what] = float(grid[chosen])
        choices[what] = {
            "chosen": grid[chosen],
            "by_fold": {str(f): grid[i] for f, i in by_f.items()},
            "mean_ndcg@10": {
                str(v): round(float(np.mean([m[:, i].mean() for m in per_user.values()])), 4)
                for i, v in enumerate(grid)
            },
        }
        for n in names_in:
            j = journeys[n]
            oof = np.stack([grids[n][by_f[int(f)]][u] for u, f in enumerate(j.folds.tolist())])
            reports[n] = _journey_reports(snap, j, base[n], form, oof, grids[n][0])
    result = NewUserSettings(form, settings.get("shrink"), settings.get("cold_start", 1.0))
    metrics = {
        "folds": js.folds,
        "known_ratings": "the earliest by time" if js.timed else "a seeded random draw",
        "popularity_form": {"chosen": form, "mean_ndcg@10": _rounded(form_means)},
        **choices,
        "journeys": {n: _journey_row(r, seed) for n, r in reports.items()},
    }
    log.info("new-user journeys", extra=kv(form=form, **settings))
    return NewUserResult(result, reports, metrics)


def _grids(
    snap: Snapshot,
    feats: Features,
    sm: SubjectModel,
    vectors: F32,
    js: jy.Journeys,
    personal: tuple[ALSParams, ItemItemParams | None, float, int],
    weights: tuple[float, ...],
    forms: list[dict[str, F32]],
    form: str,
) -> dict[str, list[I64]]:
    """Every journey user's lists at every grid point (k for Recommend, the popularity
    weight for ColdStart), each scored by the models of the folds without them."""
    out: dict[str, list[I64]] = {}
    for name, j in js.journeys.items():
        size = len(weights) if name == jy.SUBJECTS else len(K_GRID)
        out[name] = [np.full((len(j.users), K), -1, dtype=np.int64) for _ in range(size)]
    for f in range(js.folds):
        rows = jy.fit_mask(snap, js, f)
        pop01 = forms[f][form]
        model: Personal | None = None
        for name, j in js.journeys.items():
            pos = j.in_fold(f)
            if len(pos) == 0:
                continue
            part = j.take(pos)
            if name == jy.SUBJECTS:
                lists = subject_lists(snap, feats, sm, vectors, rows, part, pop01, weights)
            else:
                if model is None:
                    model = fit_personal(snap, rows, *personal)
                v = fold_vectors(snap, model, part)
                known = jy.known_items(snap, part)
                lists = shrink_lists(model, v, known, pop01, shares_for(j.n, len(pos)))
            for grid, got in zip(out[name], lists, strict=True):
                grid[pos] = got
    return out


def _journey_reports(
    snap: Snapshot, j: jy.Journey, base: dict[str, I64], form: str, served: I64, personal: I64
) -> dict[str, RankingReport]:
    """Plain counts, the prior, the chosen form, the personal lists alone (k = 0, or the
    subject score alone) and what is served (cross-fitted)."""
    out: dict[str, RankingReport] = {}
    named = {"popularity": base[pop.COUNTS], "prior": base[pop.PRIOR]}
    if form not in (pop.COUNTS, pop.PRIOR):
        named[f"popularity/{form}"] = base[form]
    named["personal" if j.n else "subject"] = personal
    named["served"] = served
    for name, lists in named.items():
        out[name] = evaluate_lists(lists, j.targets, snap.n_items)
    return out


def _journey_row(reports: dict[str, RankingReport], seed: int) -> dict[str, Any]:
    """Each strategy's figures and the served lists' paired gains over both baselines."""
    row: dict[str, Any] = {name: r.row() for name, r in reports.items()}
    row["served_vs_popularity"] = gain_row(reports["served"], reports["popularity"], seed)
    row["served_vs_prior"] = gain_row(reports["served"], reports["prior"], seed)
    return row


def _rounded(x: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {a: {b: round(v, 4) for b, v in d.items()} for a, d in x.items()}


def journey_metrics(new: NewUserResult, timed: bool) -> dict[str, Any]:
    """The journeys' rows in the manifest: ``new_users`` in full; ``cold`` (ColdStart) and
    ``history`` (each Recommend journey's strategies) for the run's table; the decisions."""
    subjects = new.reports.get(jy.SUBJECTS, {})
    history = {
        f"{name}/{k}": v.row()
        for name, reports in new.reports.items()
        if name != jy.SUBJECTS
        for k, v in reports.items()
    }
    s = new.settings
    rows = new.metrics["journeys"]
    shrink = (
        f"shrink k = {s.shrink_k:g}, w(n) = n / (n + k); served vs popularity: "
        + "; ".join(
            f"{n} {_gain_text(r['served_vs_popularity'])}"
            for n, r in rows.items()
            if n != jy.SUBJECTS
        )
        if s.shrink_k is not None
        else "no user with more than one rating: such users get cold start from their subjects"
    )
    return {
        "new_users": new.metrics,
        "cold": {k: v.row() for k, v in subjects.items()},
        "history": history,
        "popularity_form": {
            "chosen": s.popularity_form,
            "reason": f"best mean NDCG@10 over the journeys: {s.popularity_form}",
        },
        "cold_start": {
            "popularity_weight": s.cold_start_weight,
            "reason": (
                f"popularity weight {s.cold_start_weight:g} on {s.popularity_form}"
                + (
                    "; served vs popularity "
                    + _gain_text(rows[jy.SUBJECTS]["served_vs_popularity"])
                    if jy.SUBJECTS in rows
                    else ""
                )
            ),
        },
        "new_user_history": {
            "served": s.shrink_k is not None,
            "shrink_k": s.shrink_k,
            "reason": shrink,
        },
        "holdout": holdout_note(timed),
    }


def holdout_note(timed: bool) -> dict[str, Any]:
    """Item 5 of issue 22: without timestamps the holdout is random, and says so."""
    if timed:
        return {"timed": True, "reason": "held-out interactions are each user's latest by time"}
    return {
        "timed": False,
        "reason": (
            "the data has no timestamps: held-out interactions (and the journeys' known "
            "ratings) are a seeded random draw per user, so these figures are optimistic "
            "for time-ordered use (a user's next books are harder to guess than random ones)"
        ),
    }


def _gain_text(g: dict[str, Any]) -> str:
    return f"{g['mean']:+.4f} [{g['low']:+.4f}, {g['high']:+.4f}] on {g['users']} users"


def served_popularity(snap: Snapshot, form: str, strength: float) -> F32:
    """The chosen form on every interaction (the published models' rows), in [0, 1]: the
    artifact's ``served_popularity``."""
    forms = pop.forms(snap.items, snap.ratings, snap.timestamps, snap.n_items, strength)
    return forms.get(form, forms[pop.COUNTS])


def artifact_params(settings: NewUserSettings) -> dict[str, Any]:
    """The manifest params the server reads (docs/artifact-format.md); no shrink k when
    there was nothing to learn it on, so the server keeps the path it had."""
    out: dict[str, Any] = {"popularity_form": settings.popularity_form}
    if settings.shrink_k is not None:
        out["new_user_shrink_k"] = settings.shrink_k
    return out
