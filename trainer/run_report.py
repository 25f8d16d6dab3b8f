"""What every run step shares: its result, its stage timer, the split settings it
uses and the table it prints. Kept apart from pipeline.py so the training step
(training.py) needs nothing from the pipeline that calls it."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bookrec.log import kv
from trainer import progress
from trainer.config import TrainerConfig
from trainer.evaluation.split import SplitConfig

log = logging.getLogger("trainer")


@dataclass(frozen=True)
class RunResult:
    artifact: Path
    split_id: str
    stage_seconds: dict[str, float]
    metrics: dict[str, Any]
    refused: str | None  # why the quality gate kept the artifact unpublished


@contextmanager
def stage(name: str, times: dict[str, float]) -> Iterator[None]:
    """Times a run step into ``times``, with its log lines and its progress line
    (trainer/progress.py: a ticking bar on a terminal)."""
    log.info("stage started", extra=kv(stage=name))
    start = time.perf_counter()
    with progress.task(name):
        yield
    times[name] = round(time.perf_counter() - start, 3)
    log.info("stage done", extra=kv(stage=name, seconds=times[name]))


def split_config(cfg: TrainerConfig) -> SplitConfig:
    return SplitConfig(
        cfg.seed, cfg.val_fraction, cfg.test_fraction, cfg.cold_user_fraction, cfg.min_holdout
    )


def served_ndcg(metrics: Mapping[str, Any]) -> float | None:
    try:
        return float(metrics["warm"][metrics["served"]]["ndcg@10"])
    except (KeyError, TypeError, ValueError):
        return None


def metrics_table(metrics: Mapping[str, Any]) -> str:
    """The markdown table printed at the end of training."""
    lines = [
        "| users | strategy | Recall@10 | Recall@50 | NDCG@10 [95% CI] | MAP@10 | Coverage@10 |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for group in ("warm", "cold", "history"):
        for name, row in metrics.get(group, {}).items():
            served = " (served)" if group == "warm" and name == metrics.get("served") else ""
            low, high = row.get("ndcg@10_ci", (None, None))
            lines.append(
                f"| {group} ({row['users']}) | {name}{served} | {row['recall@10']} | "
                f"{row['recall@50']} | {row['ndcg@10']} [{low}, {high}] | {row['map@10']} | "
                f"{row['coverage@10']} |"
            )
    lines.append("")
    for name in ("item_item", "reranker", "new_user_history", "cold_start", "holdout"):
        decision = metrics.get(name)
        if decision:
            lines.append(f"{name}: {decision.get('reason', '')}")
    return "\n".join(lines)


def timestamp_hint(cfg: TrainerConfig, metrics: Mapping[str, Any]) -> str:
    """One line when the generic importer got no timestamps (issue 22 item 5): the holdout
    was random, so say how to make it time-ordered; empty otherwise."""
    timed = metrics.get("holdout", {}).get("timed", True)
    if timed or not (cfg.data_dir / "interactions.csv").is_file():
        return ""
    return (
        "note: interactions.csv has no timestamps, so the holdout was random and the figures "
        "above are optimistic for time-ordered use; add a 4th column (unix seconds or "
        "ISO-8601, e.g. 2024-05-01) for a time-ordered split"
    )


def short_study_note(cfg: TrainerConfig) -> str:
    """For a run's summary line: that its settings search was shorter than the default
    one (make run's first model) and what runs the full one; empty otherwise."""
    full = TrainerConfig()
    if cfg.study_trials >= full.study_trials and cfg.study_seconds >= full.study_seconds:
        return ""
    return (
        f"; a short settings search ({cfg.study_trials} trial{'s' * (cfg.study_trials != 1)}, "
        f"{cfg.study_seconds:g} s): "
        f"`make train` runs the full one ({full.study_trials} trials, "
        f"{full.study_seconds:g} s) and the server loads its model live"
    )
