"""Trainer command line: `python -m trainer {demo-data,run} ...`."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from bookrec import log as logsetup
from bookrec.artifact import newest_valid
from bookrec.log import kv
from trainer.config import TrainerConfig
from trainer.errors import InputError, ModelFitError

log = logging.getLogger("trainer")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trainer", description=__doc__)
    p.add_argument("--log-level", default="INFO")
    sub = p.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo-data", help="write a synthetic Book-Crossing-format data set")
    demo.add_argument("--out", type=Path, default=Path("data"))
    demo.add_argument("--scale", choices=["tiny", "small", "bookcrossing"], default="small")
    demo.add_argument("--seed", type=int, default=0)
    run = sub.add_parser("run", help="train on --data and publish an artifact to --artifacts")
    run.add_argument("--data", dest="data_dir", type=Path)
    run.add_argument("--artifacts", dest="artifacts_dir", type=Path)
    run.add_argument("--seed", type=int)
    run.add_argument("--factors", type=int)
    run.add_argument("--regularization", type=float)
    run.add_argument("--iterations", type=int)
    run.add_argument("--alpha", type=float)
    run.add_argument("--threads", type=int)
    run.add_argument(
        "--if-missing", action="store_true", help="do nothing if a valid artifact already exists"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logsetup.configure(args.log_level)
    try:
        if args.command == "demo-data":
            from trainer.demo_data import generate

            summary = generate(args.out, args.scale, args.seed, progress=log.info)
            log.info("demo data written", extra=kv(out=str(args.out), **asdict(summary)))
            return 0
        from trainer.pipeline import run

        skip = ("command", "log_level", "if_missing")
        values = {k: v for k, v in vars(args).items() if k not in skip}
        cfg = TrainerConfig.from_env().override(**values)
        if args.if_missing:
            existing = newest_valid(cfg.artifacts_dir)
            if existing is not None:
                log.info("valid artifact exists, not training", extra=kv(path=str(existing[0])))
                return 0
        result = run(cfg)
        print(result.artifact)
        return 0
    except (InputError, ModelFitError, ValueError) as e:
        log.error("failed", extra=kv(error=str(e)))
        print(f"trainer: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
