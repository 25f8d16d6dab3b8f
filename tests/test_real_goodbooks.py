"""The cleaning helpers against real Goodreads dirt (../shared/data/goodbooks-10k)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from trainer.cleaning.catalog import split_series
from trainer.cleaning.isbn import normalize_isbn

pytestmark = pytest.mark.shared_data


def _books(shared_data: Path) -> list[dict[str, str]]:
    with (shared_data / "goodbooks-10k" / "books.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_isbn13_in_scientific_notation_is_never_trusted(shared_data: Path) -> None:
    rows = _books(shared_data)
    sci = [r["isbn13"] for r in rows if "e+" in r["isbn13"]]
    assert len(sci) > 9000  # the README counts 9,410
    assert all(normalize_isbn(v) is None for v in sci)


def test_isbn10_with_intact_digits_canonicalises(shared_data: Path) -> None:
    rows = _books(shared_data)
    ten = [r["isbn"] for r in rows if len(r["isbn"]) == 10]
    valid = [normalize_isbn(v) for v in ten]
    # Intact ISBN-10s are real ISBNs: nearly all pass the check digit.
    assert sum(v is not None for v in valid) / len(ten) > 0.95
    assert all(v is None or (len(v) == 13 and v.startswith("978")) for v in valid)


def test_series_markers_of_real_titles_parse(shared_data: Path) -> None:
    rows = _books(shared_data)
    marked = [r["title"] for r in rows if "#" in r["title"] and r["title"].endswith(")")]
    parsed = [split_series(t) for t in marked]
    with_series = [p for p in parsed if p[1] and p[2] > 0]
    assert len(with_series) / len(marked) > 0.9
    assert split_series("The Hunger Games (The Hunger Games, #1)") == (
        "The Hunger Games",
        "The Hunger Games",
        1,
    )
