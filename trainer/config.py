"""Trainer configuration: one typed place, defaults < environment < flags.

Every field can be set by an environment variable BOOKREC_TRAIN_<FIELD> (upper
case) and by the matching command-line flag.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

ENV_PREFIX = "BOOKREC_TRAIN_"


@dataclass(frozen=True)
class TrainerConfig:
    data_dir: Path = Path("data")
    artifacts_dir: Path = Path("artifacts")
    # sqlite:///PATH (embedded default) or mysql://USER:PASSWORD@HOST:PORT/DB (asyncmy)
    store_url: str = "sqlite:///data/bookrec.sqlite"
    seed: int = 0
    # cleaning: users / works with fewer interactions are dropped (to a fixed point)
    min_user_interactions: int = 1
    min_work_interactions: int = 1
    # split
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    cold_user_fraction: float = 0.05
    min_holdout: int = 5
    max_subjects: int = 1000
    # models (docs/models.md); the ALS fields above are the base of every grid point
    als_grid: str = "factors=128,256;alpha=10,20;regularization=1.0;scheme=log"
    subject_dim: int = 32
    subject_pooling: str = "attention"
    subject_epochs: int = 4
    rerank_candidates: int = 300
    rerank_trees: int = 150
    reranker_min_gain: float = 0.02
    max_eval_users: int = 4000
    # quality gate: refuse to publish when NDCG@10 drops more than this below the
    # published artifact's on the same split
    gate_tolerance: float = 0.01
    factors: int = 64
    regularization: float = 0.05
    iterations: int = 12
    alpha: float = 10.0
    threads: int = 0
    prior_strength: float = 10.0
    min_subject_books: int = 2

    @staticmethod
    def from_env(environ: dict[str, str] | None = None) -> TrainerConfig:
        env = os.environ if environ is None else environ
        cfg = TrainerConfig()
        updates: dict[str, Any] = {}
        for f in fields(TrainerConfig):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                updates[f.name] = _parse(f.name, type(getattr(cfg, f.name)), raw)
        return replace(cfg, **updates)

    def override(self, **values: Any) -> TrainerConfig:
        """Apply flags that were given (None means not given)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def _parse(name: str, kind: type, raw: str) -> Any:
    try:
        return Path(raw) if kind is Path else kind(raw)
    except ValueError as e:
        raise ValueError(f"{ENV_PREFIX}{name.upper()}={raw!r}: expected {kind.__name__}") from e
