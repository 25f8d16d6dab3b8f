"""Find and read whatever raw data a directory holds into one RawDataset.

Book-Crossing CSVs (with Open Library dumps for work keys and subjects when
present), goodbooks-10k CSVs, or any data set written as interactions.csv
(+ items.csv; trainer/sources/generic.py), plus the ratings the server recorded.
Checked in that order: the first kind whose files are present is read.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bookrec.log import kv
from trainer.errors import InputError
from trainer.sources import bx_reader, generic, openlibrary
from trainer.sources.feedback import FEEDBACK_FILE, read_feedback
from trainer.sources.generic import ImportOptions
from trainer.sources.raw import RawDataset

log = logging.getLogger("trainer.sources.ingest")


def read_data_dir(
    data: Path, options: ImportOptions | None = None, rating_log: str = ""
) -> RawDataset:
    """``options`` set how interactions.csv is read (unused by the other sources);
    ``rating_log`` names the servers' shared rating log (docs/fleet.md), if any."""
    if not data.is_dir():
        raise InputError(f"{data}: data directory not found (run `trainer demo-data --out {data}`)")
    raw = RawDataset("")
    try:
        return _read(data, raw, options, rating_log)
    except BaseException:
        if raw.db is not None:
            raw.db.close()
        raise


def _read(
    data: Path, shell: RawDataset, options: ImportOptions | None, rating_log: str
) -> RawDataset:
    if (data / bx_reader.RATINGS_FILE).exists() or (data / bx_reader.BOOKS_FILE).exists():
        raw = _read_bx(data, shell)
    elif (data / "books.csv").exists():
        from trainer.sources.goodbooks import read_goodbooks

        raw = read_goodbooks(data)
    elif (data / generic.INTERACTIONS_FILE).exists():
        raw = generic.read_generic(data, options or ImportOptions())
    else:
        raise InputError(
            f"{data}: no {bx_reader.BOOKS_FILE} (Book-Crossing), books.csv (goodbooks-10k) or "
            f"{generic.INTERACTIONS_FILE} (your own data: user,item,value[,timestamp]); "
            "run `trainer demo-data` to make a demo set"
        )
    feedback, report = read_feedback(data / FEEDBACK_FILE, rating_log)
    raw.ratings.extend(feedback)
    if report.lines:
        raw.reports.append(report)
    for r in raw.reports:
        log.info("read file", extra=kv(**vars(r)))
    return raw


def _read_bx(data: Path, raw: RawDataset) -> RawDataset:
    """The Book-Crossing files and the Open Library dumps, read into the engine's tables."""
    raw.source, raw.rules = "bookcrossing", bx_reader.RULES
    db = raw.columnar()
    raw.reports += [
        bx_reader.load_books(data / bx_reader.BOOKS_FILE, db),
        bx_reader.load_ratings(data / bx_reader.RATINGS_FILE, db),
        bx_reader.load_users(data / bx_reader.USERS_FILE, db),
    ]
    editions = openlibrary.find(data, openlibrary.EDITIONS_FILE)
    works = openlibrary.find(data, openlibrary.WORKS_FILE)
    if editions:
        openlibrary.load_editions(editions, db)
    if works:
        openlibrary.load_works(works, db)
    return raw
