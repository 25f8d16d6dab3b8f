"""Trainer configuration: one typed place, defaults < environment < flags.

Every field can be set by an environment variable BOOKREC_TRAIN_<FIELD> (upper
case) and by the matching command-line flag. Booleans read 1/0, true/false,
yes/no, on/off.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from trainer.errors import InputError

ENV_PREFIX = "BOOKREC_TRAIN_"


@dataclass(frozen=True)
class TrainerConfig:
    data_dir: Path = Path("data")
    artifacts_dir: Path = Path("artifacts")
    # sqlite:///PATH or mysql://USER:PASSWORD@HOST:PORT/DB (asyncmy); unset, the store
    # lies beside the data: sqlite:///<data_dir>/bookrec.sqlite (see `store`)
    store_url: str | None = None
    # a store holds one data set; loading another into it is refused unless this is set
    allow_mixed_data: bool = False
    # bring-your-own data (interactions.csv, trainer/sources/generic.py): the values are
    # "explicit" ratings on rating_scale ("LOW..HIGH", mapped onto 1..10) or "implicit"
    # positive counts (plays, clicks); bad rows fail the import unless skip_bad_rows
    interaction_kind: str = "explicit"
    rating_scale: str = "1..10"
    skip_bad_rows: bool = False
    seed: int = 0
    # cleaning: users / works with fewer interactions are dropped (to a fixed point)
    min_user_interactions: int = 1
    min_work_interactions: int = 1
    # split
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    # Held out whole to judge cold start and users unknown to the model; the refit
    # puts them back, so a larger share costs the served model nothing.
    cold_user_fraction: float = 0.1
    min_holdout: int = 5
    max_subjects: int = 1000
    # models (docs/models.md). The settings search: an Optuna study per model, bounded
    # by trials and by seconds (whichever comes first; the seconds are shared by the
    # studies: two thirds to ALS, a third to item-item). 210 s keeps a bookcrossing-scale
    # run (105k users, 190k books) near 10 minutes on 2 cores; Last.fm's studies end
    # by their trial budget in under a minute.
    study_trials: int = 30
    study_seconds: float = 210.0
    # Points the ALS study tries first, e.g. "factors=64;alpha=1,10" (cartesian product)
    als_grid: str = ""
    item_item: bool = True  # EASE over the catalogue's head as a second candidate source
    item_item_max_items: int = 6000
    item_item_trials: int = 6
    subject_dim: int = 32
    subject_pooling: str = "attention"
    subject_epochs: int = 4
    # The reranker: "auto" fits it and serves it only when it beats what it reranks,
    # "always" serves it whatever the figures say (recorded as forced), "off" skips it.
    rerank: str = "auto"
    rerank_candidates: int = 300
    rerank_trees: int = 150
    max_eval_users: int = 4000
    # quality gate: refuse to publish when NDCG@10 drops more than this below the
    # published artifact's on the same split
    gate_tolerance: float = 0.01
    threads: int = 0
    prior_strength: float = 10.0
    min_subject_books: int = 2
    # The servers' shared rating log (docs/fleet.md): nats://HOST:PORT/STREAM. Each run
    # reads all of it, besides <data_dir>/feedback/ratings.jsonl when that exists.
    # Empty: the local file alone (one machine).
    rating_log: str = ""
    # After the local publish, upload the version to s3://BUCKET/PREFIX (manifest last;
    # docs/fleet.md); empty = the local folder only. Credentials: the AWS variables.
    publish_to: str = ""
    # S3 API other than AWS (MinIO, moto): http://HOST:PORT; empty = BOOKREC_S3_ENDPOINT,
    # else AWS (or AWS_ENDPOINT_URL)
    s3_endpoint: str = ""

    @property
    def store(self) -> str:
        """The store URL in effect: ``store_url``, else a SQLite file in the data directory."""
        if self.store_url:
            return self.store_url
        return f"sqlite:///{self.data_dir / 'bookrec.sqlite'}"

    @staticmethod
    def from_env(environ: dict[str, str] | None = None) -> TrainerConfig:
        env = os.environ if environ is None else environ
        cfg = TrainerConfig()
        updates: dict[str, Any] = {}
        for f in fields(TrainerConfig):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                kind = _KINDS.get(f.name) or type(getattr(cfg, f.name))
                updates[f.name] = _parse(f.name, kind, raw)
        return replace(cfg, **updates)

    def override(self, **values: Any) -> TrainerConfig:
        """Apply flags that were given (None means not given)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


# Fields whose default (None) does not tell their type.
_KINDS: dict[str, type] = {"store_url": str}
_BOOLS = {"1": True, "true": True, "yes": True, "on": True}
_BOOLS |= {"0": False, "false": False, "no": False, "off": False}


def _parse(name: str, kind: type, raw: str) -> Any:
    if kind is bool:
        value = _BOOLS.get(raw.strip().lower())
        if value is None:
            raise InputError(f"{ENV_PREFIX}{name.upper()}={raw!r}: expected 1/0, true/false")
        return value
    try:
        return Path(raw) if kind is Path else kind(raw)
    except ValueError as e:
        raise InputError(f"{ENV_PREFIX}{name.upper()}={raw!r}: expected {kind.__name__}") from e
