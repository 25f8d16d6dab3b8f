"""Training killed, or its database gone, loses nothing (issue 11, "Faults: Training").

A `trainer run` subprocess on the tiny demo set is SIGKILLed as its JSON log
announces each stage. Nothing may become visible to the server (no complete
version under the artifacts directory; a temporary directory is fine), the
SQLite store must stay intact, and a re-run must publish with exactly the rows a
clean single run stores: a kill never leaves half a load or a duplicate behind.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

import pytest

from bookrec.artifact import TMP_PREFIX, complete_versions, newest_valid
from tests.conftest import MYSQL_ROOT
from tests.fault_table import record_fault
from tests.trainerproc import (
    ROOT,
    run_command,
    run_statuses,
    sqlite_tables,
    stage_line,
    train,
    train_until,
    trainer_env,
)

STAGES = ["read", "clean", "load", "split", "models", "artifact"]
# The stages before the store's run row exists (read and clean run before it is opened).
BEFORE_RUN_ROW = {"read", "clean"}


@pytest.fixture(scope="module")
def clean_counts(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    """Row counts of a store after one clean, uninterrupted run."""
    root = tmp_path_factory.mktemp("clean-run")
    store = root / "store.sqlite"
    result = train(tiny_data, root / "artifacts", f"sqlite:///{store}")
    assert result.returncode == 0, result.stderr[-3000:]
    return sqlite_tables(store)


@pytest.mark.parametrize("stage", STAGES)
def test_training_killed_at_a_stage_publishes_nothing_and_rerun_is_exact(
    stage: str, tiny_data: Path, clean_counts: dict[str, int], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    artifacts = tmp_path / "artifacts"
    store = tmp_path / "store.sqlite"
    url = f"sqlite:///{store}"

    train_until(data, artifacts, url, stage_line(stage))
    assert newest_valid(artifacts) is None
    assert complete_versions(artifacts) == []
    if store.exists():
        sqlite_tables(store)  # integrity_check and foreign keys hold after the kill

    result = train(data, artifacts, url)
    assert result.returncode == 0, result.stderr[-3000:]
    published = newest_valid(artifacts)
    assert published is not None
    assert [p.name for p in complete_versions(artifacts)] == [published[0].name]
    assert not [p for p in artifacts.iterdir() if p.name.startswith(TMP_PREFIX)]
    counts = sqlite_tables(store)
    runs = counts.pop("runs")
    assert counts == {k: v for k, v in clean_counts.items() if k != "runs"}
    killed = [] if stage in BEFORE_RUN_ROW else ["abandoned"]
    assert sorted(run_statuses(store)) == [*killed, "published"]  # same-second starts
    assert runs == len(killed) + 1
    record_fault(
        f"training SIGKILLed as stage '{stage}' starts, then run again",
        "nothing published by the killed run (temp dir only, removed by the re-run); "
        "SQLite store passes integrity_check; the re-run publishes with the same row "
        "counts as one clean run (no duplicates); the killed run is marked abandoned",
    )


DATA_TABLES = [
    "authors",
    "works",
    "editions",
    "subjects",
    "work_subjects",
    "users",
    "interactions",
    "interaction_weights",
    "datasets",
]


async def _mysql(db: str = "") -> Any:
    import asyncmy

    return await asyncmy.connect(
        host="127.0.0.1", port=3306, user="root", password="", database=db or None, autocommit=True
    )


async def _query(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    async with conn.cursor() as cur:
        await cur.execute(sql)
        return list(await cur.fetchall())


async def _mysql_counts(db: str) -> dict[str, int]:
    conn = await _mysql(db)
    try:
        return {
            t: int((await _query(conn, f"SELECT COUNT(*) FROM {t}"))[0][0]) for t in DATA_TABLES
        }
    finally:
        conn.close()


async def _kill_mid_load(db: str, data: Path, artifacts: Path) -> subprocess.CompletedProcess[str]:
    """Run the trainer while another session holds ``interactions`` locked, so the load
    blocks inside its transaction after writing the catalogue; then KILL its connection."""
    from trainer.store.store import Store

    async with await Store.open(f"{MYSQL_ROOT}/{db}"):
        pass  # migrate first: the lock below must block the load, not the DDL
    holder, control = await _mysql(db), await _mysql()
    await _query(holder, "LOCK TABLES interactions WRITE")
    cmd = run_command(data, artifacts, f"{MYSQL_ROOT}/{db}")
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=ROOT, env=trainer_env(), stdout=PIPE, stderr=PIPE
    )
    output = asyncio.create_task(proc.communicate())  # drained all along: no full pipe
    try:
        deadline = time.monotonic() + 120
        while not (
            blocked := await _query(
                control,
                "SELECT ID FROM information_schema.PROCESSLIST "
                f"WHERE DB = '{db}' AND STATE LIKE '%lock%' AND INFO LIKE '%interactions%'",
            )
        ):
            assert not output.done() and time.monotonic() < deadline, "load never blocked"
            await asyncio.sleep(0.05)
        await _query(control, f"KILL {blocked[0][0]}")
        await _query(holder, "UNLOCK TABLES")
        out, err = await asyncio.wait_for(output, 120)
        assert proc.returncode is not None
        return subprocess.CompletedProcess(cmd, proc.returncode, out.decode(), err.decode())
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        holder.close()
        control.close()


@pytest.mark.mysql
async def test_database_gone_mid_load_is_one_clear_error_and_rerun_is_exact(
    tiny_data: Path, clean_counts: dict[str, int], tmp_path: Path
) -> None:
    db = f"bookrec_test_{uuid.uuid4().hex[:8]}"
    admin = await _mysql()
    await _query(admin, f"CREATE DATABASE {db}")
    try:
        artifacts = tmp_path / "artifacts"
        result = await _kill_mid_load(db, tiny_data, artifacts)
        assert result.returncode == 2, result.stderr[-3000:]
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("trainer: error:")]
        assert len(errors) == 1, result.stderr[-3000:]
        assert f"lost the connection to the store {MYSQL_ROOT}/{db}" in errors[0]
        assert "run the command again" in errors[0]
        assert "Traceback" not in result.stderr
        assert newest_valid(artifacts) is None
        assert set((await _mysql_counts(db)).values()) == {0}  # the half load was rolled back

        rerun = await asyncio.to_thread(train, tiny_data, artifacts, f"{MYSQL_ROOT}/{db}")
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert newest_valid(artifacts) is not None
        assert await _mysql_counts(db) == {t: clean_counts[t] for t in DATA_TABLES}
        conn = await _mysql(db)
        try:
            statuses = sorted(r[0] for r in await _query(conn, "SELECT status FROM runs"))
        finally:
            conn.close()
        # The lost run could not record its failure; the re-run marks it abandoned.
        assert statuses == ["abandoned", "published"]
    finally:
        await _query(admin, f"DROP DATABASE {db}")
        admin.close()
    record_fault(
        "MariaDB connection KILLed mid-load (trainer blocked inside the load transaction)",
        "trainer exits 2 with one error line naming the store and saying to check the "
        "database and run again; no traceback; the half load is rolled back (0 rows), "
        "nothing published; the re-run publishes with the row counts of one clean run",
    )
