"""Cron parsing, the schedule loop and artifact retention."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import subprocess
from pathlib import Path

import pytest

from bookrec import artifact
from bookrec import log as bookrec_log
from trainer.config import TrainerConfig
from trainer.errors import InputError, StudyJoined
from trainer.publish.retention import prune
from trainer.schedule import Cron, run_and_prune, schedule

UTC = dt.UTC


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("0 3 * * *", "2026-11-26T10:00", "2026-11-27T03:00"),  # daily: tomorrow
        ("0 3 * * *", "2026-11-26T02:59", "2026-11-26T03:00"),
        ("*/15 * * * *", "2026-11-26T10:07", "2026-11-26T10:15"),
        ("30 9 * * 1-5", "2026-11-27T10:00", "2026-11-30T09:30"),  # Friday -> Monday
        ("0 0 1 1 *", "2026-11-26T10:00", "2027-01-01T00:00"),
        ("5,10 1 * * 0", "2026-11-26T10:00", "2026-11-29T01:05"),  # next Sunday
        ("0 3 * * 7", "2026-11-26T10:00", "2026-11-29T03:00"),  # 7 is Sunday too
        ("0 3 * * sun", "2026-11-26T10:00", "2026-11-29T03:00"),
        # day-of-month and day-of-week both set: either fires (classic cron ORs them)
        ("0 3 13 * 5", "2026-11-26T10:00", "2026-11-27T03:00"),  # a Friday, not the 13th
        ("0 3 13 * 5", "2026-12-11T04:00", "2026-12-13T03:00"),  # the 13th, a Sunday
    ],
)
def test_cron_next_run(expr: str, after: str, expected: str) -> None:
    t = dt.datetime.fromisoformat(after).replace(tzinfo=UTC)
    assert Cron.parse(expr).next_after(t) == dt.datetime.fromisoformat(expected).replace(tzinfo=UTC)


def test_day_of_month_or_day_of_week_fires_on_either() -> None:
    cron, t = Cron.parse("0 3 13 * 5"), dt.datetime(2026, 11, 26, tzinfo=UTC)
    fired = []
    for _ in range(6):
        t = cron.next_after(t)
        fired.append(t.date().isoformat())
    # Fridays, and the 13th of December (a Sunday); not only a Friday the 13th.
    assert fired == [
        "2026-11-27",
        "2026-12-04",
        "2026-12-11",
        "2026-12-13",
        "2026-12-18",
        "2026-12-25",
    ]


@pytest.mark.parametrize(
    "expr",
    ["* * * *", "61 * * * *", "a * * * *", "*/0 * * * *", "0 3 * * 8", "0 0 30 2 *", "0 3 * * * 5"],
)
def test_bad_cron_is_refused_as_bad_input(expr: str) -> None:
    with pytest.raises(InputError, match="cron"):
        Cron.parse(expr)


def _fake_artifacts(root: Path, n: int) -> list[str]:
    names = []
    for i in range(n):
        name = f"2026010{i + 1}T000000Z-0000000{i}"
        (root / name).mkdir(parents=True)
        (root / name / "manifest.json").write_text("{}")
        names.append(name)
    return names


def test_retention_keeps_newest_and_leased(tmp_path: Path) -> None:
    names = _fake_artifacts(tmp_path, 6)
    (tmp_path / f"{artifact.REJECTED_PREFIX}x1").mkdir()
    (tmp_path / f"{artifact.REJECTED_PREFIX}x2").mkdir()
    artifact.write_lease(tmp_path, "server-a", names[1])  # this (live) process holds it
    dead = subprocess.Popen(["true"])
    dead.wait()
    lease = tmp_path / artifact.LEASES_DIR / "server-b.json"
    lease.write_text(f'{{"version": "{names[0]}", "pid": {dead.pid}, "holder": "b"}}')
    removed = prune(tmp_path, keep=3)
    left = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".leases"))
    assert left == sorted([names[1], *names[3:], f"{artifact.REJECTED_PREFIX}x2"])
    assert names[0] in removed  # the dead server's lease does not protect it


def test_schedule_runs_prunes_and_survives_a_failed_run(tmp_path: Path) -> None:
    _fake_artifacts(tmp_path, 5)
    calls: list[int] = []
    clock = [dt.datetime(2026, 11, 26, 2, 59, 59, tzinfo=UTC)]

    async def fake_run(cfg: TrainerConfig) -> None:
        calls.append(1)
        clock[0] += dt.timedelta(days=1)
        if len(calls) == 1:
            raise RuntimeError("first run fails")

    cfg = TrainerConfig(artifacts_dir=tmp_path)
    asyncio.run(
        schedule(cfg, Cron.parse("0 3 * * *"), 2, fake_run, max_runs=2, now=lambda: clock[0])
    )
    assert len(calls) == 2
    assert len(artifact.complete_versions(tmp_path)) == 2


@pytest.mark.parametrize(
    ("error", "traceback"),
    [(ValueError("injected bug"), True), (InputError("--rating-scale 5..1: bad"), False)],
)
def test_a_failed_scheduled_run_logs_a_bug_with_its_traceback(
    error: Exception, traceback: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug (any error but the trainer's own input errors) is logged with its
    traceback, as one JSON line; bad input is one line without."""

    async def failing_run(cfg: TrainerConfig) -> None:
        raise error

    cfg = TrainerConfig(artifacts_dir=tmp_path)
    with caplog.at_level(logging.ERROR, logger="trainer.schedule"):
        assert asyncio.run(run_and_prune(cfg, 3, failing_run)) is False
    [record] = [r for r in caplog.records if r.getMessage() == "scheduled run failed"]
    line = json.loads(bookrec_log._JsonFormatter().format(record))
    assert line["error"] == f"{type(error).__name__}: {error}"
    assert ("exc" in line) == traceback
    if traceback:
        assert line["exc"].startswith("Traceback (most recent call last)")
        assert "failing_run" in line["exc"] and "ValueError: injected bug" in line["exc"]


def test_a_scheduled_run_that_joined_a_shared_study_is_not_a_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another host of the shared study published: this host's run ends without an
    artifact, which the runs table records as "joined"; the schedule logged it as a
    failed run before."""

    async def joined_run(cfg: TrainerConfig) -> None:
        raise StudyJoined("study als-daily: published by host-b as 20261207T030000Z-ab12cd34")

    cfg = TrainerConfig(artifacts_dir=tmp_path)
    with caplog.at_level(logging.INFO, logger="trainer.schedule"):
        assert asyncio.run(run_and_prune(cfg, 3, joined_run)) is True
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    [record] = [
        r for r in caplog.records if r.getMessage() == "scheduled run joined a shared study"
    ]
    assert "host-b" in json.loads(bookrec_log._JsonFormatter().format(record))["outcome"]
