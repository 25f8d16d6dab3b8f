"""The settings search: an Optuna study per model, on the data at hand.

Nothing here is fitted to one data set: the ranges are wide (factors 8-512 on a
log scale, regularisation and alpha over five decades, the confidence scheme,
which explicit ratings count as positive), the TPE sampler is seeded, and a
trial budget and a wall-clock budget bound the search. Each ALS trial reports
its score part way through its iterations, on a subset of the tune users, and
the median pruner stops the ones far behind. Every trial is recorded
(``Study.trials``) for the manifest and plotted (trainer/evaluation/plots.py).

Trials are scored by NDCG@10 on the tune half of the validation users
(trainer/evaluation/protocol.py): the eval half stays for the figures and decisions.
"""

from __future__ import annotations

import logging
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import optuna

from bookrec.log import kv
from trainer import progress as bars
from trainer.errors import InputError, ModelFitError
from trainer.models import shared_study
from trainer.models.als import ALSModel, ALSParams, train_als
from trainer.models.shared_study import PublishClaim, SharedStudy

log = logging.getLogger("trainer.models.study")
PRUNE_USERS = 1000  # tune users scored at a checkpoint: enough to rank, cheap to score


@dataclass(frozen=True)
class StudyBudget:
    trials: int = 30
    seconds: float = 300.0  # the search stops at whichever comes first

    def __post_init__(self) -> None:
        if self.trials < 1 or self.seconds <= 0:
            raise InputError(
                f"study budget: --study-trials must be >= 1 and --study-seconds > 0, got "
                f"{self.trials}, {self.seconds}"
            )


@dataclass
class StudyResult:
    best_value: float
    best_params: dict[str, Any]
    trials: list[dict[str, Any]]
    seconds: float
    stopped_by: str  # "trials" or "time"
    best_number: int = -1  # the best trial's number in the study
    # A study shared by several trainers (trainer/models/shared_study.py): its name and
    # hosts, and this trainer's claim to publish (held until the artifact is written).
    shared: dict[str, Any] | None = None
    claim: PublishClaim | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "best_value": round(self.best_value, 4),
            "best_params": self.best_params,
            "n_trials": len(self.trials),
            "pruned": sum(t["state"] == "PRUNED" for t in self.trials),
            "seconds": round(self.seconds, 1),
            "stopped_by": self.stopped_by,
            "trials": self.trials,
            **({"shared": self.shared} if self.shared is not None else {}),
        }


