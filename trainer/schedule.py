"""`trainer schedule`: run the whole pipeline on a cron expression (default daily).

Cron expressions have the five classic fields (minute hour day-of-month month
day-of-week), read by croniter: ``*``, ``a-b``, ``a,b``, ``*/n``, names (``mon``,
``jan``), 0 or 7 for Sunday, and, as in classic cron, a day that matches
day-of-month OR day-of-week when both are restricted. Times are UTC. A run that
joined a study shared by several trainers (another one published) is a success,
logged as such. A run that fails is recorded in the store's runs table and
logged (with its traceback unless it is bad input); the schedule goes on. After
every run the artifact directory is pruned to the newest ``--keep`` published
artifacts plus any a server holds a lease on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from croniter import CroniterBadDateError, CroniterError, croniter

from bookrec.log import kv
from trainer.config import TrainerConfig
from trainer.errors import InputError, StudyJoined, UserError
from trainer.publish.retention import prune

log = logging.getLogger("trainer.schedule")
DAILY = "0 3 * * *"
_EXAMPLE = (
    "write five fields (minute hour day-of-month month day-of-week), "
    'e.g. "0 3 * * *" (03:00 UTC daily) or "0 3 * * 7" (Sundays)'
)


@dataclass(frozen=True)
class Cron:
    text: str

    @staticmethod
    def parse(text: str) -> Cron:
        """A five-field expression, or InputError saying what is wrong with it."""
        if len(text.split()) != 5:
            raise InputError(f"cron {text!r}: {len(text.split())} fields; {_EXAMPLE}")
        cron = Cron(text)
        cron.next_after(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))  # refuses one that never fires
        return cron

    def next_after(self, t: dt.datetime) -> dt.datetime:
        """The first matching minute strictly after ``t`` (an aware UTC time)."""
        try:
            due: dt.datetime = croniter(self.text, t).get_next(dt.datetime)
        except CroniterBadDateError as e:
            raise InputError(f"cron {self.text!r} never fires: {_EXAMPLE}") from e
        except CroniterError as e:
            raise InputError(f"cron {self.text!r}: {e}; {_EXAMPLE}") from e
        return due


RunOnce = Callable[[TrainerConfig], Awaitable[object]]


async def run_and_prune(cfg: TrainerConfig, keep: int, run_once: RunOnce) -> bool:
    """One scheduled run; False when it failed (already recorded and logged)."""
    ok = True
    try:
        await run_once(cfg)
    except StudyJoined as e:  # a shared study another host published: a success here
        log.info("scheduled run joined a shared study", extra=kv(outcome=str(e)))
    except Exception as e:  # the schedule outlives a bad run
        # Bad input is one line; anything else is a bug and keeps its traceback ("exc").
        log.error(
            "scheduled run failed",
            exc_info=not isinstance(e, UserError),
            extra=kv(error=f"{type(e).__name__}: {e}"),
        )
        ok = False
    prune(cfg.artifacts_dir, keep)
    return ok


async def schedule(
    cfg: TrainerConfig,
    cron: Cron,
    keep: int,
    run_once: RunOnce,
    max_runs: int | None = None,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> None:
    runs = 0
    while max_runs is None or runs < max_runs:
        due = cron.next_after(now())
        log.info("next run", extra=kv(at=due.isoformat(), cron=cron.text))
        await asyncio.sleep(max((due - now()).total_seconds(), 0.0))
        await run_and_prune(cfg, keep, run_once)
        runs += 1
