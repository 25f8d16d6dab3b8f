"""``generate``: run the stages in order and write every demo file.

Why: the one place that fixes the stage order and gives each stage its own seeded stream
(``spawn``), so changing one stage leaves the others' draws alone, and that reports what was
written (``DemoSummary``) so callers need not re-read the files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.demo.bx_files import _write_books, _write_ratings, _write_users
from trainer.demo.catalogue import _make_catalogue
from trainer.demo.ol_dumps import _write_ol
from trainer.demo.ratings import _sample_ratings
from trainer.demo.scales import SCALES
from trainer.demo.truth import TRUTH_FILE, _truth
from trainer.demo.users import _make_users
from trainer.demo.writers import _write_bytes
from trainer.errors import InputError
from trainer.sources.bx_reader import BOOKS_FILE, BOOKS_HEADER, RATINGS_FILE, USERS_FILE
from trainer.sources.openlibrary import EDITIONS_FILE as OL_EDITIONS_FILE
from trainer.sources.openlibrary import WORKS_FILE as OL_WORKS_FILE


@dataclass(frozen=True)
class DemoSummary:
    """What ``generate`` wrote, so a caller can report it without re-reading the files."""

    out_dir: Path
    scale: str
    seed: int
    users: int  # rows in BX-Users.csv
    works: int
    isbns: int  # rows in BX-Books.csv
    authors: int
    series: int
    subjects: int
    ratings: int  # data rows in BX-Book-Ratings.csv, dirt and duplicates included
    implicit_ratings: int
    duplicate_rating_rows: int
    broken_book_lines: int  # all planted broken lines in BX-Books.csv
    missplit_book_lines: int  # those a plain csv.reader splits into more than 8 fields
    ol_editions: int
    ol_works: int
    books_csv: Path
    users_csv: Path
    ratings_csv: Path
    ol_editions_txt: Path
    ol_works_txt: Path
    truth_json: Path


def _quiet(_message: str) -> None:
    pass


def generate(
    out_dir: Path,
    scale: str = "tiny",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> DemoSummary:
    """Write the demo files into ``out_dir`` (created if needed) and say what was written.

    Same ``scale`` and ``seed`` give byte-identical files.  ``progress`` hears one short line
    per step, which matters at the ``bookcrossing`` scale (tens of seconds).
    """
    if scale not in SCALES:
        raise InputError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
    if seed < 0:
        raise InputError(f"--seed {seed}: the seed must be >= 0")
    sc = SCALES[scale]
    say = progress if progress is not None else _quiet
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # One stream per stage, so changing one stage leaves the others' draws alone.
    r_cat, r_users, r_rate, r_books, r_ufile, r_rfile, r_ol = np.random.default_rng(seed).spawn(7)

    say(f"catalogue: {sc.n_works:,} works, their authors, series and editions")
    cat = _make_catalogue(r_cat, sc)
    say(f"users: {sc.n_users:,} with tastes")
    users = _make_users(r_users, sc, cat)
    say(f"ratings: sampling ~{sc.n_ratings:,} rows")
    ratings = _sample_ratings(r_rate, cat, users)

    say(f"writing {BOOKS_FILE} ({cat.n_isbns:,} books)")
    book_stats = _write_books(r_books, out / BOOKS_FILE, cat, sc.broken_lines_per_kind)
    say(f"writing {USERS_FILE}")
    user_stats = _write_users(r_ufile, out / USERS_FILE, users)
    say(f"writing {RATINGS_FILE}")
    rating_stats = _write_ratings(r_rfile, out / RATINGS_FILE, cat, users, ratings)
    say("writing Open Library dumps")
    work_keys, author_keys, ol_stats = _write_ol(r_ol, out, cat)

    dirt: dict[str, object] = {**book_stats, **user_stats, **rating_stats, **ol_stats}
    say(f"writing {TRUTH_FILE}")
    truth = _truth(scale, seed, cat, users, work_keys, author_keys, dirt)
    _write_bytes(
        out / TRUTH_FILE, json.dumps(truth, ensure_ascii=False, separators=(",", ":")).encode()
    )

    broken = book_stats["broken_book_lines"]
    assert isinstance(broken, list)
    return DemoSummary(
        out_dir=out,
        scale=scale,
        seed=seed,
        users=int(users.user_id.size),
        works=cat.n_works,
        isbns=cat.n_isbns,
        authors=len(cat.author_name),
        series=len(cat.series_name),
        subjects=len(cat.subjects),
        ratings=rating_stats["ratings_rows"],
        implicit_ratings=rating_stats["ratings_implicit"],
        duplicate_rating_rows=rating_stats["ratings_duplicate_rows"],
        broken_book_lines=len(broken),
        missplit_book_lines=sum(1 for b in broken if b["csv_fields"] != len(BOOKS_HEADER)),
        ol_editions=ol_stats["ol_editions"],
        ol_works=ol_stats["ol_works"],
        books_csv=out / BOOKS_FILE,
        users_csv=out / USERS_FILE,
        ratings_csv=out / RATINGS_FILE,
        ol_editions_txt=out / OL_EDITIONS_FILE,
        ol_works_txt=out / OL_WORKS_FILE,
        truth_json=out / TRUTH_FILE,
    )
