"""The SQL store on SQLite and on the real MariaDB at 127.0.0.1:3306."""

from __future__ import annotations

import asyncio
import filecmp
import sys
import uuid
from asyncio.subprocess import PIPE
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import MYSQL_ROOT
from trainer.cleaning.catalog import Work
from trainer.cleaning.clean import CleanData, CleanUser
from trainer.evaluation.split import SplitConfig
from trainer.store.drivers import StoreError
from trainer.store.store import Store

ROOT = Path(__file__).resolve().parents[1]


def _work(wid: str, title: str, subjects: list[str]) -> Work:
    return Work(
        wid,
        title,
        "Ann Author",
        1999,
        "",
        0,
        300,
        False,
        [f"97800000{wid[-1]}000{wid[-1]}"],
        subjects,
    )


def sample(extra_work: bool = False) -> CleanData:
    works = [
        _work(f"W{i}", f"Title {i}", ["fantasy", "magic"] if i % 2 else ["history"])
        for i in range(6)
    ]
    if extra_work:
        works.append(_work("V9", "A new book", ["history"]))
    users = [CleanUser(f"u{i}", 30, "25-34", "canada") for i in range(8)]
    inter = sorted(
        (f"u{u}", f"W{w}", (u * w) % 11, -1, 1.0) for u in range(8) for w in range(6) if (u + w) % 3
    )
    return CleanData(sorted(works, key=lambda w: w.work_id), users, inter)


async def _counts(store: Store) -> dict[str, int]:
    out = {}
    for table in ("works", "users", "interactions", "editions", "work_subjects", "subjects"):
        out[table] = int((await store.db.fetchall(f"SELECT COUNT(*) FROM {table}"))[0][0])
    return out


async def test_load_is_idempotent_and_indices_are_stable(store_url: str) -> None:
    async with await Store.open(store_url) as store:
        first = await store.load(sample())
        assert (first.new_works, first.new_users) == (6, 8)
        before = await _counts(store)
        idx_before: dict[str, int] = dict(
            await store.db.fetchall("SELECT work_id, item_idx FROM works")
        )
        again = await store.load(sample())
        assert (again.new_works, again.new_users) == (0, 0)
        assert await _counts(store) == before
        grown = await store.load(sample(extra_work=True))
        assert grown.new_works == 1
        idx_after: dict[str, int] = dict(
            await store.db.fetchall("SELECT work_id, item_idx FROM works")
        )
        assert {k: idx_after[k] for k in idx_before} == idx_before  # nobody moved
        assert idx_after["V9"] == 6  # the next free index


async def test_migrations_are_recorded_once(store_url: str) -> None:
    async with await Store.open(store_url) as store:
        assert await store.migrate() == 5
    async with await Store.open(store_url) as store:
        rows = await store.db.fetchall("SELECT version, name FROM schema_migrations")
        assert [tuple(r) for r in rows] == [
            (1, "initial schema"),
            (2, "test evaluations"),
            (3, "interaction weights"),
            (4, "data sets"),
            (5, "subject spellings"),
        ]


async def test_failed_load_leaves_the_store_as_it_was(store_url: str) -> None:
    async with await Store.open(store_url) as store:
        await store.load(sample())
        before = await _counts(store)
        bad = sample(extra_work=True)
        bad.interactions.append(("u1", "NO-SUCH-WORK", 5, -1, 1.0))  # fails after works are written
        with pytest.raises(KeyError):
            await store.load(bad)
        assert await _counts(store) == before


