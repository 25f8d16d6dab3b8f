"""Each source's cleaning report names the rules its data goes through, and no others."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.cleaning.clean import clean
from trainer.cleaning.interactions import KCore
from trainer.cleaning.rules import RATINGS_BY_ID
from trainer.errors import InputError
from trainer.sources.ingest import read_data_dir
from trainer.sources.raw import RawBook, RawDataset, RawRating

BX_RULES = [
    "books: valid ISBN",
    "books: one row per ISBN",
    "editions -> works",
    "ratings: value in 0..10",
    "ratings: valid ISBN",
    "ratings: known book",
    "ratings: exact duplicates",
    "ratings: one per user and work",
    "ratings: k-core",
]


def _rules(data_dir: Path) -> list[str]:
    report = clean(read_data_dir(data_dir), KCore()).report
    return [r.rule for r in report.rules if not r.rule.startswith("read ")]


def test_generic_data_reports_no_isbn_rule(tmp_path: Path) -> None:
    (tmp_path / "interactions.csv").write_text("u1,i1,5\nu1,i2,7\nu2,i1,9\nu2,i9,3\n")
    (tmp_path / "items.csv").write_text("i1,First\ni2,Second\n")
    assert _rules(tmp_path) == [
        "ratings: value in 0..10",
        "ratings: positive weight",
        "ratings: known book",
        "ratings: exact duplicates",
        "ratings: one per user and work",
        "ratings: k-core",
    ]


def test_book_crossing_reports_its_isbn_rules(tiny_data: Path) -> None:
    assert _rules(tiny_data) == BX_RULES


@pytest.mark.shared_data
def test_goodbooks_reports_its_id_and_edition_rules(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "goodbooks-10k"
    for name, folder in (("books.csv", src), ("ratings.csv", src / "samples")):
        (tmp_path / name).symlink_to(folder / name)
    assert _rules(tmp_path) == ["books: one row per ISBN", "editions -> works", *RATINGS_BY_ID]


def test_an_undeclared_rule_that_drops_rows_is_still_reported() -> None:
    """A source's declaration never hides a drop: a bad ISBN in id-named data is counted."""
    raw = RawDataset(
        "generic",
        books=[RawBook("", "First", "", "", book_key="item:i1", work_key="i1")],
        ratings=[RawRating("u1", "", 5, "item:i1"), RawRating("u2", "123", 5)],
        rules=RATINGS_BY_ID,
    )
    rules = {r.rule: r.dropped for r in clean(raw, KCore()).report.rules}
    assert rules["ratings: valid ISBN"] == 1
    assert "books: valid ISBN" not in rules


def test_generic_data_with_no_known_item_names_no_isbn(tmp_path: Path) -> None:
    (tmp_path / "interactions.csv").write_text("u1,i8,5\nu2,i9,7\n")
    (tmp_path / "items.csv").write_text("i1,First\n")
    with pytest.raises(InputError) as info:
        clean(read_data_dir(tmp_path), KCore())
    assert str(info.value) == (
        "generic: no rating names a known book (2 rating rows; unknown books 2): check that "
        "the ratings and books files belong together"
    )
