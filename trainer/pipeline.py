"""The training pipeline: ingest -> clean -> store -> frozen split -> export ->
features -> models -> artifact. Each step is also a CLI command of its own."""

from __future__ import annotations

import asyncio
import logging

from bookrec.artifact import clean_stale_tmp
from bookrec.log import kv
from trainer.cleaning.clean import Cleaned, clean
from trainer.cleaning.columnar import ColumnarSettings, configure
from trainer.cleaning.interactions import KCore
from trainer.config import TrainerConfig
from trainer.errors import StudyJoined
from trainer.run_report import RunResult, served_ndcg, split_config, stage
from trainer.snapshot import Snapshot
from trainer.sources.generic import ImportOptions
from trainer.sources.ingest import read_data_dir
from trainer.store.store import DataSet, LoadSummary, Store

log = logging.getLogger("trainer")


def import_options(cfg: TrainerConfig) -> ImportOptions:
    return ImportOptions(cfg.interaction_kind, cfg.rating_scale, cfg.skip_bad_rows)


def dataset_of(cfg: TrainerConfig, data: Cleaned) -> DataSet:
    return DataSet(data.source, str(cfg.data_dir.resolve()))


def clean_data_dir(cfg: TrainerConfig, times: dict[str, float]) -> Cleaned:
    """Read and clean in the columnar engine; the caller closes the result."""
    options = import_options(cfg)  # a bad setting fails before anything is read
    configure(ColumnarSettings(cfg.columnar_memory, cfg.columnar_temp_dir, cfg.threads))
    with stage("read", times):
        raw = read_data_dir(cfg.data_dir, options, cfg.rating_log)
    with stage("clean", times):
        data = clean(raw, KCore(cfg.min_user_interactions, cfg.min_work_interactions))
    log.info("cleaning report\n" + data.report.markdown())
    return data


async def ingest(cfg: TrainerConfig, times: dict[str, float]) -> LoadSummary:
    """Read and clean the data directory, then load it into the store."""
    with clean_data_dir(cfg, times) as data:
        async with await Store.open(cfg.store, progress=log.info) as store:
            with stage("load", times):
                return await store.load(data, dataset_of(cfg, data), cfg.allow_mixed_data)


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
    try:
        opened = await Store.open(cfg.store, progress=log.info)
    except BaseException:
        data.close()
        raise
    async with opened as store:
        run_id = await store.start_run()
        split_id: str | None = None
        try:
            with stage("load", times), data:
                await store.load(data, dataset_of(cfg, data), cfg.allow_mixed_data)
            # the engine's tables are gone: training has the memory
            snap = await freeze_and_export(store, cfg, times)
            split_id = snap.split_id
            from trainer.training import train_and_publish  # torch, LightGBM: load when needed

            result = await train_and_publish(cfg, snap, store, times)
        except BaseException as e:
            status = "joined" if isinstance(e, StudyJoined) else "failed"
            await store.finish_run(run_id, status, split_id, message=f"{type(e).__name__}: {e}")
            raise
        summary = {
            "seconds": times,
            "served": result.metrics.get("served"),
            "ndcg@10": served_ndcg(result.metrics),
        }
        if result.refused:
            await store.finish_run(run_id, "rejected", split_id, None, summary, result.refused)
            log.warning(
                "artifact not published",
                extra=kv(reason=result.refused, kept_at=str(result.artifact)),
            )
        else:
            await store.finish_run(run_id, "published", split_id, result.artifact.name, summary)
            log.info(
                "artifact published",
                extra=kv(path=str(result.artifact), split_id=split_id, **times),
            )
    if cfg.publish_to and not result.refused:
        from trainer.publish.bucket import publish_to_bucket

        # After the local publish: a failed upload leaves a good local version and says
        # how to upload it again (trainer upload).
        await asyncio.to_thread(publish_to_bucket, result.artifact, cfg.publish_to, cfg.s3_endpoint)
    return result
