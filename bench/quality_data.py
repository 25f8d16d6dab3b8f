"""The benchmark's data: each set read once, an outer holdout the trainer never sees,
and the trainer's input directory written without it.

The trainer splits its input again to choose settings; this outer holdout is what
every strategy of the benchmark is scored on, the served pipeline included:

- warm users: each user with at least ``MIN_RATINGS`` interactions gives 20% of
  them (the latest when the set has timestamps, a seeded draw otherwise);
- new users (``cold``): a share of the users with at least ``cold_min``
  interactions held out whole (10%; 20% on ciaodvd, whose users are mostly light),
  their rows kept oldest first: the journeys of bench/model_quality.py are built from
  them (n = 1, 3, 5, 10 earliest ratings known, or their first ratings' subjects).

ciaodvd (../shared/data/ciaodvd, G. Guo et al., ASONAM 2014) is given to the trainer
through the generic importer: ``user,item,rating,date`` and ``items.csv`` with the genre
code as the item's one subject (``genre-14``): ``write_ciaodvd``.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from trainer.cleaning.clean import clean
from trainer.cleaning.interactions import KCore
from trainer.cleaning.isbn import normalize_isbn
from trainer.sources.generic import ImportOptions
from trainer.sources.ingest import read_data_dir

MIN_RATINGS = 5
HOLDOUT = 0.2
COLD_USERS = 0.1
LASTFM = Path(__file__).resolve().parents[2] / "shared" / "data" / "lastfm-2k"
CIAODVD = Path(__file__).resolve().parents[2] / "shared" / "data" / "ciaodvd"
CIAO_RATINGS = "movie-ratings.txt"


@dataclass
class Interactions:
    """One row per (user, item) after the trainer's own cleaning."""

    users: list[str]
    items: list[str]
    values: list[float]  # rating 1..10, or the implicit weight (rating 0)
    explicit: list[bool]
    timestamps: list[int]  # -1 when none
    isbn_to_work: dict[str, str] = field(default_factory=dict)


@dataclass
class Outer:
    train: set[int]  # row numbers the trainer may read
    warm_targets: dict[str, set[str]] = field(default_factory=dict)
    cold_rows: dict[str, list[int]] = field(default_factory=dict)  # new users, oldest first
    timed: bool = False  # every row has a timestamp: orders are by time, else seeded


def _key(seed: int, *parts: str) -> bytes:
    # "bench": never the trainer's own split keys, or its cold users would be ours.
    return hashlib.blake2b("|".join(("bench", str(seed), *parts)).encode(), digest_size=8).digest()


def read_clean(data: Path, options: ImportOptions | None = None) -> Interactions:
    """The interactions the trainer itself would build from ``data``."""
    cleaned = clean(read_data_dir(data, options or ImportOptions()), KCore(1, 1))
    out = Interactions([], [], [], [], [])
    out.isbn_to_work = {isbn: w.work_id for w in cleaned.works for isbn in w.isbns}
    for user, work, rating, ts, weight in cleaned.interactions:
        out.users.append(user)
        out.items.append(work)
        out.values.append(float(rating) if rating > 0 else float(weight))
        out.explicit.append(rating > 0)
        out.timestamps.append(ts)
    return out


def outer_split(
    data: Interactions, seed: int, cold: bool, cold_share: float = COLD_USERS, cold_min: int = 4
) -> Outer:
    by_user: dict[str, list[int]] = {}
    for row, user in enumerate(data.users):
        by_user.setdefault(user, []).append(row)
    timed = all(t >= 0 for t in data.timestamps)
    train: set[int] = set()
    outer = Outer(train, timed=timed)
    cut = int.from_bytes(b"\xff" * 8, "big") * cold_share
    for user, rows in sorted(by_user.items()):
        if timed:
            rows.sort(key=lambda r: (data.timestamps[r], data.items[r]))
        else:
            rows.sort(key=lambda r: _key(seed, user, data.items[r]))
        held = int.from_bytes(_key(seed, "cold", user), "big") < cut
        if cold and len(rows) >= cold_min and held:
            outer.cold_rows[user] = rows
            continue
        if len(rows) < MIN_RATINGS:
            train.update(rows)
            continue
        n_out = max(1, round(HOLDOUT * len(rows)))
        train.update(rows[:-n_out])
        outer.warm_targets[user] = {data.items[r] for r in rows[-n_out:]}
    return outer


