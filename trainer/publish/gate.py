"""The quality gate: a new model is published only when the served strategy's NDCG@10
is not more than ``gate_tolerance`` below the published artifact's on the same split.

The gate fails closed: when it cannot read either figure (missing, not a number,
NaN, outside [0, 1]) it cannot decide, so it refuses, and says what is missing and
how to publish by hand. It reads only the manifests the trainer writes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from bookrec.artifact import REJECTED_PREFIX, newest_valid
from trainer.config import TrainerConfig

METRIC = "ndcg@10"
_BY_HAND = (
    f"to publish it anyway, check its evaluation.json, then rename its directory from "
    f"{REJECTED_PREFIX}<version> to <version> (docs/models.md, Publishing)"
)


class Unreadable(Exception):
    """The served figure is missing or malformed; the message names which."""


def served_figure(metrics: Mapping[str, Any]) -> float:
    """``metrics.warm[metrics.served]["ndcg@10"]``, a number in [0, 1], or Unreadable."""
    if not isinstance(metrics, Mapping):
        raise Unreadable(f"metrics is {_shown(metrics)}, not an object")
    served = metrics.get("served")
    if not isinstance(served, str) or not served:
        raise Unreadable(f"metrics.served is {_shown(served)}")
    warm = metrics.get("warm")
    row = warm.get(served) if isinstance(warm, Mapping) else None
    if not isinstance(row, Mapping):
        raise Unreadable(f"metrics.warm.{served} (the served strategy's row) is missing")
    value = row.get(METRIC)
    where = f"metrics.warm.{served}.{METRIC}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unreadable(f"{where} is {_shown(value)}, not a number")
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise Unreadable(f"{where} is {value}, outside [0, 1]")
    return float(value)


def _shown(value: object) -> str:
    return "missing" if value is None else repr(value)[:60]


def quality_gate(cfg: TrainerConfig, split_id: str, metrics: Mapping[str, Any]) -> str | None:
    """Why the new model must not be published, or None when it may be."""
    try:
        new = served_figure(metrics)
    except Unreadable as e:
        return (
            f"the quality gate cannot decide: this run's evaluation is unreadable ({e}), a "
            f"bug or degenerate data: see the run's log; {_BY_HAND}"
        )
    current = newest_valid(cfg.artifacts_dir, check_hashes=False)
    if current is None or current[1].split_id != split_id:
        return None  # nothing to compare with on this split
    try:
        old = served_figure(current[1].metrics)
    except Unreadable as e:
        return (
            f"the quality gate cannot decide: the published {current[0].name}'s manifest.json "
            f"is unreadable ({e}), so the new model cannot be compared with it; check that "
            f"artifact (written by another trainer, or edited?); {_BY_HAND}"
        )
    if new >= old - cfg.gate_tolerance:
        return None
    return (
        f"NDCG@10 {new:.4f} is below the published {current[0].name}'s {old:.4f} on split "
        f"{split_id} by more than the tolerance {cfg.gate_tolerance}"
    )