def _quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def run_study(
    name: str,
    objective: Callable[[optuna.Trial], float],
    budget: StudyBudget,
    seed: int,
    enqueue: list[dict[str, Any]] | None = None,
    prune: bool = True,
    shared: SharedStudy | None = None,
) -> StudyResult:
    """Maximise ``objective``; trials that raise ModelFitError are recorded as failed.

    With ``shared``, the study is the one several trainers share (shared_study.py): its
    budget and clock are the study's, and this trainer returns only when it is to
    publish (``StudyResult.claim``); otherwise it raises StudyJoined."""
    _quiet()
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0)
        if prune
        else optuna.pruners.NopPruner()
    )
    startup = max(3, min(10, budget.trials // 3))
    start = time.perf_counter()
    if shared is None:
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
        study = optuna.create_study(
            study_name=name, direction="maximize", sampler=sampler, pruner=pruner
        )
        for params in enqueue or []:
            study.enqueue_trial(params)
        seconds_left = budget.seconds
    else:
        # Each trainer draws its own points (a seed of its own), and a running trial's
        # point counts as taken (constant liar), so trainers do not repeat each other.
        sampler = optuna.samplers.TPESampler(
            seed=random.SystemRandom().randrange(2**31),
            n_startup_trials=startup,
            constant_liar=True,
        )
        study, deadline = shared_study.join(shared, sampler, pruner, budget.seconds, enqueue or [])
        seconds_left = deadline - time.time()
        if hasattr(objective, "deadline"):  # AlsSearch stops a trial that would overrun
            objective.deadline = time.perf_counter() + seconds_left

    def progress(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        best = best_so_far(study)
        log.info(
            "study trial",
            extra=kv(
                study=name,
                trial=f"{trial.number + 1}/{budget.trials}",
                state=trial.state.name,
                value=None if trial.value is None else round(trial.value, 4),
                best=None if best is None else round(best, 4),
                elapsed_s=round(time.perf_counter() - start, 1),
                **{k: _round(v) for k, v in trial.params.items()},
            ),
        )

    def shared_budget(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if shared_study.budget_reached(study, budget.trials):
            study.stop()

    def here(trial: optuna.Trial) -> float:
        trial.set_user_attr("host", shared_study.HOST)
        return objective(trial)

    with bars.task(f"{name} study", budget.trials, "trials") as bar:

        def advance(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            best = best_so_far(study)
            bar.advance(note=None if best is None else f"best {best:.4f}")

        if shared is None:
            study.optimize(
                objective,
                n_trials=budget.trials,
                timeout=budget.seconds,
                catch=(ModelFitError,),
                callbacks=[progress, advance],
            )
        elif seconds_left > 0 and not shared_study.budget_reached(study, budget.trials):
            study.optimize(
                here,
                n_trials=budget.trials,
                timeout=seconds_left,
                catch=(ModelFitError,),
                callbacks=[progress, advance, shared_budget],
            )
    claim = None
    if shared is not None:
        shared_study.settle(study, shared)
        # Before the best is read: every trainer reads it once all trials are over.
        claim = shared_study.claim_publish(shared, study)
    seconds = time.perf_counter() - start
    all_trials = study.get_trials(deepcopy=False)
    done = [t for t in all_trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        if claim is not None:
            claim.finish({"status": "failed", "artifact": None})
        raise ModelFitError(f"the {name} study completed no trial: see the failed trials' log")
    trials = [
        {
            "number": t.number,
            "state": t.state.name,
            "value": None if t.value is None else round(t.value, 4),
            "params": {k: _round(v) for k, v in t.params.items()},
            "intermediate": {str(k): round(v, 4) for k, v in t.intermediate_values.items()},
            "seconds": None if t.duration is None else round(t.duration.total_seconds(), 2),
            **({"host": t.user_attrs["host"]} if "host" in t.user_attrs else {}),
        }
        for t in all_trials
    ]
    if shared is None:
        stopped = "trials" if len(all_trials) >= budget.trials else "time"
        info = None
    else:
        stopped = "trials" if shared_study.counted(all_trials) >= budget.trials else "time"
        info = shared_study.describe(shared, all_trials)
    best = study.best_trial
    return StudyResult(
        float(best.value or 0.0),
        dict(best.params),
        trials,
        seconds,
        stopped,
        best.number,
        info,
        claim,
    )


def best_so_far(study: optuna.Study) -> float | None:
    """The best value of the completed trials; None while none has completed (a first
    trial that failed), where Optuna's ``best_trial`` / ``best_value`` raise."""
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return study.best_value if done else None


def _round(v: Any) -> Any:
    return round(v, 5) if isinstance(v, float) else v


def suggest_als(trial: optuna.Trial, base: ALSParams, explicit: bool) -> ALSParams:
    """One point of the ALS space; ``explicit``: the data has ratings 1..10 to threshold.

    Spark MLlib's λ is per rating (ALS-WR: times the user's or item's count), so its
    study searches its own, lower range; its iterations stop at 20 (the lineage of a
    longer fit needs checkpoints on the cluster's storage)."""
    spark = base.engine == "spark"
    return replace(
        base,
        factors=trial.suggest_int("factors", 8, 512, log=True),
        regularization=trial.suggest_float(
            "regularization", *((1e-4, 10.0) if spark else (1e-3, 100.0)), log=True
        ),
        alpha=trial.suggest_float("alpha", 0.05, 100.0, log=True),
        iterations=trial.suggest_int("iterations", 4, 20 if spark else 30),
        scheme=trial.suggest_categorical("scheme", ["rating", "log", "binary"]),
        min_rating=trial.suggest_int("min_rating", 1, 9) if explicit else 0,
    )


def als_point(params: ALSParams, explicit: bool) -> dict[str, Any]:
    """An ALSParams as study parameters (for enqueueing a known point)."""
    point = {
        k: v
        for k, v in asdict(params).items()
        if k in ("factors", "regularization", "alpha", "iterations", "scheme")
    }
    if explicit:
        point["min_rating"] = max(1, params.min_rating)
    return point


@dataclass
class AlsSearch:
    """The ALS study's objective; keeps the best model so it is not fitted twice."""

    fit_matrix: Callable[[ALSParams], Any]  # params -> the confidence matrix
    score: Callable[[ALSModel, bool], float]  # (model, quick) -> NDCG@10 on tune users
    base: ALSParams
    explicit: bool
    best: tuple[float, ALSParams, ALSModel] | None = None
    best_number: int = -1  # the study's number of the trial ``best`` came from
    # perf_counter time the study's clock runs out: Optuna only checks it between
    # trials, so a trial whose projected end lies past it stops at its checkpoint.
    deadline: float = float("inf")

    def __call__(self, trial: optuna.Trial) -> float:
        params = suggest_als(trial, self.base, self.explicit)
        started = time.perf_counter()

        def checkpoint(iteration: int, model: ALSModel) -> None:
            trial.report(self.score(model, True), step=0)
            if trial.should_prune():
                raise optuna.TrialPruned()
            projected = started + (time.perf_counter() - started) * params.iterations / iteration
            completed = self.best is not None or best_so_far(trial.study) is not None
            if completed and projected > self.deadline:
                trial.set_user_attr("stopped", "over the study's time budget")
                raise optuna.TrialPruned()

        model = train_als(
            self.fit_matrix(params),
            params,
            checkpoints=[max(2, params.iterations // 3)],
            report=checkpoint,
        )
        value = self.score(model, False)
        if not np.isfinite(value):
            raise ModelFitError(f"ALS trial scored {value}")
        if self.best is None or value > self.best[0]:
            self.best = (value, params, model)
            self.best_number = trial.number
        return value

    def chosen(self, result: StudyResult) -> tuple[ALSParams, ALSModel]:
        """The study's best point and its model: this trainer's own when it ran that
        trial, else fitted again here (a shared study's best may come from another
        host; the seeded fit gives the same factors)."""
        if self.best is not None and result.best_number == self.best_number:
            return self.best[1], self.best[2]
        params = als_params(result.best_params, self.base)
        log.info("fitting the shared study's best point", extra=kv(**asdict(params)))
        return params, train_als(self.fit_matrix(params), params)


def als_params(point: dict[str, Any], base: ALSParams) -> ALSParams:
    """The ALSParams of a study point (``suggest_als``'s names)."""
    names = ("factors", "regularization", "alpha", "iterations", "scheme", "min_rating")
    return replace(base, **{k: v for k, v in point.items() if k in names})
