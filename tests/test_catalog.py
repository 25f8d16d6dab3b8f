"""Edition merging, subject reduction and rating consolidation."""

from __future__ import annotations

from pathlib import Path

from trainer.cleaning.catalog import UNKNOWN_AUTHOR, build_works
from trainer.cleaning.interactions import KCore, consolidate, kcore
from trainer.cleaning.report import CleaningReport
from trainer.cleaning.subjects import build_vocab, split_subject
from trainer.sources.raw import RawBook, RawRating


def test_compound_and_variant_subjects_reduce_to_one_vocabulary() -> None:
    assert split_subject("Fiction, science fiction, general") == ["science fiction"]
    assert split_subject("SCIENCE FICTION.") == ["science fiction"]
    assert split_subject("Science-fiction") == ["science fiction"]
    assert split_subject("Children's stories") == ["childrens stories"]
    vocab = build_vocab(
        [
            split_subject("Science fiction") + split_subject("Fiction"),
            split_subject("SCIENCE-FICTION.") + split_subject("Space opera"),
            split_subject("one-off"),
        ]
    )
    assert vocab.slugs == ("science-fiction",)  # generic and rare parts dropped


def test_editions_merge_into_works_and_generic_subjects_never_lead() -> None:
    books = [
        RawBook("0441172717", "Dune (Dune Chronicles, #1)", "Frank Herbert", "1965", "Ace"),
        RawBook("0-441-01359-7", "Dune (Dune Chronicles, #1)", "FRANK HERBERT", "1984", "Ace"),
        RawBook("0451524934", "1984", "", "0", "Signet"),
        RawBook("0451524935", "bad check digit", "X", "1999", "P"),
    ]
    report = CleaningReport()
    works = build_works(
        books, {"9780441172719": "OL1W"}, {"OL1W": ["Fiction", "Science fiction"]}, report
    )
    dune = next(w for w in works.works if w.work_id == "OL1W")
    # The unmapped edition with the same normalised title and author joins the OL work.
    assert sorted(dune.isbns) == ["9780441013593", "9780441172719"]
    assert (dune.title, dune.series, dune.series_volume, dune.year) == (
        "Dune",
        "Dune Chronicles",
        1,
        1965,
    )
    assert dune.subjects == ["science fiction"]
    orwell = next(w for w in works.works if w.work_id != "OL1W")
    assert orwell.work_id.startswith("BX")
    assert (orwell.author, orwell.year) == (UNKNOWN_AUTHOR, None)
    assert orwell.pages_imputed
    rules = {r.rule: r for r in report.rules}
    assert rules["books: valid ISBN"].dropped == 1
    assert rules["editions -> works"].rows_out == 2


def test_ratings_consolidate_one_per_user_and_work() -> None:
    isbn_to_work = {"9780441172719": "W1", "9780441013593": "W1", "9780451524935": "W2"}
    rows = [
        RawRating("u1", "0441172717", 0),
        RawRating("u1", "0441013597", 8),  # other edition, explicit wins
        RawRating("u1", "0441013597", 6),  # lower explicit loses
        RawRating("u1", "0441013597", 6),  # exact duplicate
        RawRating("u2", "0441172718", 5),  # invalid check digit
        RawRating("u2", "0439023483", 5),  # valid ISBN, unknown book
        RawRating("u2", "0451524934", 0),
        RawRating("u3", "", 4, book_key="gb:1"),  # a source that names books by key
    ]
    report = CleaningReport()
    inter = consolidate(rows, isbn_to_work, {"gb:1": "W2"}, report)
    assert inter == [("u1", "W1", 8, -1, 1.0), ("u2", "W2", 0, -1, 1.0), ("u3", "W2", 4, -1, 1.0)]
    dropped = {r.rule: r.dropped for r in report.rules}
    assert dropped["ratings: valid ISBN"] == 1
    assert dropped["ratings: known book"] == 1
    assert dropped["ratings: exact duplicates"] == 1
    assert dropped["ratings: one per user and work"] == 2


def test_latest_explicit_rating_wins_when_timestamps_exist() -> None:
    rows = [
        RawRating("u", "0441172717", 9, timestamp=10),
        RawRating("u", "0441172717", 3, timestamp=20),
    ]
    inter = consolidate(rows, {"9780441172719": "W"}, {}, CleaningReport())
    assert inter == [("u", "W", 3, 20, 1.0)]


def test_kcore_iterates_to_a_fixed_point() -> None:
    # u3 has 2 ratings, one on W3 which only u3 read: dropping W3 leaves u3 below 2.
    rows = [
        ("u1", "W1", 5, -1, 1.0),
        ("u1", "W2", 5, -1, 1.0),
        ("u2", "W1", 5, -1, 1.0),
        ("u2", "W2", 5, -1, 1.0),
        ("u3", "W1", 5, -1, 1.0),
        ("u3", "W3", 5, -1, 1.0),
    ]
    report = CleaningReport()
    kept = kcore(rows, KCore(min_user_interactions=2, min_work_interactions=2), report)
    assert {r[0] for r in kept} == {"u1", "u2"}
    assert "rounds" in report.rules[-1].why


def test_open_library_dumps_read_plain_and_gzip(tmp_path: Path) -> None:
    import gzip

    from trainer.sources import openlibrary

    edition = (
        '/type/edition\t/books/OL1M\t1\t2020-01-01\t{"key": "/books/OL1M", '
        '"isbn_10": ["0441172717"], "works": [{"key": "/works/OL9W"}]}\n'
    )
    work = '/type/work\t/works/OL9W\t1\t2020-01-01\t{"key": "/works/OL9W", "subjects": ["Dunes"]}\n'
    (tmp_path / "ol_dump_editions.txt.gz").write_bytes(gzip.compress(edition.encode()))
    (tmp_path / "ol_dump_works.txt").write_text(work)
    editions = openlibrary.find(tmp_path, openlibrary.EDITIONS_FILE)
    assert editions is not None and editions.suffix == ".gz"
    assert openlibrary.read_editions(editions) == {"9780441172719": "OL9W"}
    works = openlibrary.find(tmp_path, openlibrary.WORKS_FILE)
    assert works is not None
    assert openlibrary.read_works(works)["OL9W"].subjects == ("Dunes",)
