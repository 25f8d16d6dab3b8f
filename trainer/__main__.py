"""Trainer command line: `python -m trainer COMMAND`.

demo-data  write a synthetic Book-Crossing-format data set
ingest     read + clean --data and load it into the store
split      freeze the train/val/test split of what the store holds
export     write the store's snapshot of a split to a directory (reproducible)
run        the whole pipeline, publishing an artifact
runs       list recorded runs
upload     upload a published version to an S3-compatible bucket (docs/fleet.md)
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on two shared cores a spinning
# thread stalls torch, LightGBM and implicit several-fold (measured).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import asyncio
import logging
import resource
import sys
import time
from dataclasses import asdict
from pathlib import Path

from bookrec import log as logsetup
from bookrec.artifact import newest_valid
from bookrec.log import kv
from trainer.config import TrainerConfig
from trainer.demo import SCALES
from trainer.errors import StudyJoined, UserError
from trainer.publish.bucket import PublishError

log = logging.getLogger("trainer")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="trainer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--log-level", default="INFO")
    sub = p.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo-data", help="write a synthetic Book-Crossing-format data set")
    demo.add_argument("--out", type=Path, default=Path("data"))
    demo.add_argument("--scale", choices=sorted(SCALES), default="small")
    demo.add_argument("--seed", type=int, default=0)
    commands = {
        "ingest": "read + clean --data and load it into the store",
        "split": "freeze the split of what the store holds",
        "export": "write the store's snapshot of the split to --out",
        "run": "the whole pipeline: publish an artifact to --artifacts",
        "runs": "list recorded runs",
        "schedule": "run the pipeline on a cron expression (UTC), pruning old artifacts",
    }
    for name, text in commands.items():
        c = sub.add_parser(name, help=text)
        c.add_argument(
            "--store",
            dest="store_url",
            help="sqlite:///PATH or mysql://USER@HOST/DB (default sqlite:///DATA/bookrec.sqlite)",
        )
        c.add_argument("--data", dest="data_dir", type=Path)
        c.add_argument("--artifacts", dest="artifacts_dir", type=Path)
        c.add_argument("--seed", type=int)
        c.add_argument("--min-user-interactions", type=int)
        c.add_argument("--min-work-interactions", type=int)
        if name in ("ingest", "run", "schedule"):  # the commands that read --data
            c.add_argument(
                "--interactions",
                dest="interaction_kind",
                choices=["explicit", "implicit"],
                help="interactions.csv values: ratings (explicit) or counts (implicit)",
            )
            c.add_argument(
                "--rating-scale", help='explicit interactions.csv scale, e.g. "1..5" (-> 1..10)'
            )
            c.add_argument(
                "--skip-bad-rows",
                action="store_true",
                default=None,
                help="drop and count bad interactions.csv/items.csv rows instead of failing",
            )
            c.add_argument(
                "--allow-mixed-data",
                action="store_true",
                default=None,
                help="load this data set into a store that holds another one",
            )
            c.add_argument(
                "--columnar-memory",
                help='memory the data pipeline\'s DuckDB holds before it spills, e.g. "4GB"',
            )
            c.add_argument(
                "--columnar-temp-dir",
                help="where DuckDB spills (default: the system's temp folder)",
            )
        if name == "export":
            c.add_argument("--out", type=Path, required=True)
        if name == "schedule":
            c.add_argument("--cron", default=None, help="five cron fields, default daily 03:00")
            c.add_argument("--now", action="store_true", help="run once now and exit")
            c.add_argument("--keep", type=int, default=3, help="published artifacts to keep")
        if name in ("run", "schedule"):
            d = TrainerConfig()
            c.add_argument(
                "--study-trials",
                type=int,
                help=f"trials of each model's settings search (default {d.study_trials})",
            )
            c.add_argument(
                "--study-seconds",
                type=float,
                help=f"wall-clock budget of the settings searches (default {d.study_seconds:g}: "
                "two thirds to ALS, a third to item-item)",
            )
            c.add_argument("--threads", type=int, help="ALS threads (default 0: all cores)")
            c.add_argument(
                "--study-storage",
                help="share the ALS study with the trainers of other hosts through this "
                "MariaDB, e.g. mysql://root@DBHOST:3306/test: its trials and clock are "
                "theirs together, and one of them publishes (docs/scale.md)",
            )
            c.add_argument("--study-name", help="the shared study's name (default als-<split id>)")
            c.add_argument(
                "--als-engine",
                choices=["implicit", "spark"],
                help="fit ALS here (implicit, default) or on Spark MLlib (--spark-master)",
            )
            c.add_argument(
                "--spark-master", help="the Spark master of --als-engine spark: spark://HOST:7077"
            )
            c.add_argument(
                "--spark-memory", help="heap of the Spark driver and of each executor (512m)"
            )
            c.add_argument(
                "--als-grid",
                help='points the ALS study tries first, e.g. "factors=64,128;alpha=1;scheme=log"',
            )
            c.add_argument(
                "--item-item",
                action=argparse.BooleanOptionalAction,
                default=None,
                help="search EASE over the catalogue's head as a second candidate source "
                "(default on; served only when it beats ALS alone)",
            )
            c.add_argument(
                "--rerank",
                choices=["auto", "always", "off"],
                help="the LightGBM reranker: auto (default) serves it only when it beats what "
                "it reranks; always serves it anyway; off skips it",
            )
            c.add_argument("--subject-pooling", choices=["scalar", "vector", "attention"])
            c.add_argument("--max-eval-users", type=int)
        if name == "run":
            c.add_argument(
                "--if-missing", action="store_true", help="do nothing if a valid artifact exists"
            )
        if name in ("run", "schedule"):
            _bucket_flags(c)
    up = sub.add_parser("upload", help="upload a published version to a bucket, manifest last")
    up.add_argument("--artifacts", dest="artifacts_dir", type=Path)
    up.add_argument("--version", help="the version to upload (default: the newest valid one)")
    _bucket_flags(up)
    return p


def _bucket_flags(c: argparse.ArgumentParser) -> None:
    c.add_argument(
        "--publish-to",
        dest="publish_to",
        help="upload the published version to s3://BUCKET/PREFIX, manifest last (docs/fleet.md)",
    )
    c.add_argument(
        "--s3-endpoint",
        dest="s3_endpoint",
        help="S3 API URL other than AWS, e.g. http://127.0.0.1:9000 (env BOOKREC_S3_ENDPOINT)",
    )


_NOT_CONFIG = ("command", "log_level", "if_missing", "out", "cron", "now", "keep")


async def _dispatch(args: argparse.Namespace) -> int:
    from trainer import pipeline, progress, run_report
    from trainer.store.store import Store

    cfg = TrainerConfig.from_env().override(
        **{k: v for k, v in vars(args).items() if k not in _NOT_CONFIG}
    )
    times: dict[str, float] = {}
    if args.command == "ingest":
        summary = await pipeline.ingest(cfg, times)
        print(summary)
    elif args.command in ("split", "export"):
        async with await Store.open(cfg.store, progress=log.info) as store:
            snap = await pipeline.freeze_and_export(store, cfg, times)
        if args.command == "export":
            snap.save(args.out)
        print(snap.split_id)
    elif args.command == "schedule":
        from trainer.publish.retention import check_keep
        from trainer.schedule import DAILY, Cron, run_and_prune, schedule

        cron = Cron.parse(args.cron or DAILY)
        check_keep(args.keep)
        if args.now:
            return 0 if await run_and_prune(cfg, args.keep, pipeline.run) else 1
        await schedule(cfg, cron, args.keep, pipeline.run)
    elif args.command == "runs":
        async with await Store.open(cfg.store) as store:
            for r in await store.runs():
                print(r)
    else:
        if (
            getattr(args, "if_missing", False)
            and (existing := newest_valid(cfg.artifacts_dir)) is not None
        ):
            log.info("valid artifact exists, not training", extra=kv(path=str(existing[0])))
            print(
                f"reusing the model in {existing[0]} (--if-missing: a valid artifact exists); "
                "run without --if-missing to train a new one",
                flush=True,
            )
            return 0
        result = await pipeline.run(cfg)
        print(run_report.metrics_table(result.metrics))
        if hint := run_report.timestamp_hint(cfg, result.metrics):
            print(hint)
        outcome = (
            f"not published: {result.refused}"
            if result.refused
            else f"published {result.artifact}{run_report.short_study_note(cfg)}"
        )
        progress.say(progress.run_summary(result.stage_seconds, outcome))
        if result.refused:
            print(f"not published (kept at {result.artifact}): {result.refused}")
            return 3
        print(result.artifact)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logsetup.configure(args.log_level)
    start = time.perf_counter()
    try:
        return _main(args)
    finally:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        log.info(
            "command finished",
            extra=kv(
                command=args.command,
                seconds=round(time.perf_counter() - start, 3),
                peak_rss_mb=round(peak_mb, 1),
            ),
        )


def _main(args: argparse.Namespace) -> int:
    try:
        if args.command == "demo-data":
            from trainer.demo import generate

            summary = generate(args.out, args.scale, args.seed, progress=log.info)
            log.info("demo data written", extra=kv(out=str(args.out), **asdict(summary)))
            return 0
        if args.command == "upload":
            return _upload(args)
        return asyncio.run(_dispatch(args))
    except StudyJoined as e:  # a shared study another trainer published: done here
        log.info("shared study published elsewhere", extra=kv(outcome=str(e)))
        print(f"not published here: {e}", flush=True)
        return 0
    except UserError as e:  # bad input (trainer/errors.py): one line; a bug keeps its traceback
        log.error("failed", extra=kv(error=str(e)))
        print(f"trainer: error: {e}", file=sys.stderr)
        return 2


def _upload(args: argparse.Namespace) -> int:
    """`trainer upload`: a version already published locally, to the bucket (the retry
    of a run whose upload failed, or the first upload of an older version)."""
    from trainer.publish.bucket import publish_to_bucket

    cfg = TrainerConfig.from_env().override(
        artifacts_dir=args.artifacts_dir, publish_to=args.publish_to, s3_endpoint=args.s3_endpoint
    )
    if not cfg.publish_to:
        raise PublishError("no bucket: give --publish-to s3://BUCKET/PREFIX")
    if args.version:
        directory = cfg.artifacts_dir / args.version
    elif (found := newest_valid(cfg.artifacts_dir)) is not None:
        directory = found[0]
    else:
        raise PublishError(f"no valid artifact in {cfg.artifacts_dir}; train one with `run`")
    keys = publish_to_bucket(directory, cfg.publish_to, cfg.s3_endpoint)
    print(f"{directory.name}: {len(keys)} objects uploaded to {cfg.publish_to}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
