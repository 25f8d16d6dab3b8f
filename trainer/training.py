"""Models and publication: features -> studies, subject model, reranker -> evaluation
-> refit on every interaction -> quality gate -> artifact. Imported only by runs
that train (torch, LightGBM, Optuna)."""

from __future__ import annotations

import logging
from dataclasses import replace

from bookrec.pooling import POOLINGS
from trainer.config import TrainerConfig
from trainer.errors import InputError
from trainer.features import build_features
from trainer.modeling import ModelConfig, evaluate_test_baselines, train_models
from trainer.models import spark_als
from trainer.models.als import ALSParams
from trainer.models.item_item import ItemItemParams
from trainer.models.refit import refit
from trainer.models.reranker import RerankerParams
from trainer.models.shared_study import SharedStudy
from trainer.models.study import StudyBudget
from trainer.models.subject_model import SubjectModelParams
from trainer.models.tuning import parse_grid
from trainer.publish.export import params_of, write_artifact
from trainer.publish.gate import quality_gate
from trainer.run_report import RunResult, metrics_table, split_config, stage
from trainer.snapshot import Snapshot
from trainer.store.store import Store

log = logging.getLogger("trainer")


def model_config(cfg: TrainerConfig) -> ModelConfig:
    if cfg.rerank not in ("auto", "always", "off"):
        raise InputError(f"--rerank must be auto, always or off, got {cfg.rerank!r}")
    if cfg.subject_pooling not in POOLINGS:
        raise InputError(
            f"--subject-pooling {cfg.subject_pooling!r}: choose one of {', '.join(POOLINGS)}"
        )
    base = ALSParams(seed=cfg.seed, threads=cfg.threads)
    if cfg.als_engine == "spark":  # MLlib weighs λ by each solve's ratings (ALS-WR)
        spark_als.configure(spark_als.SparkSettings(cfg.spark_master, cfg.spark_memory))
        base = replace(base, engine="spark", regularization_scaling="count")
    return ModelConfig(
        seed=cfg.seed,
        als_base=base,
        als_enqueue=tuple(parse_grid(cfg.als_grid, base)) if cfg.als_grid.strip() else (),
        # The clock is shared: two thirds to ALS, a third to item-item.
        als_budget=StudyBudget(cfg.study_trials, cfg.study_seconds * 2 / 3),
        item_item=(
            ItemItemParams(max_items=cfg.item_item_max_items, memory_mb=cfg.item_item_memory_mb)
            if cfg.item_item
            else None
        ),
        item_item_trials=cfg.item_item_trials,
        item_item_seconds=cfg.study_seconds / 3,
        subject=SubjectModelParams(
            dim=cfg.subject_dim,
            pooling=cfg.subject_pooling,
            epochs=cfg.subject_epochs,
            seed=cfg.seed,
            threads=1,  # as fast as two on an idle machine, far faster on a busy one
        ),
        reranker=(
            RerankerParams(
                candidates=cfg.rerank_candidates, n_estimators=cfg.rerank_trees, seed=cfg.seed
            )
            if cfg.rerank != "off"
            else None
        ),
        reranker_mode=cfg.rerank,
        max_eval_users=cfg.max_eval_users,
    )


async def train_and_publish(
    cfg: TrainerConfig, snap: Snapshot, store: Store, times: dict[str, float]
) -> RunResult:
    with stage("features", times):
        feats = build_features(snap, cfg.min_subject_books, cfg.max_subjects, cfg.prior_strength)
    shared = SharedStudy.of(
        cfg.study_storage, cfg.study_name, snap.split_id, cfg.study_heartbeat_seconds
    )
    with stage("models", times):
        models = train_models(snap, feats, replace(model_config(cfg), als_shared=shared))
    times.update({f"models.{k}": v for k, v in models.stage_seconds.items()})
    if await store.test_evaluation(snap.split_id) is None:
        with stage("test_baselines", times):
            test = evaluate_test_baselines(snap, feats, models.als, cfg.seed, cfg.max_eval_users)
            await store.record_test_evaluation(snap.split_id, test)
        models.metrics["test_baselines_once"] = test
    log.info("evaluation\n" + metrics_table(models.metrics))
    refused = quality_gate(cfg, snap.split_id, models.metrics)
    with stage("refit", times):
        published = refit(snap, feats, models, cfg.prior_strength)
    with stage("artifact", times):
        artifact = write_artifact(
            cfg.artifacts_dir,
            snap,
            published,
            models,
            params={
                "als": params_of(models.als_params) | spark_als.manifest_params(models.als_params),
                "split": params_of(split_config(cfg)),
                "prior_strength": cfg.prior_strength,
                "rerank_candidates": cfg.rerank_candidates,
            },
            counts={**snap.counts(), "subjects": len(feats.vocab.slugs)},
            visible=refused is None,
        )
    if (claim := models.studies["als"].claim) is not None:  # a shared study: others stop
        claim.finish({"status": "rejected" if refused else "published", "artifact": artifact.name})
    return RunResult(artifact, snap.split_id, times, models.metrics, refused)
