"""`trainer schedule`: run the whole pipeline on a cron expression (default daily).

Cron expressions have the five classic fields (minute hour day-of-month month
day-of-week) with ``*``, ``a-b``, ``a,b`` and ``*/n`` or ``a-b/n``; times are
UTC. A run that fails is recorded in the store's runs table and logged; the
schedule goes on. After every run the artifact directory is pruned to the
newest ``--keep`` published artifacts plus any a server holds a lease on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bookrec.log import kv
from trainer.config import TrainerConfig
from trainer.publish.retention import prune

log = logging.getLogger("trainer.schedule")
DAILY = "0 3 * * *"
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_NAMES = ("minute", "hour", "day of month", "month", "day of week")


@dataclass(frozen=True)
class Cron:
    fields: tuple[frozenset[int], ...]
    text: str

    @staticmethod
    def parse(text: str) -> Cron:
        parts = text.split()
        if len(parts) != 5:
            raise ValueError(f"cron {text!r}: expected 5 fields (minute hour day month weekday)")
        return Cron(
            tuple(
                _field(p, lo, hi, name)
                for p, (lo, hi), name in zip(parts, _RANGES, _NAMES, strict=True)
            ),
            text,
        )

    def matches(self, t: dt.datetime) -> bool:
        minute, hour, day, month, weekday = self.fields
        return (
            t.minute in minute
            and t.hour in hour
            and t.day in day
            and t.month in month
            and (t.isoweekday() % 7) in weekday
        )

    def next_after(self, t: dt.datetime) -> dt.datetime:
        """The first matching minute strictly after ``t``."""
        candidate = t.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        for _ in range(366 * 24 * 60):
            if self.matches(candidate):
                return candidate
            candidate += dt.timedelta(minutes=1)
        raise ValueError(f"cron {self.text!r} never matches")


def _field(text: str, lo: int, hi: int, name: str) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        rng, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if rng == "*":
                a, b = lo, hi
            elif "-" in rng:
                a, b = (int(x) for x in rng.split("-", 1))
            else:
                a = b = int(rng)
        except ValueError as e:
            raise ValueError(f"cron {name} field {text!r}: not a number, range or step") from e
        if not (lo <= a <= b <= hi) or step < 1:
            raise ValueError(f"cron {name} field {text!r}: must lie in {lo}..{hi}")
        out.update(range(a, b + 1, step))
    return frozenset(out)


RunOnce = Callable[[TrainerConfig], Awaitable[object]]


async def run_and_prune(cfg: TrainerConfig, keep: int, run_once: RunOnce) -> bool:
    """One scheduled run; False when it failed (already recorded and logged)."""
    ok = True
    try:
        await run_once(cfg)
    except Exception as e:  # the schedule outlives a bad run
        log.error("scheduled run failed", extra=kv(error=f"{type(e).__name__}: {e}"))
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
