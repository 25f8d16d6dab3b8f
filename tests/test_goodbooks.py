"""Reading goodbooks-10k: ISBN repair, star rescaling, shelf-tag filtering, clear errors."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest

from trainer.cleaning.isbn import normalize_isbn
from trainer.errors import InputError
from trainer.sources import goodbooks
from trainer.sources.goodbooks import is_shelf_tag, read_goodbooks, recover_isbn10
from trainer.sources.raw import RawBook, RawRating, ReadReport

BOOKS_HEADER = (
    "book_id,goodreads_book_id,best_book_id,work_id,books_count,isbn,isbn13,authors,"
    "original_publication_year,original_title,title,language_code,average_rating,"
    "ratings_count,work_ratings_count,work_text_reviews_count,ratings_1,ratings_2,ratings_3,"
    "ratings_4,ratings_5,image_url,small_image_url\n"
)
_TAIL = "4.34,100,120,10,1,2,3,4,5,https://i.gr/m.jpg,https://i.gr/s.jpg"
BOOKS = BOOKS_HEADER + "".join(
    f"{row},{_TAIL}\n"
    for row in (
        # ISBN-10 that lost its leading zero, isbn13 in scientific notation, series title
        "1,2767052,2767052,2792775,272,439023483,9.78043902348e+12,Suzanne Collins,2008.0,"
        'The Hunger Games,"The Hunger Games (The Hunger Games, #1)",eng',
        # several authors in one field
        '2,3,3,4640799,491,439554934,9.78043955493e+12,"J.K. Rowling, Mary GrandPré",1997.0,'
        "Harry Potter and the Philosopher's Stone,"
        '"Harry Potter and the Sorcerer\'s Stone (Harry Potter, #1)",eng',
        # no isbn and an untrustworthy isbn13: rejected; a BC year stays as written
        '3,1371,1371,3293141,1726,,9.78014027536e+12,"Homer, Robert Fagles",-750.0,'
        "Ἰλιάς,The Iliad,eng",
        # both empty: missing; empty year; trailing space in the title
        "4,21787,21787,3184150,116,,,William Goldman,,,The Princess Bride ,",
        # valid as written, plain isbn13 present but the ISBN-10 wins
        "5,960,960,3338963,311,1416524797,9781416524793,Dan Brown,2000.0,"
        'Angels & Demons,"Angels & Demons  (Robert Langdon, #1)",en-CA',
        # ISBN-10 fails its check digit even padded; a plain valid isbn13 is used
        "6,5107,5107,3036731,360,812971060,9780679783268,Jane Austen,1813.0,"
        "Pride and Prejudice,Pride and Prejudice,eng",
        # lost zero with an X check digit
        "7,4671,4671,245494,1356,80442957X,,F. Scott Fitzgerald,1925.0,"
        "The Great Gatsby,The Great Gatsby,eng",
        # not a book line: id is not an integer
        "x,1,1,1,1,,,Nobody,2000.0,,Broken,eng",
    )
)
RATINGS = (
    "user_id,book_id,rating\n"
    "1,1,5\n"
    "1,2,1\n"
    "2,1,6\n"  # line 4: outside 1..5
    "2,x,3\n"  # line 5: not an integer
    "3,99,4\n"  # line 6: no such book
    "3,2,4.5\n"  # line 7: not an integer
    "3,7,3\n"
    "4, 07 ,4\n"  # padded, still integers: accepted
)
TAGS = (
    "tag_id,tag_name\r\n0,-\r\n1,to-read\r\n2,fiction\r\n3,young-adult\r\n4,favorites\r\n"
    "5,read-in-2014\r\n6,dystopia\r\n7,owned\r\n8,fantasy\r\n9,2015-reads\r\n"
)
BOOK_TAGS = (
    "goodreads_book_id,tag_id,count\n"
    "2767052,1,100\n"  # to-read: shelf
    "2767052,3,50\n"
    "2767052,2,40\n"
    "2767052,6,60\n"
    "2767052,4,30\n"  # favorites: shelf
    "2767052,5,20\n"  # read-in-2014: year shelf
    "2767052,0,50\n"  # "-": no content
    "2767052,8,3\n"  # fantasy, below min_tag_count
    "3,8,80\n"
    "3,7,40\n"  # owned: shelf
    "3,9,12\n"  # 2015-reads: year shelf
    "3,8,70\n"  # duplicate: the higher count stays
    "3,3,80\n"  # tie with fantasy: file order
    "999,2,10\n"  # line 15: unknown book
    "3,42,10\n"  # line 16: unknown tag
    "3,2,x\n"  # line 17: bad count
)


def _write(folder: Path, **files: str) -> Path:
    for name, text in files.items():
        (folder / f"{name}.csv").write_text(text, encoding="utf-8", newline="")
    return folder


def test_fixture_reads_exactly(tmp_path: Path) -> None:
    _write(tmp_path, books=BOOKS, ratings=RATINGS, tags=TAGS, book_tags=BOOK_TAGS)
    data = read_goodbooks(tmp_path, min_tag_count=5)

    assert data.source == "goodbooks"
    assert data.books == [
        RawBook(
            "0439023483",
            "The Hunger Games (The Hunger Games, #1)",
            "Suzanne Collins",
            "2008",
            book_key="gb:1",
            work_key="GR2792775",
        ),
        RawBook(
            "0439554934",
            "Harry Potter and the Sorcerer's Stone (Harry Potter, #1)",
            "J.K. Rowling, Mary GrandPré",
            "1997",
            book_key="gb:2",
            work_key="GR4640799",
        ),
        RawBook(
            "", "The Iliad", "Homer, Robert Fagles", "-750", book_key="gb:3", work_key="GR3293141"
        ),
        RawBook(
            "", "The Princess Bride", "William Goldman", "", book_key="gb:4", work_key="GR3184150"
        ),
        RawBook(
            "1416524797",
            "Angels & Demons  (Robert Langdon, #1)",
            "Dan Brown",
            "2000",
            book_key="gb:5",
            work_key="GR3338963",
        ),
        RawBook(
            "9780679783268",
            "Pride and Prejudice",
            "Jane Austen",
            "1813",
            book_key="gb:6",
            work_key="GR3036731",
        ),
        RawBook(
            "080442957X",
            "The Great Gatsby",
            "F. Scott Fitzgerald",
            "1925",
            book_key="gb:7",
            work_key="GR245494",
        ),
    ]
    assert data.rating_rows() == [
        RawRating("1", "", 10, book_key="gb:1"),
        RawRating("1", "", 2, book_key="gb:2"),
        RawRating("3", "", 6, book_key="gb:7"),
        RawRating("4", "", 8, book_key="gb:7"),
    ]
    assert data.users == []
    assert data.isbn_to_work == {}
    assert data.work_subjects == {
        "GR2792775": ["dystopia", "young-adult", "fiction"],
        "GR4640799": ["fantasy", "young-adult"],
    }

    books, isbn, ratings, tags, book_tags = data.reports
    assert (books.file, books.lines, books.rows, books.rejected) == ("books.csv", 8, 7, 1)
    assert books.rejected_examples == ["books.csv:9: ids 'x', '1', '1' are not integers"]
    assert (isbn.file, isbn.lines, isbn.rows, isbn.recovered, isbn.rejected) == (
        "books.csv:isbn",
        7,
        5,
        3,
        1,
    )
    assert isbn.rejected_examples == [
        "books.csv:isbn: 1 ISBN-10 valid as written, 3 recovered by restoring lost leading "
        "zeros, 1 from a plain isbn13, 1 rejected, 1 missing; 3 isbn13 in scientific notation "
        "ignored (digits lost)",
        "books.csv:4: isbn empty, isbn13 '9.78014027536e+12' is in scientific notation "
        "(digits lost)",
    ]
    assert (ratings.lines, ratings.rows, ratings.rejected) == (8, 4, 4)
    assert [e.split(":")[:2] for e in ratings.rejected_examples] == [
        ["ratings.csv", str(n)] for n in (4, 5, 6, 7)
    ]
    assert "outside 1..5" in ratings.rejected_examples[0]
    assert (tags.lines, tags.rows, tags.rejected) == (10, 10, 0)
    assert (book_tags.lines, book_tags.rows, book_tags.rejected) == (16, 13, 3)
    assert [e.split(":")[1] for e in book_tags.rejected_examples] == ["15", "16", "17"]


def test_isbn_stats_of_the_fixture(tmp_path: Path) -> None:
    _write(tmp_path, books=BOOKS)
    stats = goodbooks.read_books(tmp_path / "books.csv").isbn
    assert stats == goodbooks.IsbnStats(
        as_written=1, recovered=3, from_isbn13=1, rejected=1, missing=1, sci_isbn13=3
    )


def test_optional_files_missing_read_as_empty(tmp_path: Path) -> None:
    _write(tmp_path, books=BOOKS, book_tags=BOOK_TAGS)
    data = read_goodbooks(tmp_path)
    assert len(data.books) == 7
    assert data.rating_rows() == []
    assert data.work_subjects == {}
    notes = {r.file: r.rejected_examples for r in data.reports[2:]}
    assert notes == {
        "ratings.csv": ["ratings.csv: not found; no ratings read"],
        "tags.csv": ["tags.csv: not found; no subjects read"],
        "book_tags.csv": ["book_tags.csv: not read: tags.csv is missing"],
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("439023483", "0439023483"),  # one zero lost
        ("7442912", "0007442912"),  # three zeros lost (HarperCollins UK: Insurgent)
        ("80442957X", "080442957X"),  # X check digit
        ("80442957x", "080442957X"),
        ("0439023483", "0439023483"),  # intact
        ("1416524797", "1416524797"),
        ("812971060", None),  # check digit fails after padding
        ("9380658797", None),  # 10 digits, check digit fails
        ("", None),
        ("0", None),  # all zeros would pass the check digit
        ("12345678901", None),  # too long
        ("4390X3483", None),  # X only as the check digit
        ("9.78043902348e+12", None),
    ],
)
def test_recover_isbn10(raw: str, expected: str | None) -> None:
    assert recover_isbn10(raw) == expected


def test_scientific_isbn13_is_never_used() -> None:
    assert goodbooks.plain_isbn13("9.78043902348e+12") is None
    assert goodbooks.plain_isbn13("97893806587.0") is None
    assert goodbooks.plain_isbn13("9780439023480") is None  # wrong check digit
    assert goodbooks.plain_isbn13("9780439023481") == "9780439023481"


SHELVES = (
    "to-read",
    "currently-reading",
    "favorites",
    "favourites",
    "owned",
    "books-i-own",
    "owned-books",
    "default",
    "kindle",
    "ebook",
    "ebooks",
    "audiobook",
    "audiobooks",
    "library",
    "my-books",
    "wish-list",
    "re-read",
    "abandoned",
    "did-not-finish",
    "dnf",
    "i-own",
    "to-buy",
    "shelfari-favorites",
    "2015-reads",
    "read-in-2014",
    "2012",
    "to-read-fiction",
    "owned-kindle",
    "all-time-favorites",
    "5-stars",
    "kindle-books",
    "1999-reads",
    "reading-challenge-2015",
    "book-club",
    "to-read_owned",
)
CONTENT = (
    "fiction",
    "fantasy",
    "young-adult",
    "science-fiction",
    "classics",
    "historical-fiction",
    "non-fiction",
    "ya",
    "romance",
    "mystery",
    "dystopia",
    "horror",
    "graphic-novels",
    "biography",
    "memoir",
    "poetry",
    "philosophy",
    "children-s-books",
    "20th-century",
    "1920s",
    "1984",
    "world-war-ii",
    "read-aloud",
    "series",
)


@pytest.mark.parametrize("tag", SHELVES)
def test_shelf_tags_are_dropped(tag: str) -> None:
    assert is_shelf_tag(tag)


@pytest.mark.parametrize("tag", CONTENT)
def test_content_tags_are_kept(tag: str) -> None:
    assert not is_shelf_tag(tag)


# --- bad input ---------------------------------------------------------------------------


def test_missing_books_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"books\.csv: file not found"):
        read_goodbooks(tmp_path)


@pytest.mark.parametrize(
    "content",
    [
        # a Book-Crossing file renamed
        '"ISBN";"Book-Title";"Book-Author";"Year-Of-Publication";"Publisher";'
        '"Image-URL-S";"Image-URL-M";"Image-URL-L"\n'
        '"0195153448";"Classical Mythology";"Mark P. O. Morford";"2002";"OUP";"s";"m";"l"\n',
        # goodbooks re-saved with `;`
        BOOKS_HEADER.replace(",", ";") + "1;2767052;2767052;2792775;272;439023483\n",
        # a column missing
        BOOKS_HEADER.replace("isbn13,", ""),
    ],
)
def test_wrong_header_says_what_was_expected(tmp_path: Path, content: str) -> None:
    (tmp_path / "books.csv").write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=r"expected comma-separated UTF-8 with header book_id,"):
        read_goodbooks(tmp_path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("books", "", "books.csv: file is empty; expected header book_id,goodreads_book_id"),
        ("books", "\n\n", "books.csv: file is empty"),
        ("books", BOOKS_HEADER, "books.csv: no books read"),
        ("ratings", "", "ratings.csv: file is empty; expected header user_id,book_id,rating"),
        ("tags", "tag;name\n", "not the goodbooks-10k tags.csv header"),
    ],
)
def test_empty_or_bad_files_give_one_clear_error(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    _write(tmp_path, books=BOOKS)
    _write(tmp_path, **{name: content})
    with pytest.raises(InputError, match=message):
        read_goodbooks(tmp_path)


def test_latin1_books_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "books.csv").write_bytes(
        BOOKS.encode("utf-8").replace("GrandPré".encode(), "GrandPré".encode("latin-1"))
    )
    with pytest.raises(InputError, match="not UTF-8"):
        read_goodbooks(tmp_path)


def test_min_tag_count_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="min_tag_count"):
        read_goodbooks(tmp_path, min_tag_count=0)


# --- real data (../shared/data/goodbooks-10k) ------------------------------------------------


@pytest.fixture(scope="module")
def real_dir(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full books.csv and tags.csv, with the 99-row samples of ratings and book_tags."""
    src = shared_data / "goodbooks-10k"
    out = tmp_path_factory.mktemp("goodbooks")
    for name, folder in (
        ("books.csv", src),
        ("tags.csv", src),
        ("ratings.csv", src / "samples"),
        ("book_tags.csv", src / "samples"),
    ):
        (out / name).symlink_to(folder / name)
    return out


