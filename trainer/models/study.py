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
from trainer.models.als import ALSModel, ALSParams, train_als

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

    def summary(self) -> dict[str, Any]:
        return {
            "best_value": round(self.best_value, 4),
            "best_params": self.best_params,
            "n_trials": len(self.trials),
            "pruned": sum(t["state"] == "PRUNED" for t in self.trials),
            "seconds": round(self.seconds, 1),
            "stopped_by": self.stopped_by,
            "trials": self.trials,
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
) -> StudyResult:
    """Maximise ``objective``; trials that raise ModelFitError are recorded as failed."""
    _quiet()
    study = optuna.create_study(
        study_name=name,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=max(3, min(10, budget.trials // 3))
        ),
        pruner=(
            optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0)
            if prune
            else optuna.pruners.NopPruner()
        ),
    )
    for params in enqueue or []:
        study.enqueue_trial(params)
    start = time.perf_counter()

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

    with bars.task(f"{name} study", budget.trials, "trials") as bar:

        def advance(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            best = best_so_far(study)
            bar.advance(note=None if best is None else f"best {best:.4f}")

        study.optimize(
            objective,
            n_trials=budget.trials,
            timeout=budget.seconds,
            catch=(ModelFitError,),
            callbacks=[progress, advance],
        )
    seconds = time.perf_counter() - start
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise ModelFitError(f"the {name} study completed no trial: see the failed trials' log")
    trials = [
        {
            "number": t.number,
            "state": t.state.name,
            "value": None if t.value is None else round(t.value, 4),
            "params": {k: _round(v) for k, v in t.params.items()},
            "intermediate": {str(k): round(v, 4) for k, v in t.intermediate_values.items()},
            "seconds": None if t.duration is None else round(t.duration.total_seconds(), 2),
        }
        for t in study.trials
    ]
    stopped = "trials" if len(study.trials) >= budget.trials else "time"
    best = study.best_trial
    return StudyResult(float(best.value or 0.0), dict(best.params), trials, seconds, stopped)


def best_so_far(study: optuna.Study) -> float | None:
    """The best value of the completed trials; None while none has completed (a first
    trial that failed), where Optuna's ``best_trial`` / ``best_value`` raise."""
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return study.best_value if done else None


def _round(v: Any) -> Any:
    return round(v, 5) if isinstance(v, float) else v


def suggest_als(trial: optuna.Trial, base: ALSParams, explicit: bool) -> ALSParams:
    """One point of the ALS space; ``explicit``: the data has ratings 1..10 to threshold."""
    return replace(
        base,
        factors=trial.suggest_int("factors", 8, 512, log=True),
        regularization=trial.suggest_float("regularization", 1e-3, 100.0, log=True),
        alpha=trial.suggest_float("alpha", 0.05, 100.0, log=True),
        iterations=trial.suggest_int("iterations", 4, 30),
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
            if self.best is not None and projected > self.deadline:
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
        return value
