"""The training pipeline: ingest -> clean -> store -> frozen split -> export ->
features -> models -> artifact. Each step is also a CLI command of its own."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bookrec.artifact import clean_stale_tmp
from bookrec.log import kv
from trainer.als import ALSParams, confidence_matrix, train_als
from trainer.cleaning import CleanData, clean
from trainer.config import TrainerConfig
from trainer.export import params_of, write_artifact
from trainer.features import build_features
from trainer.ingest import read_data_dir
from trainer.interactions import KCore
from trainer.snapshot import Snapshot
from trainer.split import TRAIN, SplitConfig
from trainer.store.store import LoadSummary, Store

log = logging.getLogger("trainer")


@dataclass(frozen=True)
class RunResult:
    artifact: Path
    split_id: str
    stage_seconds: dict[str, float]


@contextmanager
def stage(name: str, times: dict[str, float]) -> Iterator[None]:
    log.info("stage started", extra=kv(stage=name))
    start = time.perf_counter()
    yield
    times[name] = round(time.perf_counter() - start, 3)
    log.info("stage done", extra=kv(stage=name, seconds=times[name]))


def split_config(cfg: TrainerConfig) -> SplitConfig:
    return SplitConfig(
        cfg.seed, cfg.val_fraction, cfg.test_fraction, cfg.cold_user_fraction, cfg.min_holdout
    )


def clean_data_dir(cfg: TrainerConfig, times: dict[str, float]) -> CleanData:
    with stage("read", times):
        raw = read_data_dir(cfg.data_dir)
    with stage("clean", times):
        data = clean(raw, KCore(cfg.min_user_interactions, cfg.min_work_interactions))
    log.info("cleaning report\n" + data.report.markdown())
    return data


async def ingest(cfg: TrainerConfig, times: dict[str, float]) -> LoadSummary:
    """Read and clean the data directory, then load it into the store."""
    data = clean_data_dir(cfg, times)
    async with await Store.open(cfg.store_url, progress=log.info) as store:
        with stage("load", times):
            return await store.load(data)


async def freeze_and_export(store: Store, cfg: TrainerConfig, times: dict[str, float]) -> Snapshot:
    with stage("split", times):
        split_id = await store.freeze_split(split_config(cfg))
    with stage("export", times):
        return await store.export(split_id)


async def run(cfg: TrainerConfig) -> RunResult:
    """The whole pipeline; the run is recorded in the store's runs table."""
    times: dict[str, float] = {}
    clean_stale_tmp(cfg.artifacts_dir)
    data = clean_data_dir(cfg, times)
    async with await Store.open(cfg.store_url, progress=log.info) as store:
        run_id = await store.start_run()
        split_id: str | None = None
        try:
            with stage("load", times):
                await store.load(data)
            del data
            snap = await freeze_and_export(store, cfg, times)
            split_id = snap.split_id
            result = train_and_publish(cfg, snap, times)
        except BaseException as e:
            await store.finish_run(run_id, "failed", split_id, message=f"{type(e).__name__}: {e}")
            raise
        await store.finish_run(
            run_id, "published", split_id, result.artifact.name, metrics={"seconds": times}
        )
    log.info("artifact published", extra=kv(path=str(result.artifact), split_id=split_id, **times))
    return result


def train_and_publish(cfg: TrainerConfig, snap: Snapshot, times: dict[str, float]) -> RunResult:
    with stage("features", times):
        feats = build_features(snap, cfg.min_subject_books, cfg.max_subjects, cfg.prior_strength)
    als_params = ALSParams(
        cfg.factors, cfg.regularization, cfg.iterations, cfg.alpha, cfg.seed, cfg.threads
    )
    train = snap.mask(TRAIN)
    with stage("als", times):
        conf = confidence_matrix(
            snap.users[train],
            snap.items[train],
            snap.ratings[train],
            snap.n_users,
            snap.n_items,
            cfg.alpha,
        )
        als = train_als(conf, als_params)
    with stage("artifact", times):
        artifact = write_artifact(
            cfg.artifacts_dir,
            snap,
            feats,
            als,
            params={
                "als": params_of(als_params),
                "split": params_of(split_config(cfg)),
                "prior_strength": cfg.prior_strength,
            },
            counts={**snap.counts(), "subjects": len(feats.vocab.slugs)},
        )
    return RunResult(artifact, snap.split_id, times)
