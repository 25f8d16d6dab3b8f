"""Choose and estimate every model inside the frozen split.

Order, all fitted on the training part:

1. ALS: an Optuna study (trainer/models/study.py) scored on the tune half of the
   validation users.
2. Item-item (sparse EASE and RP3beta over the head, trainer/models/item_item.py):
   each model's settings by a small study, then RP3beta's share and the blend
   weight with ALS together, all on the tune half.
3. Subject embeddings (for cold start, Similar and the reranker).
4. The reranker: a study over its settings (trainer/models/reranker.py ``tune``, fitted on
   two thirds of the tune half, scored on the third), then fitted on the whole tune
   half's validation labels over the candidates of the pipeline below it.

Then every strategy is scored on the eval half, users that chose nothing, and
each component is served by a paired bootstrap over those users
(trainer/evaluation/decisions.py): the reranker when its gain's 95% interval is
above 0, the item-item blend when its mean gain is. The
published models are refit on every interaction afterwards
(trainer/training.py); the figures here estimate them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import lightgbm as lgb
import numpy as np
import optuna
import scipy.sparse as sp

from bookrec.log import kv
from bookrec.rerank_features import ItemTable
from trainer import progress as bars
from trainer.errors import InputError, ModelFitError
from trainer.evaluation import journeys as jy
from trainer.evaluation.decisions import BETTER_ON_AVERAGE, Decision, decide
from trainer.evaluation.lists import CandidatePool, blend_lists, candidate_pool
from trainer.evaluation.metrics import RankingReport, ndcg_at_10, report_into
from trainer.evaluation.protocol import (
    F32,
    I32,
    I64,
    WarmSet,
    part_matrix,
    popularity_lists,
    top_lists,
    warm_sets,
    with_part,
)
from trainer.evaluation.split import TEST, TRAIN, VAL
from trainer.features import Features
from trainer.models import reranker as rr
from trainer.models.als import ALSModel, ALSParams, training_matrix
from trainer.models.cold import NewUserSettings, evaluate_new_users, journey_metrics
from trainer.models.item_item import ItemItem, ItemItemFitter, ItemItemParams
from trainer.models.shared_study import SharedStudy
from trainer.models.study import (
    PRUNE_USERS,
    AlsSearch,
    StudyBudget,
    StudyResult,
    als_point,
    run_study,
)
from trainer.models.subject_model import (
    SubjectModel,
    SubjectModelParams,
    book_vectors,
    initial_subject_model,
    train_subject_model,
    trainable,
    user_vector,
)
from trainer.snapshot import Snapshot

log = logging.getLogger("trainer.models")
BLEND_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class ModelConfig:
    seed: int = 0
    als_base: ALSParams = field(default_factory=ALSParams)
    als_enqueue: tuple[ALSParams, ...] = ()  # points the study tries first
    als_budget: StudyBudget = field(default_factory=StudyBudget)
    als_shared: SharedStudy | None = None  # the ALS study several trainers share
    item_item: ItemItemParams | None = field(default_factory=ItemItemParams)  # None: off
    item_item_trials: int = 6
    item_item_seconds: float = 100.0
    blend_candidates: int = 200  # top n of each source before the blend
    subject: SubjectModelParams = field(default_factory=SubjectModelParams)
    reranker: rr.RerankerParams | None = field(default_factory=rr.RerankerParams)  # None: off
    reranker_mode: str = "auto"  # or "always": served whatever its interval says
    # The reranker's study (trainer/models/reranker.py tune): the small demo's reranker stage
    # (study, final fit, eval) takes ~60 s on 2 cores with it.
    reranker_budget: StudyBudget = field(default_factory=lambda: StudyBudget(8, 45.0))
    max_eval_users: int = 4000
    popularity_weights: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0)
    # New users' journeys (trainer/evaluation/journeys.py): k folds of users, every
    # eligible user up to a seeded 20,000 per journey (CiaoDVD's largest: 7,628; the
    # cap bounds the ColdStart journey's dense scoring on catalogues of 100k+ books)
    journey_folds: int = jy.FOLDS
    max_journey_users: int | None = 20_000
    prior_strength: float = 10.0


@dataclass
class Models:
    als_params: ALSParams
    als: ALSModel  # fitted on the training part (refit for publication)
    subject: SubjectModel
    book_subject_vectors: F32
    booster: lgb.Booster | None
    use_reranker: bool
    item_item_params: ItemItemParams | None  # with the chosen λ; None when not served
    blend_weight: float  # the ALS share of the blend; 1.0 when item-item is not served
    blend_candidates: int
    history_foldin: bool  # unknown users with ratings: folded-in ALS (else cold start)
    popularity_weight: float
    new_users: NewUserSettings  # popularity's form, the shrink curve (trainer/models/cold.py)
    metrics: dict[str, Any]
    curves: dict[str, tuple[float, ...]]
    studies: dict[str, StudyResult]
    stage_seconds: dict[str, float]


def als_lists(als: ALSModel, users: I32, exclude: sp.csr_matrix) -> I64:
    return top_lists(lambda b: als.user_factors[b] @ als.item_factors.T, users, exclude)


def _contexts(users: I32, history: sp.csr_matrix, feats: Features, sm: SubjectModel) -> list[Any]:
    def uvec(s: I32) -> F32:
        return user_vector(sm, s.tolist())

    return [rr.user_context(int(u), history, feats, uvec) for u in users.tolist()]


def search_als(
    snap: Snapshot, tune: WarmSet, exclude: sp.csr_matrix, cfg: ModelConfig
) -> tuple[ALSParams, ALSModel, StudyResult]:
    train = snap.mask(TRAIN)
    explicit = bool((snap.ratings[train] > 0).any())
    quick = WarmSet(tune.users[:PRUNE_USERS], tune.targets[:PRUNE_USERS])

    def fit_matrix(p: ALSParams) -> sp.csr_matrix:
        return training_matrix(
            snap.users[train],
            snap.items[train],
            snap.ratings[train],
            snap.weights[train],
            (snap.n_users, snap.n_items),
            p,
        )

    def score(model: ALSModel, fast: bool) -> float:
        users = quick if fast else tune
        return ndcg_at_10(als_lists(model, users.users, exclude), users.targets)

    search = AlsSearch(fit_matrix, score, cfg.als_base, explicit)
    enqueue = [als_point(p, explicit) for p in cfg.als_enqueue]
    search.deadline = time.perf_counter() + cfg.als_budget.seconds
    study = run_study("als", search, cfg.als_budget, cfg.seed, enqueue, shared=cfg.als_shared)
    params, model = search.chosen(study)
    return params, model, study


SHARES = (0.0, 0.3, 0.5, 0.7, 1.0)  # RP3beta's share of the item-item model


@dataclass(frozen=True)
class ItemItemChoice:
    model: ItemItem
    params: ItemItemParams
    weight: float  # ALS's share of the blend
    pool: CandidatePool  # the tune half's candidates at that choice
    studies: dict[str, StudyResult]
    on_tune: dict[str, float]  # NDCG@10 at each (share, weight)
    alone: ItemItem  # item-item served alone (weight 0): the best share at weight 0
    alone_params: ItemItemParams


def search_item_item(
    exclude: sp.csr_matrix,
    als: ALSModel,
    tune: WarmSet,
    cfg: ModelConfig,
    params: ItemItemParams,
) -> ItemItemChoice:
    """EASE's λ and RP3beta's (alpha, beta) by small studies on each model's own lists,
    then RP3beta's share and the ALS blend weight together on the served blend; all on
    the first PRUNE_USERS tune users (the reranker gets the whole half's pool). Weight 0
    is item-item served alone (EASE alone at share 0): a candidate like any blend, and
    the best share at weight 0 is kept to be reported beside the chosen blend."""
    quick = WarmSet(tune.users[:PRUNE_USERS], tune.targets[:PRUNE_USERS])
    fitter = ItemItemFitter(exclude, params)
    budget = StudyBudget(cfg.item_item_trials, cfg.item_item_seconds / 2)

    def value(matrix: sp.csr_matrix) -> float:
        lists = top_lists(lambda b: (exclude[b] @ matrix).toarray(), quick.users, exclude)
        return ndcg_at_10(lists, quick.targets)

    def ease(trial: optuna.Trial) -> float:
        return value(fitter.ease(trial.suggest_float("l2", 1.0, 1e4, log=True)))

    def rp3(trial: optuna.Trial) -> float:
        alpha = trial.suggest_float("alpha", 0.2, 1.5)
        return value(fitter.rp3(alpha, trial.suggest_float("beta", 0.0, 0.8)))

    studies = {
        "item_item": run_study(
            "item_item", ease, budget, cfg.seed, [{"l2": params.l2}], prune=False
        ),
        "rp3": run_study(
            "rp3",
            rp3,
            budget,
            cfg.seed,
            [{"alpha": params.rp3_alpha, "beta": params.rp3_beta}],
            prune=False,
        ),
    }
    best_rp3 = studies["rp3"].best_params
    chosen = replace(
        params,
        l2=float(studies["item_item"].best_params["l2"]),
        rp3_alpha=float(best_rp3["alpha"]),
        rp3_beta=float(best_rp3["beta"]),
    )
    on_tune: dict[str, float] = {}
    best: tuple[float, ItemItem, ItemItemParams, float] | None = None
    alone: tuple[float, ItemItem, ItemItemParams] | None = None
    uf, itf, n = als.user_factors, als.item_factors, cfg.blend_candidates
    for share in SHARES:
        p = replace(chosen, rp3_share=share)
        ii = fitter.fit(p)
        pool = candidate_pool(uf, itf, ii.matrix, quick.users, exclude, n)
        for w in BLEND_WEIGHTS:
            v = ndcg_at_10(blend_lists(pool, w), quick.targets)
            on_tune[f"share={share},w={w}"] = round(v, 4)
            if best is None or v > best[0]:
                best = (v, ii, p, w)
            if w == 0.0 and (alone is None or v > alone[0]):
                alone = (v, ii, p)
    assert best is not None and alone is not None
    _, ii, p, weight = best
    pool = candidate_pool(
        als.user_factors, als.item_factors, ii.matrix, tune.users, exclude, cfg.blend_candidates
    )
    return ItemItemChoice(ii, p, weight, pool, studies, on_tune, alone[1], alone[2])


def fit_subject_model(snap: Snapshot, feats: Features, params: SubjectModelParams) -> SubjectModel:
    """The subject model on the training part's explicit ratings, validated on the
    validation part's; the untrained model (logged) when no explicit rating falls on a
    book with a subject (implicit-only data)."""
    explicit = (snap.parts == TRAIN) & (snap.ratings > 0)
    val = (snap.parts == VAL) & (snap.ratings > 0)
    rows = (
        feats.book_subjects,
        feats.favourite_subjects,
        len(feats.vocab.slugs),
        snap.users[explicit],
        snap.items[explicit],
        snap.ratings[explicit],
    )
    if trainable(*rows):
        return train_subject_model(
            *rows, params, val=(snap.users[val], snap.items[val], snap.ratings[val])
        )
    log.warning(
        "subject model not trained: no explicit rating on a book with a subject",
        extra=kv(subjects=len(feats.vocab.slugs)),
    )
    return initial_subject_model(len(feats.vocab.slugs), params)


def train_models(snap: Snapshot, feats: Features, cfg: ModelConfig) -> Models:
    times: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        times[name] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()
        log.info("stage done", extra=kv(stage=name, seconds=times[name]))
        bars.note(f"{name} done")

    exclude = part_matrix(snap)
    tune, evals = warm_sets(snap, VAL, cfg.seed, cfg.max_eval_users)
    evals = with_part(evals, snap, TEST)
    if len(tune.users) == 0 or len(evals.users) == 0:
        raise InputError(
            "the validation split has no users to tune or evaluate on: the data is too small "
            f"or too sparse ({snap.n_users} users); add data, or lower BOOKREC_TRAIN_MIN_HOLDOUT "
            "(users with fewer interactions than that keep them all in train)"
        )
    als_params, als, als_study = search_als(snap, tune, exclude, cfg)
    studies = {"als": als_study}
    lap("als_study")

    warm: dict[str, RankingReport] = {}
    report_into(
        warm,
        "popularity",
        popularity_lists(feats.popularity.prior, evals.users, exclude),
        evals.targets,
        snap.n_items,
    )
    report_into(warm, "als", als_lists(als, evals.users, exclude), evals.targets, snap.n_items)
    decisions: dict[str, Decision] = {}
    base, weight, ii = "als", 1.0, None
    blend_info: dict[str, Any] = {}
    ii_params: ItemItemParams | None = None
    tune_pool: CandidatePool | None = None
    eval_pool: CandidatePool | None = None
    choice: ItemItemChoice | None = None
    if cfg.item_item is not None:
        try:
            choice = search_item_item(exclude, als, tune, cfg, cfg.item_item)
        except ModelFitError as e:  # none of a study's trials completed: ALS alone
            log.warning("item-item not served", extra=kv(reason=str(e)))
            blend_info = {"reason": f"{e}; ALS served alone"}
            lap("item_item")
    if choice is not None:
        ii, ii_params, w, tune_pool = choice.model, choice.params, choice.weight, choice.pool
        studies.update(choice.studies)

        def pool_of(model: ItemItem) -> CandidatePool:
            uf, itf, n = als.user_factors, als.item_factors, cfg.blend_candidates
            return candidate_pool(uf, itf, model.matrix, evals.users, exclude, n)

        eval_pool = pool_of(ii)
        # Weight 0 is item-item alone (ALS only widens its candidates past what it reaches).
        name = "item_item" if w == 0.0 else "als+item_item"
        report_into(warm, name, blend_lists(eval_pool, w), evals.targets, snap.n_items)
        if name != "item_item":  # item-item alone beside the blend, for the record
            lists = blend_lists(pool_of(choice.alone), 0.0)
            report_into(warm, "item_item", lists, evals.targets, snap.n_items)
        decisions["item_item"] = decide(
            "item_item", warm[name], warm["als"], "als", cfg.seed, BETTER_ON_AVERAGE
        )
        blend_info = {
            "weight": w,
            "strategy": name,
            "params": asdict(ii_params),
            "alone_params": asdict(choice.alone_params),
            "tune_ndcg@10": choice.on_tune,
        }
        if decisions["item_item"].served:
            base, weight = name, w
        lap("item_item")

    train = snap.parts == TRAIN
    sm = fit_subject_model(snap, feats, cfg.subject)
    vectors = book_vectors(sm, feats.book_subjects)
    lap("subject_model")

    table: ItemTable = rr.item_table(snap, feats, vectors, train)

    def retrieved(users: I32, pool: CandidatePool | None, n: int) -> rr.Retrieved:
        """What the server reranks: the top n of the served retrieval (blended.py)."""
        if base == "als" or pool is None:
            return rr.candidates(als.user_factors, als.item_factors, users, exclude, n)
        return rr.blended(pool, weight, n)

    booster: lgb.Booster | None = None
    rerank_info: dict[str, Any] = {}
    depth = 0  # the chosen candidates
    if cfg.reranker is not None:
        # Features once at the deepest count; the study's trials take each user's first n.
        tune_q = rr.queries(
            table,
            _contexts(tune.users, exclude, feats, sm),
            retrieved(tune.users, tune_pool, rr.CANDIDATE_RANGE[1]),
        )
        held_out = rr.holdout([snap.user_ids[u] for u in tune.users.tolist()], cfg.seed)
        tuned = rr.tune(tune_q, tune.targets, held_out, cfg.reranker, cfg.reranker_budget, cfg.seed)
        booster, rerank_info, depth = tuned.booster, tuned.info, tuned.params.candidates
        if tuned.study is not None:
            studies["reranker"] = tuned.study
    if booster is not None:
        eval_q = rr.queries(
            table,
            _contexts(evals.users, exclude, feats, sm),
            retrieved(evals.users, eval_pool, depth),
        )
        lists = rr.rerank(booster, eval_q, depth)
        report_into(warm, f"{base}+reranker", lists, evals.targets, snap.n_items)
        decisions["reranker"] = decide(
            "reranker", warm[f"{base}+reranker"], warm[base], base, cfg.seed
        )
    forced = cfg.reranker_mode == "always"
    use_reranker = booster is not None and (decisions["reranker"].served or forced)
    served = f"{base}+reranker" if use_reranker else base
    lap("reranker")

    js = jy.build(
        snap, feats.book_subjects, cfg.seed, cfg.journey_folds, max_users=cfg.max_journey_users
    )
    personal = (als_params, ii_params if base != "als" else None, weight, cfg.blend_candidates)
    new = evaluate_new_users(
        snap, feats, sm, vectors, js, personal, cfg.popularity_weights, cfg.prior_strength, cfg.seed
    )
    lap("journeys")

    metrics: dict[str, Any] = {
        "split_id": snap.split_id,
        "eval_users": len(evals.users),
        "tune_users": len(tune.users),
        "warm": {k: v.row() for k, v in warm.items()},
        **journey_metrics(new, js.timed),
        "als": {"chosen": asdict(als_params), "study": als_study.summary()},
        "item_item": {
            **(decisions["item_item"].row() if "item_item" in decisions else {"served": False}),
            **blend_info,
            **({"study": studies["item_item"].summary()} if "item_item" in studies else {}),
            **({"rp3_study": studies["rp3"].summary()} if "rp3" in studies else {}),
        },
        "reranker": rerank_info
        | (
            decisions["reranker"].row() | {"served": use_reranker, "forced": forced}
            if "reranker" in decisions
            else {"served": False, "reason": rerank_info.get("reason", "switched off (rerank off)")}
        ),
        "subject_model": {"pooling": sm.pooling, "history": sm.history},
        "served": served,
    }
    curves = {f"warm/{k}": v.ndcg_curve for k, v in warm.items()}
    curves.update({f"cold/{k}": v.ndcg_curve for k, v in new.reports.get(jy.SUBJECTS, {}).items()})
    served_ii = ii_params if base != "als" else None
    return Models(
        als_params=als_params,
        als=als,
        subject=sm,
        book_subject_vectors=vectors,
        booster=booster,
        use_reranker=use_reranker,
        item_item_params=served_ii,
        blend_weight=weight,
        blend_candidates=cfg.blend_candidates,
        history_foldin=new.settings.shrink_k is not None,
        popularity_weight=new.settings.cold_start_weight,
        new_users=new.settings,
        metrics=metrics,
        curves=curves,
        studies=studies,
        stage_seconds=times,
    )


def evaluate_test_baselines(
    snap: Snapshot, feats: Features, als: ALSModel, seed: int, max_users: int
) -> dict[str, Any]:
    """Popularity and ALS on the test part: run once per split, to show the pipeline is honest."""
    # Both halves: nothing was tuned on the test part.
    # Half the cap from each half: as many users as one eval half, at half the cost.
    tune, evals = warm_sets(snap, TEST, seed, max(1, max_users // 2))
    users = np.concatenate([tune.users, evals.users])
    targets = tune.targets + evals.targets
    exclude = part_matrix(snap) + part_matrix(snap, VAL)
    out: dict[str, RankingReport] = {}
    report_into(
        out,
        "test/popularity",
        popularity_lists(feats.popularity.prior, users, exclude),
        targets,
        snap.n_items,
    )
    report_into(out, "test/als", als_lists(als, users, exclude), targets, snap.n_items)
    return {k: v.row() for k, v in out.items()}
