"""Without timestamps, say so (issue 22 item 5): a `trainer run` on generic data with no
timestamp column prints one line suggesting them, and its manifest says the holdout was
random and its figures optimistic; data with timestamps gets no such line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bookrec.artifact import newest_valid
from tests.trainerproc import trainer_env
from trainer.config import TrainerConfig
from trainer.run_report import timestamp_hint

HINT = "note: interactions.csv has no timestamps"


def _generic(directory: Path, timed: bool) -> Path:
    """300 users reading inside one of 6 groups of 20 items, ratings 1..5."""
    rng = np.random.default_rng(4)
    directory.mkdir(parents=True)
    lines = []
    for u in range(300):
        group = u % 6
        for n, item in enumerate(rng.choice(20, 9, replace=False)):
            stamp = f",{1_600_000_000 + 86_400 * (u + n)}" if timed else ""
            lines.append(f"u{u},i{group * 20 + item},{rng.integers(3, 6)}{stamp}")
    (directory / "interactions.csv").write_text("\n".join(lines) + "\n")
    return directory


@pytest.mark.timeout(900)
def test_a_run_without_timestamps_says_so(tmp_path: Path) -> None:
    data = _generic(tmp_path / "data", timed=False)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer",
            "--log-level",
            "ERROR",
            "run",
            "--data",
            str(data),
            "--artifacts",
            str(tmp_path / "artifacts"),
            "--rating-scale",
            "1..5",
            "--study-trials",
            "1",
            "--study-seconds",
            "10",
            "--no-item-item",
            "--rerank",
            "off",
        ],
        check=False,
        env=trainer_env(),
        capture_output=True,
        text=True,
        timeout=880,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    hints = [line for line in out.stdout.splitlines() if line.startswith(HINT)]
    assert len(hints) == 1, out.stdout
    assert "optimistic" in hints[0] and "timestamp" in hints[0]
    found = newest_valid(tmp_path / "artifacts")
    assert found is not None
    holdout = found[1].metrics["holdout"]
    assert holdout["timed"] is False and "optimistic" in holdout["reason"]
    assert "holdout: the data has no timestamps" in out.stdout
    journeys = found[1].metrics["new_users"]
    assert journeys["known_ratings"] == "a seeded random draw"


def test_no_hint_with_timestamps_or_for_other_sources(tmp_path: Path) -> None:
    timed = TrainerConfig(data_dir=_generic(tmp_path / "timed", timed=True))
    assert timestamp_hint(timed, {"holdout": {"timed": True}}) == ""
    untimed = TrainerConfig(data_dir=_generic(tmp_path / "untimed", timed=False))
    assert timestamp_hint(untimed, {"holdout": {"timed": False}}).startswith(HINT)
    bookcrossing = TrainerConfig(data_dir=tmp_path)  # no interactions.csv: not generic data
    assert timestamp_hint(bookcrossing, {"holdout": {"timed": False}}) == ""
