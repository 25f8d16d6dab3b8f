"""Edition merging, subject reduction and rating consolidation."""

from __future__ import annotations

from trainer.catalog import UNKNOWN_AUTHOR, build_catalog
from trainer.interactions import consolidate
from trainer.openlibrary import OLWork
from trainer.raw import RawBook, RawRating
from trainer.subjects import build_vocab, split_subject


def test_compound_and_variant_subjects_reduce_to_one_vocabulary() -> None:
    assert split_subject("Fiction, science fiction, general") == ["science fiction"]
    assert split_subject("SCIENCE FICTION.") == ["science fiction"]
    assert split_subject("Science-fiction") == ["science fiction"]
    vocab = build_vocab(
        [["Science fiction", "Fiction"], ["SCIENCE-FICTION.", "Space opera"], ["one-off"]]
    )
    assert vocab.slugs == ("science-fiction",)  # generic and rare parts dropped


def test_editions_merge_into_works() -> None:
    books = [
        RawBook("0441172717", "Dune (Dune Chronicles, #1)", "Frank Herbert", "1965", "Ace"),
        RawBook("0-441-01359-7", "Dune (Dune Chronicles, #1)", "FRANK HERBERT", "1984", "Ace"),
        RawBook("0451524934", "1984", "", "0", "Signet"),
        RawBook("0451524935", "bad check digit", "X", "1999", "P"),
    ]
    ol = {"9780441172719": "OL1W"}
    works = {"OL1W": OLWork("OL1W", "Dune", ("Science fiction",))}
    cat = build_catalog(books, ol, works, min_subject_books=1)
    assert cat.invalid_isbns == 1
    dune = next(w for w in cat.works if w.work_id == "OL1W")
    # The unmapped edition with the same normalised title and author joins the OL work.
    assert sorted(dune.isbns) == ["9780441013593", "9780441172719"]
    assert (dune.title, dune.series, dune.series_volume, dune.year) == (
        "Dune",
        "Dune Chronicles",
        1,
        1965,
    )
    orwell = next(w for w in cat.works if w.work_id != "OL1W")
    assert orwell.work_id.startswith("BX")
    assert orwell.author == UNKNOWN_AUTHOR
    assert orwell.year == 0


def test_ratings_consolidate_one_per_user_and_work() -> None:
    isbn_to_item = {"9780441172719": 0, "9780441013593": 0, "9780451524935": 1}
    rows = [
        RawRating("u1", "0441172717", 0),
        RawRating("u1", "0441013597", 8),  # other edition, explicit wins
        RawRating("u1", "0441013597", 6),  # lower explicit loses
        RawRating("u2", "0441172718", 5),  # invalid check digit
        RawRating("u2", "0439023483", 5),  # valid ISBN, unknown book
        RawRating("u2", "0451524934", 0),
    ]
    inter = consolidate(rows, isbn_to_item)
    assert inter.user_ids == ["u1", "u2"]
    assert list(zip(inter.users, inter.items, inter.ratings, strict=True)) == [
        (0, 0, 8),
        (1, 1, 0),
    ]
    assert (inter.invalid_isbn, inter.unknown_book, inter.merged) == (1, 1, 2)
