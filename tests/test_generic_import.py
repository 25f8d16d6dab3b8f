"""Bring your own data: interactions.csv (+ items.csv), implicit weights, the store's data set.

Real SQLite stores (and the real MariaDB for the store-level tests), real files.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.test_trainer_cli import trainer
from trainer import pipeline
from trainer.cleaning.catalog import Work
from trainer.cleaning.clean import CleanData, CleanUser, clean
from trainer.cleaning.interactions import KCore, consolidate
from trainer.cleaning.report import CleaningReport
from trainer.config import TrainerConfig
from trainer.errors import InputError
from trainer.evaluation.split import SplitConfig, assign
from trainer.snapshot import Snapshot
from trainer.sources.generic import ImportOptions, parse_timestamp, to_project_scale
from trainer.sources.ingest import read_data_dir
from trainer.sources.raw import RawRating
from trainer.store import schema
from trainer.store.drivers import connect
from trainer.store.store import DataSet, Store

ROOT = Path(__file__).resolve().parents[1]

EXPLICIT_CSV = (
    "user,item,rating,timestamp\n"
    "alice,b1,5,1700000000\n"
    "alice,b2,3,2024-01-02T03:04:05Z\n"
    "bob,b1,1,\n"
    "bob,b3,4,2024-01-02\n"
    "carol,b2,2,1700000100\n"
)
ITEMS_CSV = (
    "item,title,author,year,subjects\n"
    "b1,Dune,Frank Herbert,1965,Science Fiction|Classics\n"
    'b2,"Tea, Cake and Crime",Ann Author,2001,Mystery\n'
    "b3,Untitled Third,,,\n"
)
# The format of lastfm-2k/user_artists.dat: tabs, no header, CRLF, padded fields.
IMPLICIT_TSV = (
    "2\t51\t13883\r\n"
    "2\t52\t11690\r\n"
    "61\t65  \t170\r\n"
    "61\t163\t    316\r\n"
    "61\t51\t1\r\n"
    "2\t51\t117\r\n"  # the same user and artist again: the counts add up
)


def _write(d: Path, name: str, text: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    p = d / name
    p.write_bytes(text.encode("utf-8"))
    return p


def _cfg(data: Path, **overrides: object) -> TrainerConfig:
    return replace(TrainerConfig(data_dir=data), **overrides)  # type: ignore[arg-type]


async def _ingest_and_export(cfg: TrainerConfig) -> Snapshot:
    await pipeline.ingest(cfg, {})
    async with await Store.open(cfg.store) as store:
        return await pipeline.freeze_and_export(store, cfg, {})


def _rows(snap: Snapshot) -> dict[tuple[str, str], tuple[int, float, int]]:
    """(user_id, work_id) -> (rating, weight, timestamp)."""
    return {
        (snap.user_ids[u], snap.work_ids[i]): (int(r), float(w), int(t))
        for u, i, r, w, t in zip(
            snap.users, snap.items, snap.ratings, snap.weights, snap.timestamps, strict=True
        )
    }


def _counts(url: str) -> dict[str, int]:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        return {
            t: int(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
            for t in ("works", "users", "interactions", "interaction_weights", "datasets")
        }
    finally:
        conn.close()


# -- good files ---------------------------------------------------------------------------


async def test_explicit_file_with_header_and_commas(tmp_path: Path) -> None:
    _write(tmp_path, "interactions.csv", EXPLICIT_CSV)
    _write(tmp_path, "items.csv", ITEMS_CSV)
    cfg = _cfg(tmp_path, rating_scale="1..5")
    snap = await _ingest_and_export(cfg)
    rows = _rows(snap)
    # 1..5 onto 1..10: 1 + (v - 1) * 9 / 4, rounded half up; weights stay 1.0
    assert rows[("alice", "b1")] == (10, 1.0, 1_700_000_000)
    assert rows[("alice", "b2")] == (6, 1.0, 1_704_164_645)  # ISO-8601 with Z
    assert rows[("bob", "b1")] == (1, 1.0, -1)  # empty timestamp: none
    assert rows[("bob", "b3")] == (8, 1.0, 1_704_153_600)  # a date: midnight UTC
    assert rows[("carol", "b2")] == (3, 1.0, 1_700_000_100)
    assert len(rows) == 5  # the header line is not an interaction
    by_id = {w: i for i, w in enumerate(snap.work_ids)}
    assert snap.titles[by_id["b2"]] == "Tea, Cake and Crime"  # quoted comma
    assert snap.authors[by_id["b1"]] == "Frank Herbert"
    assert int(snap.years[by_id["b1"]]) == 1965
    assert snap.subjects[by_id["b1"]] == ["science fiction", "classics"]
    assert snap.subjects[by_id["b3"]] == [] and snap.titles[by_id["b3"]] == "Untitled Third"
    assert _counts(cfg.store)["interaction_weights"] == 0  # explicit: no weight stored


async def test_implicit_file_with_tabs_no_header_and_crlf(tmp_path: Path) -> None:
    _write(tmp_path, "interactions.csv", IMPLICIT_TSV)
    cfg = _cfg(tmp_path, interaction_kind="implicit")
    snap = await _ingest_and_export(cfg)
    rows = _rows(snap)
    assert rows == {
        ("2", "51"): (0, 14000.0, -1),  # 13883 + 117
        ("2", "52"): (0, 11690.0, -1),
        ("61", "65"): (0, 170.0, -1),  # "65  " is item 65
        ("61", "163"): (0, 316.0, -1),  # "    316" is 316
        ("61", "51"): (0, 1.0, -1),
    }
    assert snap.weights.dtype == np.float32
    # No items.csv: every item is a catalogue row titled with its id.
    assert sorted(snap.titles) == sorted(snap.work_ids) == ["163", "51", "52", "65"]
    data = clean(read_data_dir(tmp_path, ImportOptions("implicit")), KCore())
    merged = next(r for r in data.report.rules if "one row per user and item" in r.rule)
    assert (merged.rows_in, merged.rows_out) == (6, 5)


async def test_explicit_and_implicit_readings_of_one_file_are_stored_differently(
    tmp_path: Path,
) -> None:
    text = "u1;i1;3\nu1;i2;5\nu2;i1;2.5\n"  # semicolons, decimals
    explicit = await _ingest_and_export(
        _cfg(_write(tmp_path / "e", "interactions.csv", text).parent, rating_scale="1..5")
    )
    implicit = await _ingest_and_export(
        _cfg(_write(tmp_path / "i", "interactions.csv", text).parent, interaction_kind="implicit")
    )
    assert _rows(explicit) == {
        ("u1", "i1"): (6, 1.0, -1),
        ("u1", "i2"): (10, 1.0, -1),
        ("u2", "i1"): (4, 1.0, -1),  # 1 + 1.5 * 9 / 4 = 4.375
    }
    assert _rows(implicit) == {
        ("u1", "i1"): (0, 3.0, -1),
        ("u1", "i2"): (0, 5.0, -1),
        ("u2", "i1"): (0, 2.5, -1),
    }
    saved = tmp_path / "saved"
    implicit.save(saved)
    assert np.load(saved / "weights.npy").tolist() == implicit.weights.tolist()


def test_items_csv_is_optional_and_items_it_lacks_are_counted(tmp_path: Path) -> None:
    _write(tmp_path, "interactions.csv", "u1,i1,5\nu1,i2,7\nu2,i3,9\n")
    _write(tmp_path, "items.csv", "i1\tFirst\ni3\tThird\tSomeone\t1999\tpoetry|verse\n")
    data = clean(read_data_dir(tmp_path), KCore())
    assert [(w.work_id, w.title) for w in data.works] == [("i1", "First"), ("i3", "Third")]
    assert data.works[1].subjects == ["poetry", "verse"]
    unknown = next(r for r in data.report.rules if r.rule == "ratings: known book")
    assert unknown.dropped == 1  # u1,i2: i2 is not in items.csv
    assert sorted((u, w) for u, w, *_ in data.interactions) == [("u1", "i1"), ("u2", "i3")]


def test_explicit_duplicates_keep_the_consolidation_rules(tmp_path: Path) -> None:
    _write(tmp_path, "interactions.csv", "u,i,9,100\nu,i,4,200\nv,i,3\nv,i,8\n")
    data = clean(read_data_dir(tmp_path), KCore())
    assert data.interactions == [("u", "i", 4, 200, 1.0), ("v", "i", 8, -1, 1.0)]


def test_scale_mapping_and_timestamps() -> None:
    assert [to_project_scale(v, 1, 5) for v in (1, 2, 3, 4, 5)] == [1, 3, 6, 8, 10]
    assert [to_project_scale(v, 1, 10) for v in range(1, 11)] == list(range(1, 11))
    assert to_project_scale(0.5, 0.5, 5) == 1 and to_project_scale(5, 0.5, 5) == 10
    assert parse_timestamp("0") == 0 and parse_timestamp("1700000000") == 1_700_000_000
    assert parse_timestamp("2024-01-02T05:04:05+02:00") == 1_704_164_645
    assert parse_timestamp("1969-12-31") is None and parse_timestamp("yesterday") is None
    for bad in ("5..1", "1-5", "0..5", "x..5"):
        with pytest.raises(ValueError, match="rating_scale"):
            ImportOptions(rating_scale=bad)
    with pytest.raises(ValueError, match="interaction_kind"):
        ImportOptions("ratings")


# -- bad rows -----------------------------------------------------------------------------

GOOD = "user,item,value,timestamp\nu1,i1,5,1700000000\nu2,i1,6,1700000001\n"


@pytest.mark.parametrize(
    ("kind", "line", "expected"),
    [
        ("explicit", "u3,i2", "2 columns, expected user,item,value[,timestamp]"),
        ("explicit", "u3,i2,5,1,extra", "5 columns"),
        ("explicit", ",i2,5", "empty user"),
        ("explicit", "u3, ,5", "empty item"),
        ("explicit", "u3,i2,five", "value 'five' is not a number"),
        ("explicit", "u3,i2,11", "rating 11 is outside the rating scale 1..10"),
        ("explicit", "u3,i2,0", "value 0 is not an explicit rating"),
        ("explicit", "u3,i2,nan", "value 'nan' is not a number"),
        ("implicit", "u3,i2,0", "count 0 is not positive"),
        ("implicit", "u3,i2,-2.5", "count -2.5 is not positive"),
        ("explicit", "u3,i2,5,last tuesday", "timestamp 'last tuesday' is neither"),
        ("explicit", f"u3,{'x' * 41},5", "item id longer than 40 characters"),
    ],
)
async def test_each_bad_row_fails_the_import_with_its_line_and_the_store_untouched(
    kind: str, line: str, expected: str, tmp_path: Path
) -> None:
    _write(tmp_path, "interactions.csv", GOOD)
    cfg = _cfg(tmp_path, interaction_kind=kind)
    await pipeline.ingest(cfg, {})
    store_file = tmp_path / "bookrec.sqlite"
    before = store_file.read_bytes()
    _write(tmp_path, "interactions.csv", GOOD + "u4,i3,7\n" + line + "\n")
    with pytest.raises(InputError) as info:
        await pipeline.ingest(cfg, {})
    message = str(info.value)
    assert str(tmp_path / "interactions.csv") in message
    assert f"interactions.csv:5: {expected}" in message
    assert repr(line) in message  # the row as written
    assert "--skip-bad-rows" in message
    assert store_file.read_bytes() == before  # nothing half-written: u4 is not loaded


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("b9,Title,Author,MCMLXV", "year 'MCMLXV' is not a whole number"),
        ("b9,Title,Author,1965,x|y,extra", "6 columns, expected item,title"),
        ("b1,Again", "item 'b1' repeats line 2"),
    ],
)
def test_bad_items_rows_fail_the_import(row: str, expected: str, tmp_path: Path) -> None:
    _write(tmp_path, "interactions.csv", "u1,b1,5\n")
    _write(tmp_path, "items.csv", ITEMS_CSV + row + "\n")
    with pytest.raises(InputError, match=rf"items\.csv:5: {expected}"):
        read_data_dir(tmp_path)


def test_an_error_shows_ten_bad_rows_and_the_total(tmp_path: Path) -> None:
    bad = "".join(f"u{i},i{i},x{i}\n" for i in range(15))
    _write(tmp_path, "interactions.csv", "u,i,5\n" + bad)
    with pytest.raises(InputError) as info:
        read_data_dir(tmp_path)
    message = str(info.value)
    assert "15 bad rows" in message
    assert "interactions.csv:11: value 'x9' is not a number: 'u9,i9,x9'" in message
    assert "interactions.csv:12:" not in message  # only the first 10 are shown
    assert "... and 5 more (15 bad rows in all)" in message


async def test_skip_bad_rows_drops_and_counts_them(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "interactions.csv",
        "u1\ti1\t5\r\nu2\ti1\t-1\r\nu3\ti1\t2\tnever\r\nu4\ti2\t3\r\n\r\nu5\t\t1\r\n",
    )
    _write(tmp_path, "items.csv", "i1,One,,1999\ni2,Two,,19x9\n")
    options = ImportOptions("implicit", skip_bad_rows=True)
    raw = read_data_dir(tmp_path, options)
    reports = {r.file: r for r in raw.reports}
    inter = reports["interactions.csv"]
    assert (inter.lines, inter.rows, inter.rejected) == (5, 2, 3)
    assert inter.rejected_examples[0].startswith("interactions.csv:2: count -1 is not positive")
    assert inter.rejected_examples[1].startswith("interactions.csv:3: timestamp 'never'")
    assert inter.rejected_examples[2].startswith("interactions.csv:6: empty item")
    items = reports["items.csv"]
    assert (items.lines, items.rows, items.rejected) == (2, 1, 1)
    # through the pipeline: i2 lost its catalogue row, so u4's row is an unknown book
    cfg = _cfg(tmp_path, interaction_kind="implicit", skip_bad_rows=True)
    snap = await _ingest_and_export(cfg)
    assert _rows(snap) == {("u1", "i1"): (0, 5.0, -1)}


# -- weights through store, split and export -----------------------------------------------


async def test_changed_counts_update_weights_and_give_a_new_split(tmp_path: Path) -> None:
    _write(tmp_path, "interactions.csv", "u1,i1,4\nu1,i2,2\nu2,i1,1\n")
    cfg = _cfg(tmp_path, interaction_kind="implicit")
    first = await _ingest_and_export(cfg)
    assert _counts(cfg.store)["interaction_weights"] == 2  # weight 1.0 is not stored
    _write(tmp_path, "interactions.csv", "u1,i1,4\nu1,i2,1\nu2,i1,3\n")  # daily retrain
    second = await _ingest_and_export(cfg)
    assert second.split_id != first.split_id
    assert _rows(second) == {
        ("u1", "i1"): (0, 4.0, -1),
        ("u1", "i2"): (0, 1.0, -1),  # back to 1.0: its stored weight is gone
        ("u2", "i1"): (0, 3.0, -1),
    }
    assert _counts(cfg.store)["interaction_weights"] == 2


def test_consolidation_sums_implicit_weights_across_editions() -> None:
    isbn_to_work = {"9780441172719": "W1", "9780441013593": "W1"}
    rows = [
        RawRating("u1", "0441172717", 0, weight=3.0, timestamp=10),
        RawRating("u1", "0441013597", 0, weight=2.0, timestamp=30),  # other edition: adds up
        RawRating("u1", "0441013597", 0, weight=2.0, timestamp=30),  # exact duplicate: not
        RawRating("u2", "0441172717", 0, weight=4.0),
        RawRating("u2", "0441013597", 7),  # explicit beats implicit: weight 1.0
        RawRating("u3", "0441172717", 0, weight=0.0),  # a weight must be positive
    ]
    report = CleaningReport()
    inter = consolidate(rows, isbn_to_work, {}, report)
    assert inter == [("u1", "W1", 0, 30, 5.0), ("u2", "W1", 7, -1, 1.0)]
    dropped = {r.rule: r.dropped for r in report.rules}
    assert dropped["ratings: positive weight"] == 1
    assert dropped["ratings: exact duplicates"] == 1


def test_weights_join_the_split_digest_only_when_one_is_not_one() -> None:
    users, works = ["a", "a", "b"], ["x", "y", "x"]
    ratings, ts = np.zeros(3, dtype=np.int8), np.full(3, -1, dtype=np.int64)
    cfg = SplitConfig()
    plain = assign(users, works, ratings, ts, cfg)[1]
    ones = np.ones(3, dtype=np.float32)
    assert assign(users, works, ratings, ts, cfg, ones)[1] == plain
    counts = np.array([1, 2, 1], dtype=np.float32)
    assert assign(users, works, ratings, ts, cfg, counts)[1] != plain


# -- where the store lives, and one data set per store -------------------------------------


def test_the_store_defaults_to_the_data_directory() -> None:
    assert TrainerConfig().store == "sqlite:///data/bookrec.sqlite"
    assert TrainerConfig(data_dir=Path("/srv/a")).store == "sqlite:////srv/a/bookrec.sqlite"
    env = TrainerConfig.from_env({"BOOKREC_TRAIN_DATA_DIR": "/srv/b"})
    assert env.store == "sqlite:////srv/b/bookrec.sqlite"
    assert env.override(data_dir=Path("/srv/c")).store == "sqlite:////srv/c/bookrec.sqlite"
    named = TrainerConfig.from_env({"BOOKREC_TRAIN_STORE_URL": "mysql://root@db/x"})
    assert named.override(data_dir=Path("/srv/c")).store == "mysql://root@db/x"
    flags = TrainerConfig.from_env(
        {
            "BOOKREC_TRAIN_INTERACTION_KIND": "implicit",
            "BOOKREC_TRAIN_SKIP_BAD_ROWS": "true",
            "BOOKREC_TRAIN_ALLOW_MIXED_DATA": "0",
        }
    )
    assert (flags.interaction_kind, flags.skip_bad_rows, flags.allow_mixed_data) == (
        "implicit",
        True,
        False,
    )
    with pytest.raises(ValueError, match="BOOKREC_TRAIN_SKIP_BAD_ROWS"):
        TrainerConfig.from_env({"BOOKREC_TRAIN_SKIP_BAD_ROWS": "maybe"})


async def test_two_data_dirs_get_two_stores_by_default(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", "interactions.csv", "u1,i1,5\n").parent
    b = _write(tmp_path / "b", "interactions.csv", "u1,i9,5\nu2,i9,6\n").parent
    await pipeline.ingest(_cfg(a), {})
    await pipeline.ingest(_cfg(b), {})
    assert _counts(f"sqlite:///{a / 'bookrec.sqlite'}")["interactions"] == 1
    assert _counts(f"sqlite:///{b / 'bookrec.sqlite'}")["interactions"] == 2


async def test_a_store_refuses_a_second_data_set_unless_allowed(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", "interactions.csv", "u1,i1,5\n").parent
    b = _write(tmp_path / "b", "interactions.csv", "u1,i9,5\n").parent
    shared = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    await pipeline.ingest(_cfg(a, store_url=shared), {})
    _write(a, "interactions.csv", "u1,i1,5\nu2,i1,7\n")  # new lines: the same data set
    await pipeline.ingest(_cfg(a, store_url=shared), {})
    before = _counts(shared)
    assert (before["interactions"], before["datasets"]) == (2, 1)
    with pytest.raises(InputError) as info:
        await pipeline.ingest(_cfg(b, store_url=shared), {})
    message = str(info.value)
    assert f"holds generic data from {a.resolve()}" in message
    assert f"reads generic data from {b.resolve()}" in message
    assert "--store" in message and "--allow-mixed-data" in message
    assert _counts(shared) == before
    await pipeline.ingest(_cfg(b, store_url=shared, allow_mixed_data=True), {})
    after = _counts(shared)
    assert (after["interactions"], after["datasets"]) == (3, 2)


async def test_a_store_from_before_weights_and_data_sets_migrates(store_url: str) -> None:
    """A version-2 store with data: migrated on open, its interactions export with weight
    1.0, and the first load records its data set."""
    store = Store(await connect(store_url))
    try:
        await store.schema_version()
        for version, statements in enumerate(schema.ddl(store.db.dialect)[:2], start=1):
            for stmt in statements:
                await store.db.execute(stmt)
            await store.db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (:v, :n, :at)",
                {"v": version, "n": schema.MIGRATIONS[version - 1][0], "at": "2025-01-01"},
            )
        await store.db.execute("INSERT INTO authors VALUES (0, 'Ann Author')")
        for item in range(3):
            await store.db.execute(
                "INSERT INTO works VALUES (:item, :wid, :title, 0, 1999, 300, 0, '', 0)",
                {"item": item, "wid": f"W{item}", "title": f"Title {item}"},
            )
        for user in range(6):
            await store.db.execute(
                "INSERT INTO users VALUES (:user, :uid, NULL, 'unknown', '')",
                {"user": user, "uid": f"u{user}"},
            )
            for item in range(3):
                await store.db.execute(
                    "INSERT INTO interactions VALUES (:user, :item, :rating, -1)",
                    {"user": user, "item": item, "rating": 1 + user + item},
                )
    finally:
        await store.close()
    async with await Store.open(store_url) as store:
        rows = await store.db.fetchall("SELECT version FROM schema_migrations ORDER BY version")
        assert [int(r[0]) for r in rows] == [1, 2, 3, 4, 5]
        sid = await store.freeze_split(SplitConfig(min_holdout=3))
        snap = await store.export(sid)
        assert len(snap.weights) == 18 and snap.weights.tolist() == [1.0] * 18
        assert await store.datasets() == []
        await store.load(_clean_sample(), DataSet("bookcrossing", "/data/bx"))
        held = await store.datasets()
        assert [(d["source"], d["location"]) for d in held] == [("bookcrossing", "/data/bx")]
        with pytest.raises(InputError, match="holds bookcrossing data from /data/bx"):
            await store.load(_clean_sample(), DataSet("goodbooks", "/data/bx"))
        snap = await store.export(await store.freeze_split(SplitConfig(min_holdout=3)))
        assert _rows(snap)[("u0", "W0")] == (1, 1.0, -1)  # loaded over the old rows
        assert _rows(snap)[("u9", "W0")] == (0, 2.5, -1)


def _clean_sample() -> CleanData:
    works = [Work("W0", "Title 0", "Ann Author", 1999, "", 0, 300)]
    users = [CleanUser(u, None, "unknown", "") for u in ("u0", "u9")]
    return CleanData(works, users, [("u0", "W0", 1, -1, 1.0), ("u9", "W0", 0, -1, 2.5)])


# -- the command line -----------------------------------------------------------------------


def test_cli_flags_read_implicit_counts_and_skip_bad_rows(tmp_path: Path) -> None:
    _write(tmp_path, "interactions.csv", IMPLICIT_TSV + "7\t8\tlots\r\n")
    failed = trainer("ingest", "--data", str(tmp_path), "--interactions", "implicit")
    assert failed.returncode == 2
    errors = [x for x in failed.stderr.splitlines() if x.startswith("trainer: error:")]
    assert len(errors) == 1 and "1 bad row" in errors[0], failed.stderr
    assert "interactions.csv:7: value 'lots' is not a number: '7\\t8\\tlots'" in failed.stderr
    assert not (tmp_path / "bookrec.sqlite").exists()
    ok = trainer("ingest", "--data", str(tmp_path), "--interactions", "implicit", "--skip-bad-rows")
    assert ok.returncode == 0, ok.stderr
    assert "interactions=5" in ok.stdout
    assert _counts(f"sqlite:///{tmp_path / 'bookrec.sqlite'}")["interaction_weights"] == 4


# -- real data ------------------------------------------------------------------------------


@pytest.mark.shared_data
async def test_lastfm_listening_counts_arrive_whole(shared_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "lastfm"
    data.mkdir()
    shutil.copyfile(shared_data / "lastfm-2k" / "user_artists.dat", data / "interactions.csv")
    cfg = _cfg(data, interaction_kind="implicit")
    summary = await pipeline.ingest(cfg, {})
    assert (summary.users, summary.works, summary.interactions) == (1892, 17632, 92834)
    async with await Store.open(cfg.store) as store:
        snap = await pipeline.freeze_and_export(store, cfg, {})
    assert (snap.n_users, snap.n_items, len(snap.ratings)) == (1892, 17632, 92834)
    assert not snap.ratings.any()  # every row implicit
    assert float(snap.weights.min()) == 1.0 and float(snap.weights.max()) == 352_698.0