def _raw_books(real_dir: Path) -> list[dict[str, str]]:
    with (real_dir / "books.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _report(reports: list[ReadReport], file: str) -> ReadReport:
    return next(r for r in reports if r.file == file)


@pytest.mark.shared_data
def test_real_books_read_fast_and_whole(real_dir: Path) -> None:
    start = time.perf_counter()
    data = read_goodbooks(real_dir)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"{elapsed:.2f}s for books.csv + tags.csv"
    assert len(data.books) == 10_000
    assert len({b.book_key for b in data.books}) == 10_000
    assert all(b.work_key.startswith("GR") and b.title for b in data.books)
    assert _report(data.reports, "books.csv").rejected == 0
    assert len(data.rating_rows()) == 99
    assert all(r.rating in (2, 4, 6, 8, 10) for r in data.rating_rows())


@pytest.mark.shared_data
def test_real_isbns(real_dir: Path) -> None:
    read = goodbooks.read_books(real_dir / "books.csv")
    stats = read.isbn
    # The README counts 6,601 ISBN-10s that lost leading zeros; 14 of those fail the
    # check digit once padded, so 6,587 are recovered (measured).
    assert 6_550 <= stats.recovered <= 6_601
    assert stats.sci_isbn13 == 9_410
    # README: 700 empty isbn = 565 with no isbn13 either + 135 with only a sci isbn13.
    assert stats.missing + stats.rejected - 23 == 700  # 23 ISBN-10s fail their check digit
    assert stats.as_written + stats.recovered + stats.from_isbn13 + stats.rejected + (
        stats.missing
    ) == len(read.books)
    assert read.isbn_report.recovered == stats.recovered

    raw = _raw_books(real_dir)
    for row, book in zip(raw, read.books, strict=True):
        assert book.book_key == f"gb:{row['book_id']}"
        if book.isbn:
            assert normalize_isbn(book.isbn) is not None
        if "e+" in row["isbn13"]:
            # never from the scientific-notation isbn13: only from the padded isbn column
            assert book.isbn in ("", row["isbn"].zfill(10))
        if len(book.isbn) == 13:
            assert book.isbn == row["isbn13"]


@pytest.mark.shared_data
def test_real_tags_filter_shelves(real_dir: Path) -> None:
    names, report = goodbooks.read_tags(real_dir / "tags.csv")
    assert report.rows == len(names) == 34_252
    tags = set(names.values())
    for tag in ("to-read", "currently-reading", "favorites", "owned", "books-i-own", "kindle"):
        assert tag in tags and is_shelf_tag(tag)
    for tag in ("read-in-2014", "2015-reads", "2005", "owned-books", "shelfari-favorites", "dnf"):
        assert tag in tags and is_shelf_tag(tag)
    content = ("fiction", "fantasy", "young-adult", "science-fiction", "classics")
    for tag in (*content, "historical-fiction", "non-fiction", "1984", "read-aloud"):
        assert tag in tags and not is_shelf_tag(tag)
    dropped = {t for t in tags if is_shelf_tag(t)}
    # Measured: 3,175 of 34,252; the long tail of personal shelves is left to min_tag_count.
    assert 2_800 <= len(dropped) <= 3_400
    assert all(t in dropped for t in tags if t.startswith(("to-read-", "read-in-20")))

    data = read_goodbooks(real_dir, min_tag_count=1)
    (subjects,) = data.work_subjects.values()  # the 99-line sample tags one book
    assert subjects[:3] == ["fantasy", "young-adult", "fiction"]
    assert not set(subjects) & {"to-read", "favorites", "owned", "books-i-own", "currently-reading"}
