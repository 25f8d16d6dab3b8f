from __future__ import annotations

import pytest

from trainer.cleaning.isbn import isbn13_to_10, normalize_isbn


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0441172717", "9780441172719"),  # ISBN-10 -> ISBN-13
        ("0-441-17271-7", "9780441172719"),  # hyphens
        (" 0441 172717 ", "9780441172719"),  # spaces
        ("080442957x", "9780804429573"),  # lower-case x check digit
        ("9780441172719", "9780441172719"),  # already ISBN-13
        ("978-0-441-17271-9", "9780441172719"),
    ],
)
def test_valid_isbns_canonicalise_to_isbn13(raw: str, expected: str) -> None:
    assert normalize_isbn(raw) == expected


@pytest.mark.parametrize(
    "raw", ["0441172718", "9780441172710", "044117271", "", "abcdefghij", "1234567890123"]
)
def test_invalid_isbns_are_rejected_not_guessed(raw: str) -> None:
    assert normalize_isbn(raw) is None


def test_isbn13_to_10_round_trips() -> None:
    assert isbn13_to_10("9780441172719") == "0441172717"
    assert isbn13_to_10("9791234567896") is None
