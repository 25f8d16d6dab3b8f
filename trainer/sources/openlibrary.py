"""Reader for Open Library dumps (tab-separated, JSON in the last column).

Editions map ISBNs to work keys; works carry raw subject strings. Plain or
gzip files are accepted; nothing is ever fetched from the network.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from trainer.cleaning.isbn import normalize_isbn
from trainer.errors import InputError

EDITIONS_FILE = "ol_dump_editions.txt"
WORKS_FILE = "ol_dump_works.txt"


@dataclass(frozen=True)
class OLWork:
    work_id: str  # "OL45W"
    title: str
    subjects: tuple[str, ...]


def _open(path: Path) -> TextIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")


def find(data_dir: Path, name: str) -> Path | None:
    for candidate in (data_dir / name, data_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _records(path: Path) -> Iterator[dict[str, Any]]:
    with _open(path) as f:
        for lineno, line in enumerate(f, start=1):
            cols = line.rstrip("\n").split("\t")
            if len(cols) < 5:
                raise InputError(
                    f"{path}:{lineno}: {len(cols)} tab-separated columns, an Open Library "
                    "dump line has 5 (type, key, revision, last_modified, JSON)"
                )
            try:
                yield json.loads(cols[-1])
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{lineno}: last column is not JSON: {e}") from e


def _work_key(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def read_editions(path: Path) -> dict[str, str]:
    """Canonical ISBN-13 -> work id."""
    isbn_to_work: dict[str, str] = {}
    for rec in _records(path):
        works = rec.get("works") or []
        if not works:
            continue
        work = _work_key(works[0]["key"])
        for raw in [*rec.get("isbn_10", []), *rec.get("isbn_13", [])]:
            isbn = normalize_isbn(str(raw))
            if isbn is not None:
                isbn_to_work.setdefault(isbn, work)
    return isbn_to_work


def read_works(path: Path) -> dict[str, OLWork]:
    works: dict[str, OLWork] = {}
    for rec in _records(path):
        wid = _work_key(rec["key"])
        subjects = tuple(str(s) for s in rec.get("subjects", []))
        works[wid] = OLWork(wid, str(rec.get("title", "")), subjects)
    return works
