"""`trainer run`: read the raw files, train, publish one artifact."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bookrec.artifact import clean_stale_tmp
from bookrec.log import kv
from trainer import bx_reader, openlibrary
from trainer.als import ALSParams, confidence_matrix, train_als
from trainer.catalog import build_catalog
from trainer.config import TrainerConfig
from trainer.errors import InputError
from trainer.export import params_of, write_artifact
from trainer.feedback import FEEDBACK_FILE, read_feedback
from trainer.interactions import consolidate
from trainer.popularity import bayesian_prior

log = logging.getLogger("trainer")


@dataclass(frozen=True)
class RunResult:
    artifact: Path
    split_id: str
    stage_seconds: dict[str, float]


@contextmanager
def _stage(name: str, times: dict[str, float]) -> Iterator[None]:
    log.info("stage started", extra=kv(stage=name))
    start = time.perf_counter()
    yield
    times[name] = round(time.perf_counter() - start, 3)
    log.info("stage done", extra=kv(stage=name, seconds=times[name]))


def run(cfg: TrainerConfig) -> RunResult:
    times: dict[str, float] = {}
    data = cfg.data_dir
    if not data.is_dir():
        raise InputError(f"{data}: data directory not found (run `trainer demo-data --out {data}`)")
    clean_stale_tmp(cfg.artifacts_dir)
    with _stage("read", times):
        books, books_report = bx_reader.read_books(data / bx_reader.BOOKS_FILE)
        ratings, ratings_report = bx_reader.read_ratings(data / bx_reader.RATINGS_FILE)
        users, users_report = bx_reader.read_users(data / bx_reader.USERS_FILE)
        n_users = len(users)
        editions_path = openlibrary.find(data, openlibrary.EDITIONS_FILE)
        works_path = openlibrary.find(data, openlibrary.WORKS_FILE)
        isbn_to_ol = openlibrary.read_editions(editions_path) if editions_path else {}
        ol_works = openlibrary.read_works(works_path) if works_path else {}
        for report in (books_report, ratings_report, users_report):
            log.info("read file", extra=kv(**vars(report)))
    with _stage("catalog", times):
        catalog = build_catalog(books, isbn_to_ol, ol_works, cfg.min_subject_books)
        feedback, feedback_unknown = read_feedback(data / FEEDBACK_FILE, catalog)
        inter = consolidate([*ratings, *feedback], catalog.isbn_to_item)
        log.info(
            "catalog built",
            extra=kv(
                works=len(catalog.works),
                subjects=len(catalog.vocab.slugs),
                invalid_isbns=catalog.invalid_isbns,
                isbns_without_open_library=catalog.unmapped_isbns,
                interactions=len(inter.users),
                ratings_invalid_isbn=inter.invalid_isbn,
                ratings_unknown_book=inter.unknown_book,
                ratings_merged=inter.merged,
                feedback_ratings=len(feedback),
                feedback_unknown_book=feedback_unknown,
            ),
        )
    if len(inter.users) == 0:
        raise InputError(f"{data / bx_reader.RATINGS_FILE}: no rating names a known book")
    # Until the frozen split exists every interaction trains the model; the id
    # names exactly that interaction set so artifacts stay traceable.
    split_id = f"all-{inter.fingerprint()}"
    n_items = len(catalog.works)
    als_params = ALSParams(
        cfg.factors, cfg.regularization, cfg.iterations, cfg.alpha, cfg.seed, cfg.threads
    )
    with _stage("als", times):
        conf = confidence_matrix(
            inter.users, inter.items, inter.ratings, len(inter.user_ids), n_items, cfg.alpha
        )
        als = train_als(conf, als_params)
    with _stage("popularity", times):
        pop = bayesian_prior(inter.items, inter.ratings, n_items, cfg.prior_strength)
    with _stage("export", times):
        artifact = write_artifact(
            cfg.artifacts_dir,
            catalog,
            inter,
            conf,
            als,
            pop,
            split_id,
            params={"als": params_of(als_params), "prior_strength": cfg.prior_strength},
            counts={
                "users": len(inter.user_ids),
                "users_in_file": n_users,
                "interactions": len(inter.users),
                "subjects": len(catalog.vocab.slugs),
            },
        )
    log.info("artifact published", extra=kv(path=str(artifact), split_id=split_id, **times))
    return RunResult(artifact, split_id, times)
