"""The benchmark's data: each set read once, an outer holdout the trainer never sees,
and the trainer's input directory written without it.

The trainer splits its input again to choose settings; this outer holdout is what
every strategy of the benchmark is scored on, the served pipeline included:

- warm users: each user with at least ``MIN_RATINGS`` interactions gives 20% of
  them (the latest when the set has timestamps, a seeded draw otherwise);
- cold users (sets with subjects): 10% of users held out whole; their first 30%
  of ratings are the seed (the books they tell the service about), the rest the
  targets.
"""

from __future__ import annotations

import csv
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
SEED_SHARE = 0.3
LASTFM = Path(__file__).resolve().parents[2] / "shared" / "data" / "lastfm-2k"


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
    cold_seed: dict[str, list[int]] = field(default_factory=dict)  # rows, oldest first
    cold_targets: dict[str, set[str]] = field(default_factory=dict)


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


def outer_split(data: Interactions, seed: int, cold: bool) -> Outer:
    by_user: dict[str, list[int]] = {}
    for row, user in enumerate(data.users):
        by_user.setdefault(user, []).append(row)
    timed = all(t >= 0 for t in data.timestamps)
    train: set[int] = set()
    outer = Outer(train)
    cut = int.from_bytes(b"\xff" * 8, "big") * COLD_USERS
    for user, rows in sorted(by_user.items()):
        if timed:
            rows.sort(key=lambda r: (data.timestamps[r], data.items[r]))
        else:
            rows.sort(key=lambda r: _key(seed, user, data.items[r]))
        if cold and len(rows) >= 4 and int.from_bytes(_key(seed, "cold", user), "big") < cut:
            n_seed = max(1, int(SEED_SHARE * len(rows)))
            outer.cold_seed[user] = rows[:n_seed]
            outer.cold_targets[user] = {data.items[r] for r in rows[n_seed:]}
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