async def test_split_and_export_are_reproducible(store_url: str, tmp_path: Path) -> None:
    cfg = SplitConfig(seed=3, cold_user_fraction=0.2, min_holdout=3)
    async with await Store.open(store_url) as store:
        await store.load(sample())
        sid = await store.freeze_split(cfg)
        assert await store.freeze_split(cfg) == sid
        assert await store.freeze_split(replace(cfg, seed=4)) != sid
        (await store.export(sid)).save(tmp_path / "a")
        (await store.export(sid)).save(tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", names, shallow=False)
    assert (mismatch, errors) == ([], []) and len(match) == len(names) > 5


@pytest.mark.mysql
async def test_sqlite_and_mysql_exports_are_byte_identical(tmp_path: Path) -> None:
    import asyncmy

    name = f"bookrec_test_{uuid.uuid4().hex[:8]}"
    conn = await asyncmy.connect(host="127.0.0.1", port=3306, user="root", password="")
    async with conn.cursor() as cur:
        await cur.execute(f"CREATE DATABASE {name}")
    try:
        for url, out in (
            (f"sqlite:///{tmp_path / 's.sqlite'}", "s"),
            (f"{MYSQL_ROOT}/{name}", "m"),
        ):
            async with await Store.open(url) as store:
                await store.load(sample())
                sid = await store.freeze_split(SplitConfig(seed=1, min_holdout=3))
                (await store.export(sid)).save(tmp_path / out)
    finally:
        async with conn.cursor() as cur:
            await cur.execute(f"DROP DATABASE {name}")
        conn.close()
    names = sorted(p.name for p in (tmp_path / "s").iterdir())
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / "s", tmp_path / "m", names, shallow=False)
    assert (mismatch, errors) == ([], [])


async def test_runs_are_recorded(store_url: str) -> None:
    async with await Store.open(store_url) as store:
        run = await store.start_run()
        assert (await store.runs())[0]["status"] == "running"
        await store.finish_run(run, "failed", message="ValueError: boom")
        recorded = (await store.runs())[0]
        assert (recorded["status"], recorded["message"]) == ("failed", "ValueError: boom")
        assert recorded["ended_at"]


@pytest.mark.mysql
@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql://root:wrong-password@127.0.0.1:3306/test", "Access denied"),
        ("mysql://root:@127.0.0.1:1/test", "cannot connect"),
    ],
)
async def test_unreachable_or_refusing_database_gives_one_clear_error(url: str, words: str) -> None:
    with pytest.raises(StoreError) as info:
        await Store.open(url)
    message = str(info.value)
    assert words in message
    assert "wrong-password" not in message  # the password is never echoed


async def test_question_marks_and_percent_signs_in_sql_and_values(store_url: str) -> None:
    """A literal ``?`` or ``%s`` in the SQL text or in a value never breaks a query: the
    drivers bind values in their own style (SQLAlchemy compiles the statements)."""
    async with await Store.open(store_url) as store:
        rows = await store.db.fetchall("SELECT :v, 'why?', '100%s', 'a%', :v", {"v": "Who? 50%s"})
        assert [tuple(r) for r in rows] == [("Who? 50%s", "why?", "100%s", "a%", "Who? 50%s")]
        data = sample()
        odd = replace(data.works[0], title="Why? 100%s %(x)s :x")
        await store.load(replace(data, works=[odd, *data.works[1:]]))
        snap = await store.export(await store.freeze_split(SplitConfig(min_holdout=2)))
        assert snap.titles[0] == "Why? 100%s %(x)s :x"
        killed = await store.start_run()  # never finished: the next start marks it
        await store.start_run()
        first = next(r for r in await store.runs() if r["run_id"] == killed)
        assert first["status"] == "abandoned"
        assert first["message"] == "the process ended before the run finished (killed?)"


async def test_trainers_opening_one_empty_store_at_once_migrate_it_once(store_url: str) -> None:
    """Hosts of one shared study start together on an empty store: each opens it, and
    all but one find the migrations done (they failed on a duplicate schema_migrations
    row before the migration lock)."""
    code = (
        "import asyncio, sys\n"
        "from trainer.store.store import Store\n"
        "async def main():\n"
        "    async with await Store.open(sys.argv[1]) as store:\n"
        "        print(await store.schema_version())\n"
        "asyncio.run(main())\n"
    )
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, store_url, cwd=ROOT, stdout=PIPE, stderr=PIPE
        )
        for _ in range(4)
    ]
    results = [await asyncio.wait_for(p.communicate(), 120) for p in procs]
    errors = [err.decode()[-2000:] for _, err in results]
    assert [p.returncode for p in procs] == [0] * 4, errors
    assert [out.decode().strip() for out, _ in results] == ["5"] * 4
    async with await Store.open(store_url) as store:
        rows = await store.db.fetchall("SELECT version FROM schema_migrations")
    assert sorted(int(r[0]) for r in rows) == [1, 2, 3, 4, 5]
