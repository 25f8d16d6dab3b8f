"""The names of the cleaning rules, and which of them a source's rows go through.

Each reader (trainer/sources/*) declares the rules that apply to its data in
``RawDataset.rules``: an ISBN check means nothing to a data set that names its
books by id. The cleaning report lists the declared rules; a rule that was not
declared still appears when it dropped rows, so the report never hides a drop.
"""

from __future__ import annotations

BOOKS_VALID_ISBN = "books: valid ISBN"
BOOKS_ONE_PER_ISBN = "books: one row per ISBN"
EDITIONS_TO_WORKS = "editions -> works"
RATINGS_IN_SCALE = "ratings: value in 0..10"
RATINGS_POSITIVE_WEIGHT = "ratings: positive weight"
RATINGS_VALID_ISBN = "ratings: valid ISBN"
RATINGS_KNOWN_BOOK = "ratings: known book"
RATINGS_EXACT_DUPLICATES = "ratings: exact duplicates"
RATINGS_ONE_PER_USER_WORK = "ratings: one per user and work"
RATINGS_KCORE = "ratings: k-core"

EVERY_RULE: tuple[str, ...] = (
    BOOKS_VALID_ISBN,
    BOOKS_ONE_PER_ISBN,
    EDITIONS_TO_WORKS,
    RATINGS_IN_SCALE,
    RATINGS_POSITIVE_WEIGHT,
    RATINGS_VALID_ISBN,
    RATINGS_KNOWN_BOOK,
    RATINGS_EXACT_DUPLICATES,
    RATINGS_ONE_PER_USER_WORK,
    RATINGS_KCORE,
)
# What every source's ratings go through, whatever names their books.
RATINGS_BY_ID: tuple[str, ...] = (
    RATINGS_IN_SCALE,
    RATINGS_KNOWN_BOOK,
    RATINGS_EXACT_DUPLICATES,
    RATINGS_ONE_PER_USER_WORK,
    RATINGS_KCORE,
)
