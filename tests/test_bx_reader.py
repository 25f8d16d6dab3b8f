"""Reading the Book-Crossing files: recovery of broken lines and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.errors import InputError
from trainer.sources import bx_reader
from trainer.sources.raw import RawRating

HEADER = (
    '"ISBN";"Book-Title";"Book-Author";"Year-Of-Publication";"Publisher";'
    '"Image-URL-S";"Image-URL-M";"Image-URL-L"\n'
)


def _write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("latin-1"))
    return path


def test_stray_semicolon_in_title_is_recovered(tmp_path: Path) -> None:
    p = _write(
        tmp_path / "BX-Books.csv",
        HEADER
        + '"0441172717";"Dune";"the novel";"Frank Herbert";"1965";"Ace";"s";"m";"l"\n'
        + '"0441172717";"Tom &amp; Jerry";"Zoë";"1990";"Ace";"s";"m";"l"\n'
        + '"0441172717";"Too few"\n',
    )
    rows, report = bx_reader.read_books(p)
    assert [r.title for r in rows] == ["Dune;the novel", "Tom & Jerry"]
    assert rows[1].author == "Zoë"
    assert report.recovered == 1
    assert report.rejected == 1
    assert "BX-Books.csv:4" in report.rejected_examples[0]


def test_unbalanced_quote_does_not_swallow_the_next_line(tmp_path: Path) -> None:
    p = _write(
        tmp_path / "BX-Books.csv",
        HEADER
        + '"0441172717";"The "Best" Book";"A";"1990";"P";"s";"m";"l"\n'
        + '"0451524934";"1984";"George Orwell";"1949";"P";"s";"m";"l"\n',
    )
    rows, _ = bx_reader.read_books(p)
    assert rows[-1].title == "1984"
    assert len(rows) == 2


def test_ratings_out_of_range_are_rejected_with_line_numbers(tmp_path: Path) -> None:
    p = _write(
        tmp_path / "BX-Book-Ratings.csv",
        '"User-ID";"ISBN";"Book-Rating"\n"1";"0441172717";"11"\n"1";"0441172717";"x"\n'
        '"2";"0441172717";"0"\n',
    )
    rows, report = bx_reader.read_ratings(p)
    assert rows == [RawRating("2", "0441172717", 0)]
    assert report.rejected == 2
    assert report.rejected_examples[0].startswith("BX-Book-Ratings.csv:2")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("ISBN,Book-Title,Book-Author\n", "not the Book-Crossing header"),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    p = _write(tmp_path / "BX-Books.csv", content)
    with pytest.raises(InputError, match=message):
        bx_reader.read_books(p)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"BX-Books\.csv: file not found"):
        bx_reader.read_books(tmp_path / "BX-Books.csv")


def test_backslash_escaped_quote_at_title_end_leaves_no_backslash(tmp_path: Path) -> None:
    p = _write(
        tmp_path / "BX-Books.csv",
        HEADER + '"0441172717";"DK Readers: Level 4\\";"A";"1990";"P";"s";"m";"l"\n',
    )
    rows, report = bx_reader.read_books(p)
    assert [r.title for r in rows] == ["DK Readers: Level 4"]
    assert report.rejected == 0
