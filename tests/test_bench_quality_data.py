"""bench/quality_data.py and bench/model_quality.py's journeys on a small ciaodvd file in
the real format (no header, ``userID,movieID,genreID,reviewID,rating,date``, the last
line without a newline, a DVD reviewed twice), read through the generic importer."""

from __future__ import annotations

import calendar
import csv
from pathlib import Path

import numpy as np
import pytest

from bench import quality_baselines as qb
from bench.model_quality import journeys
from bench.quality_data import (
    CIAO_RATINGS,
    outer_split,
    read_clean,
    write_ciaodvd,
    write_generic,
)
from trainer.evaluation import journeys as jy
from trainer.sources.generic import EXPLICIT, ImportOptions

# user 1 rates 6 DVDs over 6 days (DVD 10 twice: the later review, 2 stars, wins);
# user 2 rates 2, user 3 rates 1.
ROWS = [
    "1,10,3,100,5,2005-01-01",
    "1,11,3,101,4,2005-01-02",
    "1,12,7,102,3,2005-01-03",
    "1,13,7,103,1,2005-01-04",
    "1,14,14,104,5,2005-01-05",
    "1,15,14,105,2,2005-01-06",
    "2,10,3,106,5,2006-03-01",
    "2,12,7,107,4,2006-03-02",
    "3,13,7,108,3,2007-07-07",
    "1,10,3,109,2,2005-02-01",
]


def _ts(day: str) -> int:
    y, m, d = (int(x) for x in day.split("-"))
    return calendar.timegm((y, m, d, 0, 0, 0))


@pytest.fixture
def ciao(tmp_path: Path) -> Path:
    src = tmp_path / "ciaodvd"
    src.mkdir()
    (src / CIAO_RATINGS).write_text("\n".join(ROWS))  # no newline after the last line
    out = tmp_path / "generic"
    write_ciaodvd(src, out)
    return out


def test_ciaodvd_reads_as_explicit_dated_ratings_with_genre_subjects(ciao: Path) -> None:
    data = read_clean(ciao, ImportOptions(interaction_kind=EXPLICIT, rating_scale="1..5"))
    got = {
        (u, i): (v, e, t)
        for u, i, v, e, t in zip(
            data.users, data.items, data.values, data.explicit, data.timestamps, strict=True
        )
    }
    assert len(got) == len(data.users) == 9  # the twice-reviewed DVD is one row
    # Stars 1..5 onto 1..10: 1 + (s - 1) * 9 / 4, half up: 1, 3, 6, 8, 10.
    assert got[("1", "11")] == (8.0, True, _ts("2005-01-02"))
    assert got[("1", "12")] == (6.0, True, _ts("2005-01-03"))
    assert got[("1", "13")][0] == 1.0 and got[("1", "14")][0] == 10.0
    assert got[("1", "10")] == (3.0, True, _ts("2005-02-01"))  # the later review
    with (ciao / "items.csv").open() as f:
        subjects = {row["item"]: row["subjects"] for row in csv.DictReader(f)}
    assert subjects == {
        "10": "genre-3",
        "11": "genre-3",
        "12": "genre-7",
        "13": "genre-7",
        "14": "genre-14",
        "15": "genre-14",
    }


def test_a_malformed_line_names_its_line(tmp_path: Path) -> None:
    src = tmp_path / "bad"
    src.mkdir()
    (src / CIAO_RATINGS).write_text("1,10,3,100,5,2005-01-01\n1,11,3,5,2005-01-02\n")
    with pytest.raises(ValueError, match=r"movie-ratings.txt:2: expected 6 fields"):
        write_ciaodvd(src, tmp_path / "out")


def test_temporal_outer_split_and_journeys_take_the_earliest(ciao: Path, tmp_path: Path) -> None:
    data = read_clean(ciao, ImportOptions(interaction_kind=EXPLICIT, rating_scale="1..5"))
    warm = outer_split(data, 0, cold=False)
    assert warm.timed
    # User 1's six ratings by date: 11, 12, 13, 14, 15, then 10 (re-rated in February).
    assert warm.warm_targets == {"1": {"10"}}  # the latest 20% (one of six)
    assert len(warm.train) == len(data.users) - 1

    every = outer_split(data, 0, cold=True, cold_share=1.0, cold_min=2)
    assert set(every.cold_rows) == {"1", "2"} and not every.warm_targets
    paths = journeys(data, every, subjects=True)
    one = paths[jy.journey_name(1)]
    told = {u: [data.items[r] for r in rows] for u, rows in zip(one.users, one.known, strict=True)}
    assert told == {"1": ["11"], "2": ["10"]}
    assert dict(zip(one.users, one.targets, strict=True))["1"] == {"12", "13", "14", "15", "10"}
    five = paths[jy.journey_name(5)]
    assert five.users == ["1"] and five.targets == [{"10"}]
    assert jy.journey_name(10) not in paths  # nobody has more than 10
    subj = paths[jy.SUBJECTS]
    assert subj.users == ["1"] and [data.items[r] for r in subj.known[0]] == ["11", "12", "13"]

    # The trainer's input: the kept rows on 1..10 with their timestamps, read back alike.
    write_generic(ciao, tmp_path / "input", data, warm.train)
    again = read_clean(tmp_path / "input", ImportOptions(interaction_kind=EXPLICIT))
    kept = sorted(
        (data.users[r], data.items[r], data.values[r], data.timestamps[r]) for r in warm.train
    )
    assert (
        sorted(zip(again.users, again.items, again.values, again.timestamps, strict=True)) == kept
    )


def test_ease_baseline_is_the_closed_form_on_items_read_twice(ciao: Path) -> None:
    data = read_clean(ciao, ImportOptions(interaction_kind=EXPLICIT, rating_scale="1..5"))
    item_id = {w: i for i, w in enumerate(sorted(set(data.items)))}
    m = qb.matrix(data, set(range(len(data.users))), item_id)
    model = qb.fit_ease(m.seen(), 2.0)
    assert [sorted(item_id, key=item_id.__getitem__)[i] for i in model.head] == ["10", "12", "13"]
    x = m.seen()[:, model.head].toarray().astype(np.float64)
    p = np.linalg.inv(x.T @ x + 2.0 * np.eye(3))
    w = -p / np.diag(p)[None, :]
    np.fill_diagonal(w, 0.0)
    np.testing.assert_allclose(model.w, w, atol=1e-6)
    lists = qb.ease_lists(m, model, ["3"])  # rated 13 only: 10 and 12 come by W's row
    assert {int(i) for i in lists[0][:2]} == {item_id["10"], item_id["12"]}
