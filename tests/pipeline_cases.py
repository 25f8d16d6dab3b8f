"""The data sets the pipeline's equality test runs, and what it compares on each.

Why: issue 23 moved read, clean and load from Python loops to DuckDB. The columnar
path must give what the Python path gave, rule for rule and byte for byte. The
Python path's results were computed once, before it was removed, and frozen in
``tests/fixtures/pipeline_equality.json`` (``python -m tests.pipeline_cases``
wrote it at the commit it names); the test recomputes them with today's pipeline.

Each case is a data directory plus how it is read: the demo Book-Crossing sets
(with served ratings in the rating log, some on the same user and work as a file
rating), goodbooks-10k's real books and tags, Last.fm's real listening counts
(implicit), CiaoDVD's real dated ratings (explicit, 1..5) and a generic file
full of dirt (bad rows skipped, repeats, timestamps on some rows only).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.cleaning.interactions import KCore
from trainer.cleaning.isbn import normalize_isbn
from trainer.sources.generic import ImportOptions

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "pipeline_equality.json"
DEMO_CASES = ("tiny", "small-feedback", "small-kcore")
SHARED_CASES = ("goodbooks-real", "lastfm-implicit", "ciaodvd-explicit")
LOCAL_CASES = ("generic-dirty",)
ONE_X = "bookcrossing"


@dataclass(frozen=True)
class Case:
    name: str
    data: Path
    options: ImportOptions
    kcore: KCore


def _demo(root: Path, scale: str) -> Path:
    from trainer.demo import generate

    out = root / f"demo-{scale}"
    if not (out / "BX-Book-Ratings.csv").exists():
        generate(out, scale, seed=0)
    return out


def _ol_editions(data: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    with (data / "ol_dump_editions.txt").open(encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line.rstrip("\n").split("\t")[-1])
            works = rec.get("works") or []
            if not works:
                continue
            work = works[0]["key"].rsplit("/", 1)[-1]
            for raw in [*rec.get("isbn_10", []), *rec.get("isbn_13", [])]:
                isbn = normalize_isbn(str(raw))
                if isbn is not None:
                    out.setdefault(isbn, work)
    return out


def _with_feedback(src: Path, out: Path) -> Path:
    """The demo set plus served ratings: some on a (user, work) the files also rate (a
    timestamped rating against an untimed one), repeats of one request, implicit ones."""
    if out.exists():
        return out
    shutil.copytree(src, out)
    works = _ol_editions(src)
    rng = random.Random(7)
    lines: list[str] = []
    with (src / "BX-Book-Ratings.csv").open(encoding="latin-1") as f:
        next(f)
        rows = [
            line.rstrip("\n").strip('"').split('";"')
            for _, line in zip(range(4000), f, strict=False)
        ]
    for n, row in enumerate(rows):
        if len(row) != 3:
            continue
        isbn = normalize_isbn(row[1])
        work = works.get(isbn or "")
        if work is None or n % 5:
            continue
        rating = rng.choice([0, 0, 3, 7, 10])
        doc: dict[str, Any] = {"ts": 1_700_000_000 + n * 17, "user_id": row[0], "book_id": work}
        doc["rating"] = rating
        doc.update(model_version="v1", request_id=f"r{n}")
        lines.append(json.dumps(doc, sort_keys=True))
        if n % 3 == 0:  # the same request twice: counted once
            lines.append(json.dumps(doc, sort_keys=True))
        if n % 4 == 0:  # a second, later rating of the same work
            lines.append(json.dumps({**doc, "ts": doc["ts"] + 99, "request_id": f"s{n}"}))
    for n in range(300):  # new users, unknown works, implicit ratings
        doc = {
            "ts": 1_710_000_000 + n,
            "user_id": f"web-{n % 40}",
            "book_id": rng.choice([*works.values(), "OL0W", "nope"]),
            "rating": rng.choice([0, 5, 8]),
            "model_version": "v1",
        }
        lines.append(json.dumps(doc, sort_keys=True))
    (out / "feedback").mkdir(exist_ok=True)
    (out / "feedback" / "ratings.jsonl").write_text("\n".join(lines) + "\n")
    return out


def _goodbooks(shared: Path, out: Path) -> Path:
    if not out.exists():
        out.mkdir(parents=True)
        src = shared / "goodbooks-10k"
        for name in ("books.csv", "tags.csv"):
            shutil.copy(src / name, out / name)
        for name in ("ratings.csv", "book_tags.csv"):
            shutil.copy(src / "samples" / name, out / name)
    return out


def _lastfm(shared: Path, out: Path) -> Path:
    if not out.exists():
        out.mkdir(parents=True)
        src = shared / "lastfm-2k"
        shutil.copy(src / "user_artists.dat", out / "interactions.csv")
        with (
            (src / "artists.dat").open(encoding="utf-8") as f,
            (out / "items.csv").open("w", encoding="utf-8") as items,
        ):
            for line in f:
                parts = line.rstrip("\r\n").split("\t")
                items.write(f"{parts[0]}\t{parts[1]}\n")
    return out


def _ciaodvd(shared: Path, out: Path) -> Path:
    if not out.exists():
        out.mkdir(parents=True)
        genres: dict[str, str] = {}
        with (
            (shared / "ciaodvd" / "movie-ratings.txt").open(encoding="utf-8") as f,
            (out / "interactions.csv").open("w", encoding="utf-8") as inter,
        ):
            for line in f:
                user, item, genre, _review, rating, date = line.strip().split(",")
                inter.write(f"{user},{item},{rating},{date}\n")
                genres.setdefault(item, f"genre-{genre}")
        with (out / "items.csv").open("w", encoding="utf-8") as items:
            items.write("item,title,author,year,subjects\n")
            for item, genre in genres.items():
                items.write(f"{item},DVD {item},,,{genre}|Film\n")
    return out


def _generic_dirty(out: Path) -> Path:
    """Bad rows (skipped), exact repeats, ratings of one item several times with and
    without timestamps, ISO and unix times, quoted fields, an items.csv with subjects."""
    if out.exists():
        return out
    out.mkdir(parents=True)
    rng = random.Random(11)
    lines = ["user;item;rating;time"]
    for n in range(6000):
        user, item = f"u{rng.randrange(300)}", f"i{rng.randrange(400)}"
        value = rng.choice(["1", "2.5", "3", "4", "5", "0", "7", "x", "4.75"])
        ts = rng.choice(
            [
                "",
                "",
                "1600000000",
                str(1600000000 + n),
                "2021-03-04",
                "2021-03-04T05:06:07+02:00",
                "bad",
            ]
        )
        lines.append(f'"{user}";{item};{value};{ts}')
        if n % 50 == 0:
            lines.append(lines[-1])  # an exact repeat
    lines += ["too;few", ";i1;3;", "u1;i1;3;1;extra"]
    (out / "interactions.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    subjects = [
        "Science Fiction",
        "SCIENCE-FICTION.",
        "Fantasy",
        "Crime, Thriller",
        "Fiction",
        "München",
    ]
    items = ["item;title;author;year;subjects"]
    for i in range(380):
        subj = "|".join(rng.sample(subjects, rng.randrange(4)))
        year = rng.choice(["", "1999", "2005.0", "3020", "0"])
        items.append(f"i{i};Title {i % 50};Author {i % 7};{year};{subj}")
    items += ["i3;dup;;;", "i900;bad year;;nineteen;"]
    (out / "items.csv").write_text("\n".join(items) + "\n", encoding="utf-8")
    return out


def cases(root: Path, shared: Path | None, names: tuple[str, ...]) -> list[Case]:
    """The named cases, their data written under ``root`` (shared ones need ``shared``)."""
    explicit = ImportOptions()
    made: dict[str, Any] = {}
    for name in names:
        if name == "tiny":
            made[name] = Case(name, _demo(root, "tiny"), explicit, KCore())
        elif name == "small-feedback":
            data = _with_feedback(_demo(root, "small"), root / "small-feedback")
            made[name] = Case(name, data, explicit, KCore())
        elif name == "small-kcore":
            made[name] = Case(name, _demo(root, "small"), explicit, KCore(4, 3))
        elif name == ONE_X:
            made[name] = Case(name, _demo(root, ONE_X), explicit, KCore())
        elif name == "goodbooks-real":
            assert shared is not None
            made[name] = Case(name, _goodbooks(shared, root / name), explicit, KCore())
        elif name == "lastfm-implicit":
            assert shared is not None
            data = _lastfm(shared, root / name)
            made[name] = Case(name, data, ImportOptions("implicit"), KCore(2, 2))
        elif name == "ciaodvd-explicit":
            assert shared is not None
            data = _ciaodvd(shared, root / name)
            made[name] = Case(name, data, ImportOptions("explicit", "1..5"), KCore())
        elif name == "generic-dirty":
            data = _generic_dirty(root / name)
            options = ImportOptions("explicit", "1..5", skip_bad_rows=True)
            made[name] = Case(name, data, options, KCore(2, 1))
        else:
            raise ValueError(name)
    return [made[n] for n in names]


async def fingerprint(case: Case, work: Path) -> dict[str, Any]:
    """What the pipeline makes of ``case``: the cleaning report, the load's counts, the
    split id and the sha256 of every file of the export (its arrays and tables)."""
    from trainer.cleaning.clean import clean
    from trainer.evaluation.split import SplitConfig
    from trainer.sources.ingest import read_data_dir
    from trainer.store.store import Store

    store_path = work / f"{case.name}.sqlite"
    store_path.unlink(missing_ok=True)
    data = clean(read_data_dir(case.data, case.options), case.kcore)
    report = data.report.to_dict()
    async with await Store.open(f"sqlite:///{store_path}") as store:
        loaded = await store.load(data)
        split_id = await store.freeze_split(SplitConfig())
        snap = await store.export(split_id)
    out = work / f"{case.name}-export"
    shutil.rmtree(out, ignore_errors=True)
    snap.save(out)
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}
    shutil.rmtree(out)
    store_path.unlink()
    return {
        "report": json.loads(json.dumps(report, sort_keys=True, default=str)),
        "loaded": {
            "works": loaded.works,
            "users": loaded.users,
            "interactions": loaded.interactions,
        },
        "split_id": split_id,
        "counts": snap.counts(),
        "files": files,
    }


def main() -> None:
    """Freeze the current pipeline's fingerprints: python -m tests.pipeline_cases ROOT COMMIT."""
    root, commit = Path(sys.argv[1]), sys.argv[2]
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    names = DEMO_CASES + SHARED_CASES + LOCAL_CASES + (ONE_X,)
    out: dict[str, Any] = {"computed_by": f"the Python path at commit {commit}", "cases": {}}
    for case in cases(root, shared, names):
        print("case", case.name, flush=True)
        out["cases"][case.name] = asyncio.run(fingerprint(case, root))
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
