"""Trainer configuration: one typed place, defaults < environment < flags.

Every field can be set by an environment variable BOOKREC_TRAIN_<FIELD> (upper
case) and by the matching command-line flag, read and checked by the loader the
server uses too (bookrec/settings.py): booleans read 1/0, true/false, yes/no,
on/off; counts and budgets have bounds, and a bad value is one error naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bookrec import settings
from bookrec.pooling import POOLINGS
from bookrec.settings import above, at_least, one_of
from trainer.errors import InputError

ENV_PREFIX = "BOOKREC_TRAIN_"
# Flags whose name is not the field's (--data for data_dir ...).
_FLAGS = {
    "data_dir": "--data",
    "artifacts_dir": "--artifacts",
    "store_url": "--store",
    "interaction_kind": "--interactions",
}


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
    interaction_kind: str = one_of("explicit", ("explicit", "implicit"))
    rating_scale: str = "1..10"
    skip_bad_rows: bool = False
    seed: int = 0
    # cleaning: users / works with fewer interactions are dropped (to a fixed point)
    min_user_interactions: int = at_least(1, 1)
    min_work_interactions: int = at_least(1, 1)
    # split
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    # Held out whole to judge cold start and users unknown to the model; the refit
    # puts them back, so a larger share costs the served model nothing.
    cold_user_fraction: float = 0.1
    min_holdout: int = at_least(5, 0)
    max_subjects: int = at_least(1000, 1)
    # models (docs/models.md). The settings search: an Optuna study per model, bounded
    # by trials and by seconds (whichever comes first; the seconds are shared by the
    # studies: two thirds to ALS, a third to item-item). 210 s keeps a bookcrossing-scale
    # run (105k users, 190k books) near 10 minutes on 2 cores; Last.fm's studies end
    # by their trial budget in under a minute.
    study_trials: int = at_least(30, 1)
    study_seconds: float = above(210.0, 0)
    # Points the ALS study tries first, e.g. "factors=64;alpha=1,10" (cartesian product)
    als_grid: str = ""
    # One ALS study shared by the trainers of several hosts (trainer/models/shared_study.py):
    # the MariaDB they share (mysql://USER:PASSWORD@HOST:PORT/DB) and the study's name
    # (empty: als-<split id>); the study's trials and clock are theirs together, and one of
    # them publishes. Empty storage: the study is this trainer's own.
    study_storage: str = ""
    study_name: str = ""
    study_heartbeat_seconds: int = at_least(10, 1)
    # Who fits ALS: "implicit" here, or "spark": Spark MLlib on the cluster at spark_master
    # (spark://HOST:7077, local[N]), trainer/models/spark_als.py; spark_memory: the heap of
    # the Spark driver and of each executor
    als_engine: str = one_of("implicit", ("implicit", "spark"))
    spark_master: str = ""
    spark_memory: str = "512m"
    item_item: bool = True  # EASE over the catalogue's head as a second candidate source
    # EASE's dense fit takes every book read twice or more while 24 * books² bytes fit
    # item_item_memory_mb (or half the free memory, when less); item_item_max_items caps it
    item_item_max_items: int = at_least(0, 1, zero_means="as many as the memory budget allows")
    item_item_memory_mb: float = at_least(2048.0, 1)
    item_item_trials: int = at_least(6, 1)
    subject_dim: int = at_least(32, 1)
    subject_pooling: str = one_of("attention", POOLINGS)
    subject_epochs: int = at_least(4, 1)
    # The reranker: "auto" fits it and serves it only when it beats what it reranks,
    # "always" serves it whatever the figures say (recorded as forced), "off" skips it.
    rerank: str = one_of("auto", ("auto", "always", "off"))
    rerank_candidates: int = at_least(300, 1)
    rerank_trees: int = at_least(150, 1)
    max_eval_users: int = at_least(4000, 1)
    # quality gate: refuse to publish when NDCG@10 drops more than this below the
    # published artifact's on the same split
    gate_tolerance: float = at_least(0.01, 0)
    threads: int = at_least(0, 1, zero_means="all cores")
    # The data pipeline's columnar engine (DuckDB, trainer/cleaning/columnar.py): the memory
    # it may hold ("4GB", "50%") before it spills to columnar_temp_dir (empty: the system's
    # temporary folder), docs/scale.md
    columnar_memory: str = "4GB"
    columnar_temp_dir: str = ""
    prior_strength: float = at_least(10.0, 0)
    min_subject_books: int = at_least(2, 1)
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
        """Defaults with the BOOKREC_TRAIN_* variables set; InputError naming a bad one."""
        env = os.environ if environ is None else environ
        try:
            return settings.from_env(TrainerConfig, ENV_PREFIX, env)
        except settings.SettingError as e:
            raise InputError(str(e)) from None

    def override(self, **values: Any) -> TrainerConfig:
        """Apply flags that were given (None means not given), checked: a bad one is an
        InputError naming the flag."""
        given = {k: v for k, v in values.items() if v is not None}
        cfg = replace(self, **given)
        flags = {k: _FLAGS.get(k, "--" + k.replace("_", "-")) for k in given}
        try:
            settings.check(cfg, flags)
        except settings.SettingError as e:
            raise InputError(str(e)) from None
        return cfg
