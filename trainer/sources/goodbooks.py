"""Reader for the goodbooks-10k data set (books, ratings, tags, book_tags).

The files are comma-separated UTF-8 with a header line. Their dirt, and what
this reader does with it (values otherwise stay as written, for cleaning):

- `isbn` (ISBN-10) was stored as a number, so leading zeros are lost
  (`439023483` is `0439023483`): it is left-padded to 10 characters and kept
  only when the ISBN-10 check digit then validates.
- `isbn13` is mostly in scientific notation (`9.78043902348e+12`), which has
  lost its last digits: such a value is never used. A plain 13-digit `isbn13`
  with a valid check digit is used when `isbn` gives nothing.
- `original_publication_year` is a float (`2008.0` -> `2008`); negative
  (BC) years stay as written, cleaning nulls impossible years.
- `title` keeps its series marker ("The Hunger Games (The Hunger Games, #1)")
  and `authors` may name several authors: cleaning parses both.
- ratings are 1..5 stars; they are rescaled to the project's explicit 1..10
  scale as ``rating = stars * 2`` (so 1 star -> 2, 5 stars -> 10).
- goodbooks has no users file: `users` stays empty.
- tags are user shelves: `work_subjects` keeps, per work, the tags used at
  least `min_tag_count` times, most-counted first, minus shelves that say
  nothing about content (`to-read`, `owned`, `kindle`, `read-in-2014`, ...;
  see `is_shelf_tag`). Tag text is kept as written; `trainer.cleaning.subjects`
  normalises it.

Only books.csv is required; a missing optional file reads as empty and is noted
in its report.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from trainer.cleaning import rules
from trainer.cleaning.columnar import Columnar
from trainer.cleaning.isbn import normalize_isbn
from trainer.errors import InputError
from trainer.sources.lines import load_lines, rejected
from trainer.sources.raw import RawBook, RawDataset, ReadReport

SOURCE = "goodbooks"
BOOKS_FILE = "books.csv"
RATINGS_FILE = "ratings.csv"
TAGS_FILE = "tags.csv"
BOOK_TAGS_FILE = "book_tags.csv"
# Books and ratings are named by book_id; a book's ISBN (when it has one) is listed once,
# and books sharing a Goodreads work id merge.
RULES = (rules.BOOKS_ONE_PER_ISBN, rules.EDITIONS_TO_WORKS, *rules.RATINGS_BY_ID)
# The report on books.csv's ISBN columns, one count per book: lines = books, rows = books
# with an ISBN, recovered = ISBN-10s restored by padding, rejected = an ISBN written but
# none valid (the book keeps isbn ""); missing = lines - rows - rejected. Its first
# rejected_examples entry is the IsbnStats summary.
ISBN_REPORT = "books.csv:isbn"

# books.csv must start with these columns (the rest — ratings, image URLs — are unused).
BOOKS_HEADER = (
    "book_id",
    "goodreads_book_id",
    "best_book_id",
    "work_id",
    "books_count",
    "isbn",
    "isbn13",
    "authors",
    "original_publication_year",
    "original_title",
    "title",
    "language_code",
)
RATINGS_HEADER = ("user_id", "book_id", "rating")
TAGS_HEADER = ("tag_id", "tag_name")
BOOK_TAGS_HEADER = ("goodreads_book_id", "tag_id", "count")

# A tag used by fewer readers than this is one person's shelf naming, not a consensus.
MIN_TAG_COUNT = 10

_COL = {name: i for i, name in enumerate(BOOKS_HEADER)}
_ISBN10_DIRTY = re.compile(r"[0-9]{0,9}[0-9X]")
_ISBN13_PLAIN = re.compile(r"[0-9]{13}")
_FLOAT_YEAR = re.compile(r"(-?[0-9]+)\.0*")
# goodbooks stars (1..5) -> the project's explicit scale (1..10): stars * 2.
_STARS = {str(stars): stars * 2 for stars in range(1, 6)}

# Shelves and reading statuses that say nothing about a book's content.
SHELF_TAGS = frozenset(
    {
        # reading status
        "to-read",
        "currently-reading",
        "read",
        "reading",
        "re-read",
        "reread",
        "re-reads",
        "rereads",
        "re-reading",
        "rereading",
        "to-re-read",
        "finished",
        "unfinished",
        "unread",
        "abandoned",
        "did-not-finish",
        "didn-t-finish",
        "didnt-finish",
        "dnf",
        "gave-up",
        "not-finished",
        "on-hold",
        "maybe",
        "tbr",
        "want",
        "want-to-read",
        "wish-list",
        "wishlist",
        "to-buy",
        "default",
        # liking
        "favorites",
        "favourites",
        "favorite",
        "favourite",
        "faves",
        "fave",
        "favs",
        "fav",
        "must-read",
        "recommended",
        # owning
        "owned",
        "own",
        "own-it",
        "i-own",
        "i-own-it",
        "books-i-own",
        "owned-books",
        "books-owned",
        "my-books",
        "my-library",
        "my-bookshelf",
        "bookshelf",
        "on-my-shelf",
        "home-library",
        "library",
        "library-book",
        "library-books",
        "borrowed",
        "books",
        "book-club",
        "bookclub",
        # format
        "kindle",
        "ebook",
        "ebooks",
        "e-book",
        "e-books",
        "audiobook",
        "audiobooks",
        "audio-book",
        "audio-books",
        "audio",
        "audible",
        "nook",
        "kobo",
        "ibooks",
        "pdf",
        "epub",
        "calibre",
        "paperback",
        "hardcover",
        "hardback",
    }
)
# Read-aloud is a form of book (children's, family reading), not a reading status.
_KEEP = frozenset({"read-aloud", "read-alouds"})
# Personal shelves by prefix: "read-in-2014", "to-read-fiction", "owned-kindle", "my-faves".
_SHELF_PREFIX = re.compile(
    r"(?:read|to-read|owned|own|currently|my|books-i|i-own|re-read|reread|wish|want-to|tbr|dnf"
    r"|did-not|didn-t|didnt|not-read|never-read|gave-up|to-buy|kindle|ebook|e-book|audiobook"
    r"|audible|shelfari|calibre)-"
)
# Shelf words anywhere in a tag: "all-time-favorites", "kindle-books", "5-stars", "2015-challenge".
_SHELF_WORD = re.compile(
    r"(?:^|-)(?:owned|i-own|kindle|ebooks?|e-books?|audiobooks?|audible|tbr|dnf|wishlist|to-read"
    r"|currently-reading|fav|favs|faves?|favou?rites?|shelfari|calibre|challenge|book-?club"
    r"|[0-5]-stars?|(?:one|two|three|four|five)-stars?)(?:-|$)"
)
# A reading year (2000s/2010s/2020s) anywhere: "2015-reads", "read-in-2014", "2012".
_READING_YEAR = re.compile(r"(?:^|-)20[0-2][0-9](?:-|$)")
# An older year next to a reading word: "1999-reads", "books-read-1998".
_OLD_READING_YEAR = re.compile(
    r"(?:^|-)(?:1[89][0-9][0-9]-(?:reads?|reading|books)|(?:reads?|reading|finished)-(?:in-)?"
    r"1[89][0-9][0-9])(?:-|$)"
)


def is_shelf_tag(tag: str) -> bool:
    """True for a goodreads tag that is a reading status, owning/format shelf or reading year.

    Content tags ("fantasy", "young-adult", "historical-fiction", "1984") are kept; so is
    a tag with no letter or digit ("-"), which is dropped as junk elsewhere.
    """
    t = tag.strip().lower().replace("_", "-")
    if t in _KEEP:
        return False
    return bool(
        t in SHELF_TAGS
        or _SHELF_PREFIX.match(t)
        or _SHELF_WORD.search(t)
        or _READING_YEAR.search(t)
        or _OLD_READING_YEAR.search(t)
    )


def recover_isbn10(raw: str) -> str | None:
    """The ISBN-10 of a goodbooks `isbn` field with its lost leading zeros restored.

    Digits (and a trailing X) are left-padded to 10 characters; the result is
    kept only when the ISBN-10 check digit validates, never guessed.
    """
    s = raw.strip().upper()
    if not _ISBN10_DIRTY.fullmatch(s) or not s.strip("0"):
        return None
    padded = s.zfill(10)
    return padded if normalize_isbn(padded) is not None else None


def plain_isbn13(raw: str) -> str | None:
    """A plain 13-digit ISBN-13 with a valid check digit; scientific notation never passes."""
    s = raw.strip()
    if not _ISBN13_PLAIN.fullmatch(s) or normalize_isbn(s) != s:
        return None
    return s


@dataclass
class IsbnStats:
    """Where each book's ISBN came from (one count per book)."""

    as_written: int = 0  # a valid 10-character ISBN-10
    recovered: int = 0  # an ISBN-10 valid once its lost leading zeros are restored
    from_isbn13: int = 0  # no usable ISBN-10, a plain valid ISBN-13
    rejected: int = 0  # something written, nothing valid: the book keeps isbn ""
    missing: int = 0  # both columns empty
    sci_isbn13: int = 0  # isbn13 values in scientific notation, all ignored

    def summary(self) -> str:
        return (
            f"{ISBN_REPORT}: {self.as_written} ISBN-10 valid as written, {self.recovered} "
            f"recovered by restoring lost leading zeros, {self.from_isbn13} from a plain isbn13, "
            f"{self.rejected} rejected, {self.missing} missing; {self.sci_isbn13} isbn13 in "
            "scientific notation ignored (digits lost)"
        )