def write_lastfm(out: Path, data: Interactions, keep: set[int]) -> None:
    """The trainer's input in the generic format: implicit play counts, artist names."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / "interactions.csv").open("w") as f:
        for row in sorted(keep):
            f.write(f"{data.users[row]}\t{data.items[row]}\t{data.values[row]:g}\n")
    with (
        (LASTFM / "artists.dat").open(encoding="utf-8") as src,
        (out / "items.csv").open("w", newline="") as dst,
    ):
        writer = csv.writer(dst)
        writer.writerow(["item", "title"])
        for n, line in enumerate(src):
            parts = line.rstrip("\r\n").split("\t")
            if n and len(parts) >= 2:
                writer.writerow([parts[0], parts[1]])


def ciao_rows(path: Path) -> list[tuple[str, str, str, int, str]]:
    """``movie-ratings.txt`` as (user, item, genre, stars 1..5, YYYY-MM-DD): no header,
    comma-separated, ``userID,movieID,genreID,reviewID,rating,date``."""
    out = []
    with path.open(encoding="utf-8", newline="") as f:
        for n, line in enumerate(f, start=1):
            parts = line.strip().split(",")
            if parts == [""]:
                continue
            if len(parts) != 6:
                raise ValueError(f"{path}:{n}: expected 6 fields, got {len(parts)}: {line!r}")
            user, item, genre, _review, stars, date = parts
            dt.date.fromisoformat(date)  # a bad date fails here, not in the trainer
            out.append((user, item, genre, int(stars), date))
    return out


def write_ciaodvd(src: Path, out: Path) -> None:
    """The ciaodvd file as the generic importer's input: ``interactions.csv`` (user,
    item, stars 1..5, date) and ``items.csv`` (the genre as the one subject)."""
    rows = ciao_rows(src / CIAO_RATINGS)
    out.mkdir(parents=True, exist_ok=True)
    genre = {item: g for _, item, g, _, _ in rows}
    with (out / "interactions.csv").open("w", newline="") as f:
        f.write("user,item,value,timestamp\n")
        for user, item, _, stars, date in rows:
            f.write(f"{user},{item},{stars},{date}\n")
    with (out / "items.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["item", "title", "author", "year", "subjects"])
        for item in sorted(genre, key=int):
            writer.writerow([item, f"dvd {item}", "", "", f"genre-{genre[item]}"])


def write_generic(src: Path, out: Path, data: Interactions, keep: set[int]) -> None:
    """The trainer's input in the generic format: the kept rows as ratings on 1..10 (the
    trainer reads them with ``--rating-scale 1..10``) with their unix timestamps, and
    ``src``'s items.csv as it is."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / "interactions.csv").open("w") as f:
        f.write("user,item,value,timestamp\n")
        for row in sorted(keep):
            ts = data.timestamps[row]
            f.write(
                f"{data.users[row]},{data.items[row]},{data.values[row]:g},"
                f"{ts if ts >= 0 else ''}\n"
            )
    (out / "items.csv").symlink_to((src / "items.csv").resolve())


def write_bookcrossing(src: Path, out: Path, data: Interactions, keep: set[int]) -> None:
    """The demo set's files with the held-out ratings removed from BX-Book-Ratings.csv
    (every other file, and every line that does not parse, as they were)."""
    from trainer.sources.bx_reader import RATINGS_FILE

    out.mkdir(parents=True, exist_ok=True)
    for path in src.iterdir():
        if path.name != RATINGS_FILE and not (out / path.name).exists():
            (out / path.name).symlink_to(path.resolve())
    dropped = {(data.users[r], data.items[r]) for r in range(len(data.users)) if r not in keep}
    work_of = data.isbn_to_work
    with (
        (src / RATINGS_FILE).open(encoding="latin-1", newline="") as f_in,
        (out / RATINGS_FILE).open("w", encoding="latin-1", newline="") as f_out,
    ):
        for line in f_in:
            fields = next(csv.reader([line], delimiter=";"), [])
            if len(fields) >= 2:
                isbn = normalize_isbn(fields[1])
                if isbn is not None and (fields[0], work_of.get(isbn, "")) in dropped:
                    continue
            f_out.write(line)