@dataclass
class BooksFile:
    """What books.csv gives: the books, the goodreads-id join for tags, and the reports."""

    books: list[RawBook] = field(default_factory=list)
    work_of_goodreads_id: dict[str, str] = field(default_factory=dict)
    report: ReadReport = field(default_factory=lambda: ReadReport(BOOKS_FILE))
    isbn_report: ReadReport = field(default_factory=lambda: ReadReport(ISBN_REPORT))
    isbn: IsbnStats = field(default_factory=IsbnStats)


def _lines(
    path: Path, header: tuple[str, ...], *, prefix: bool = False
) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-empty data line, after checking the header."""
    if not path.is_file():
        raise InputError(f"{path}: file not found (goodbooks-10k {path.name} expected here)")
    expected = ",".join(header) + (",..." if prefix else "")
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            head = next(reader, None)
            if head is None or not any(h.strip() for h in head):
                raise InputError(f"{path}: file is empty; expected header {expected}")
            got = tuple(h.strip() for h in head)
            if (got[: len(header)] if prefix else got) != header:
                raise InputError(
                    f"{path}:1: header {head!r} is not the goodbooks-10k {path.name} header; "
                    f"expected comma-separated UTF-8 with header {expected}"
                )
            for fields in reader:
                if fields and any(fields):
                    yield reader.line_num, fields
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 ({e}); goodbooks-10k files are UTF-8") from e


def _is_id(s: str) -> bool:
    return s.isascii() and s.isdigit()


def _year(raw: str) -> str:
    m = _FLOAT_YEAR.fullmatch(raw)
    return m.group(1) if m else raw


def _isbn(lineno: int, isbn10: str, isbn13: str, out: BooksFile) -> str:
    stats = out.isbn
    if "e+" in isbn13.lower():
        stats.sci_isbn13 += 1
    ten = recover_isbn10(isbn10) if isbn10 else None
    if ten is not None:
        if ten == isbn10.upper():
            stats.as_written += 1
        else:
            stats.recovered += 1
            out.isbn_report.recovered += 1
        return ten
    thirteen = plain_isbn13(isbn13) if isbn13 else None
    if thirteen is not None:
        stats.from_isbn13 += 1
        return thirteen
    if not isbn10 and not isbn13:
        stats.missing += 1
        return ""
    stats.rejected += 1
    why = f"isbn {isbn10!r} fails the ISBN-10 check digit" if isbn10 else "isbn empty"
    if "e+" in isbn13.lower():
        why += f", isbn13 {isbn13!r} is in scientific notation (digits lost)"
    elif isbn13:
        why += f", isbn13 {isbn13!r} is not a valid plain ISBN-13"
    report = out.isbn_report
    report.rejected += 1
    if len(report.rejected_examples) < 9:  # the summary goes first: 10 entries at most
        report.rejected_examples.append(f"{BOOKS_FILE}:{lineno}: {why}")
    return ""


def read_books(path: Path) -> BooksFile:
    """books.csv: one RawBook per valid line, keyed `gb:{book_id}`, work `GR{work_id}`."""
    out = BooksFile()
    report = out.report
    first_line: dict[str, int] = {}
    for lineno, fields in _lines(path, BOOKS_HEADER, prefix=True):
        report.lines += 1
        if len(fields) < len(BOOKS_HEADER):
            report.reject(lineno, f"{len(fields)} fields, expected at least {len(BOOKS_HEADER)}")
            continue
        book_id, gr_id, work_id = (
            fields[_COL[c]].strip() for c in ("book_id", "goodreads_book_id", "work_id")
        )
        if not (_is_id(book_id) and _is_id(gr_id) and _is_id(work_id)):
            report.reject(lineno, f"ids {book_id!r}, {gr_id!r}, {work_id!r} are not integers")
            continue
        if book_id in first_line:
            report.reject(lineno, f"book_id {book_id} repeats line {first_line[book_id]}")
            continue
        title = fields[_COL["title"]].strip()
        if not title:
            report.reject(lineno, "empty title")
            continue
        first_line[book_id] = lineno
        isbn = _isbn(lineno, fields[_COL["isbn"]].strip(), fields[_COL["isbn13"]].strip(), out)
        work_key = f"GR{work_id}"
        out.books.append(
            RawBook(
                isbn=isbn,
                title=title,
                author=fields[_COL["authors"]].strip(),
                year=_year(fields[_COL["original_publication_year"]].strip()),
                book_key=f"gb:{book_id}",
                work_key=work_key,
            )
        )
        out.work_of_goodreads_id[gr_id] = work_key
    report.rows = len(out.books)
    if not out.books:
        raise InputError(f"{path}: no books read ({report.rejected} lines rejected)")
    isbn_report = out.isbn_report
    isbn_report.lines = len(out.books)
    isbn_report.rows = len(out.books) - out.isbn.rejected - out.isbn.missing
    isbn_report.rejected_examples.insert(0, out.isbn.summary())
    return out


def load_ratings(path: Path, book_keys: set[str], db: Columnar) -> ReadReport:
    """ratings.csv -> raw_ratings: 1..5 stars rescaled to 2..10; unknown books and bad
    values rejected.

    The full file has ~6M lines: the columnar engine reads it (trainer/sources/lines.py).
    A clean line (three plain fields, a known book, 1..5 stars, a numeric user) is taken
    as it is; any other is stripped and explained."""
    _check(path, RATINGS_HEADER)
    load_lines(db, path, "utf-8", "gb_lines")
    db.execute("CREATE OR REPLACE TABLE gb_keys (book_id VARCHAR, book_key VARCHAR)")
    db.insert("gb_keys", ("book_id", "book_key"), [(k.removeprefix("gb:"), k) for k in book_keys])
    strip = "CASE WHEN simple_text({v}) THEN {v} ELSE py_strip({v}) END"
    db.execute(
        f"""CREATE OR REPLACE TABLE gb_ratings AS
        WITH f AS (
          SELECT lineno, CASE WHEN contains(line, '"') THEN py_csv_split(line)
                              ELSE string_split(line, ',') END AS f
          FROM gb_lines WHERE lineno > 1 AND line <> ''),
        s AS (
          SELECT lineno, f, len(f) AS n, {strip.format(v="f[1]")} AS u,
                 {strip.format(v="f[2]")} AS b, {strip.format(v="f[3]")} AS r
          FROM f WHERE list_bool_or(list_transform(f, lambda x: x <> ''))),
        v AS (
          SELECT s.*, regexp_full_match(u, '[0-9]+') AND regexp_full_match(b, '[0-9]+')
                 AND regexp_full_match(r, '[0-9]+') AS ids,
                 k.book_key
          FROM s LEFT JOIN gb_keys k
            ON k.book_id = CASE WHEN regexp_full_match(s.b, '[0-9]{{1,30}}')
                                THEN CAST(CAST(s.b AS HUGEINT) AS VARCHAR) END)
        SELECT lineno, u AS user_id, book_key, TRY_CAST(r AS HUGEINT) * 2 AS rating,
          CASE WHEN n <> 3 THEN n || ' fields, expected 3'
               WHEN NOT ids THEN 'fields ' || py_repr_list(f) || ' are not all integers'
               WHEN NOT TRY_CAST(r AS HUGEINT) BETWEEN 1 AND 5
                 THEN 'rating ' || CAST(TRY_CAST(r AS HUGEINT) AS VARCHAR) || ' outside 1..5'
               WHEN book_key IS NULL THEN 'book_id ' || b || ' not in {BOOKS_FILE}' END AS why
        FROM v"""
    )
    report = ReadReport(path.name)
    report.rejected, report.rejected_examples = rejected(db, "gb_ratings", path.name)
    db.execute(
        """INSERT INTO raw_ratings SELECT lineno, user_id, '', CAST(rating AS BIGINT), book_key,
        NULL, 1.0 FROM gb_ratings WHERE why IS NULL"""
    )
    report.rows = db.count("gb_ratings WHERE why IS NULL")
    report.lines = report.rows + report.rejected
    for t in ("gb_lines", "gb_keys", "gb_ratings"):
        db.execute(f"DROP TABLE {t}")
    return report


def _check(path: Path, header: tuple[str, ...]) -> None:
    """The file exists and begins with ``header`` (``_lines`` checks it first)."""
    for _ in _lines(path, header):
        break


def read_tags(path: Path) -> tuple[dict[str, str], ReadReport]:
    """tags.csv: tag_id -> tag name as written."""
    report = ReadReport(path.name)
    names: dict[str, str] = {}
    for lineno, fields in _lines(path, TAGS_HEADER):
        report.lines += 1
        if len(fields) != len(TAGS_HEADER) or not _is_id(fields[0].strip()):
            report.reject(lineno, f"{fields!r} is not tag_id,tag_name")
            continue
        names[fields[0].strip()] = fields[1].strip()
    report.rows = len(names)
    return names, report


def read_book_tags(
    path: Path,
    tag_names: dict[str, str],
    work_of_goodreads_id: dict[str, str],
    min_tag_count: int,
) -> tuple[dict[str, list[str]], ReadReport]:
    """book_tags.csv joined to works: content tags used >= min_tag_count times, most first.

    A tag repeated for one work (duplicate lines, or two books of one work) keeps its
    highest count. Shelf tags and rare tags are dropped silently (they are not dirt);
    lines naming an unknown book or tag, or a non-integer count, are rejected.
    """
    report = ReadReport(path.name)
    counts: dict[str, dict[str, int]] = {}
    shelf: dict[str, bool] = {}
    for lineno, fields in _lines(path, BOOK_TAGS_HEADER):
        report.lines += 1
        if len(fields) != len(BOOK_TAGS_HEADER):
            report.reject(lineno, f"{len(fields)} fields, expected {len(BOOK_TAGS_HEADER)}")
            continue
        gr_id, tag_id, count_text = (v.strip() for v in fields)
        try:
            count = int(count_text)
        except ValueError:
            report.reject(lineno, f"count {count_text!r} is not an integer")
            continue
        work = work_of_goodreads_id.get(gr_id)
        if work is None:
            report.reject(lineno, f"goodreads_book_id {gr_id!r} not in {BOOKS_FILE}")
            continue
        name = tag_names.get(tag_id)
        if name is None:
            report.reject(lineno, f"tag_id {tag_id!r} not in {TAGS_FILE}")
            continue
        report.rows += 1
        if count < min_tag_count or not any(c.isalnum() for c in name):
            continue
        is_shelf = shelf.get(name)
        if is_shelf is None:
            is_shelf = shelf[name] = is_shelf_tag(name)
        if is_shelf:
            continue
        tags = counts.setdefault(work, {})
        if count > tags.get(name, -1):
            tags[name] = count
    subjects = {
        work: sorted(tags, key=lambda t: -tags[t])  # stable: file order breaks ties
        for work, tags in counts.items()
    }
    return subjects, report


def _absent(name: str, why: str) -> ReadReport:
    report = ReadReport(name)
    report.rejected_examples.append(f"{name}: {why}")
    return report


def read_goodbooks(data_dir: Path, min_tag_count: int = MIN_TAG_COUNT) -> RawDataset:
    """Read a goodbooks-10k folder: books.csv is required, the other files are optional."""
    if min_tag_count < 1:
        raise ValueError(f"min_tag_count must be >= 1, got {min_tag_count}")
    books = read_books(data_dir / BOOKS_FILE)
    data = RawDataset(
        SOURCE, books=books.books, reports=[books.report, books.isbn_report], rules=RULES
    )

    ratings_path = data_dir / RATINGS_FILE
    if ratings_path.is_file():
        keys = {b.book_key for b in books.books}
        data.reports.append(load_ratings(ratings_path, keys, data.columnar()))
    else:
        data.reports.append(_absent(RATINGS_FILE, "not found; no ratings read"))

    tags_path, book_tags_path = data_dir / TAGS_FILE, data_dir / BOOK_TAGS_FILE
    tag_names: dict[str, str] | None = None
    if tags_path.is_file():
        tag_names, tags_report = read_tags(tags_path)
        data.reports.append(tags_report)
    else:
        data.reports.append(_absent(TAGS_FILE, "not found; no subjects read"))
    if not book_tags_path.is_file():
        data.reports.append(_absent(BOOK_TAGS_FILE, "not found; no subjects read"))
    elif tag_names is None:
        data.reports.append(_absent(BOOK_TAGS_FILE, f"not read: {TAGS_FILE} is missing"))
    else:
        data.work_subjects, book_tags_report = read_book_tags(
            book_tags_path, tag_names, books.work_of_goodreads_id, min_tag_count
        )
        data.reports.append(book_tags_report)
    return data
