"""The store's operations: migrate, load clean data, freeze a split, export, record runs.

Contract: every write runs in one transaction, so a failed load or split
leaves the store as it was. Loads are idempotent upserts keyed by external ids,
and indices are stable: a work or user keeps its ``item_idx`` / ``user_idx``
across loads and retrains; new ones get the next free index, assigned in
sorted id order so the same input always gives the same indices.

A store holds one data set: the first load records it (reader + resolved data
directory, table ``datasets``); a load of another one is refused unless mixing
is allowed, so two data directories never merge their users by accident.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bookrec.log import kv
from trainer.cleaning.catalog import UNKNOWN_AUTHOR
from trainer.cleaning.clean import CleanData
from trainer.errors import InputError
from trainer.evaluation.split import COLD, TEST, TRAIN, VAL, SplitConfig, assign
from trainer.snapshot import Snapshot
from trainer.store import schema
from trainer.store.drivers import Driver, Row, StoreError, connect, redact
from trainer.store.schema import MYSQL, Table

log = logging.getLogger("trainer.store")
BATCH = 5000
SPELLING_CHARS = 255  # subject_spellings.spelling; a longer one is shown as its part


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def upsert_sql(dialect: str, table: Table) -> str:
    cols = table.column_names
    values = ", ".join(f":{c}" for c in cols)
    head = f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({values})"
    rest = [c for c in cols if c not in table.primary_key]
    if dialect == MYSQL:
        if not rest:
            return head.replace("INSERT", "INSERT IGNORE", 1)
        return head + " ON DUPLICATE KEY UPDATE " + ", ".join(f"{c}=VALUES({c})" for c in rest)
    if not rest:
        return head + f" ON CONFLICT ({', '.join(table.primary_key)}) DO NOTHING"
    updates = ", ".join(f"{c}=excluded.{c}" for c in rest)
    return head + f" ON CONFLICT ({', '.join(table.primary_key)}) DO UPDATE SET {updates}"


@dataclass(frozen=True)
class DataSet:
    """Which data a load comes from: the reader and the resolved data directory."""

    source: str  # RawDataset.source: bookcrossing, goodbooks, generic
    location: str


@dataclass(frozen=True)
class LoadSummary:
    works: int
    new_works: int
    users: int
    new_users: int
    interactions: int
    seconds: float


class Store:
    """Not safe for concurrent use from several tasks; open one per job."""

    def __init__(self, driver: Driver, progress: Callable[[str], None] | None = None) -> None:
        self.db = driver
        self.progress = progress or (lambda _msg: None)

    @staticmethod
    async def open(url: str, progress: Callable[[str], None] | None = None) -> Store:
        store = Store(await connect(url), progress)
        try:
            await store.migrate()
        except Exception:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        await self.db.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- schema -------------------------------------------------------------------------

    async def schema_version(self) -> int:
        for stmt in schema.MIGRATIONS_TABLE.create(self.db.dialect):
            await self.db.execute(stmt)
        rows = await self.db.fetchall("SELECT MAX(version) FROM schema_migrations")
        return int(rows[0][0] or 0)

    async def migrate(self) -> int:
        """Apply the migrations this store lacks; returns the schema version."""
        current = await self.schema_version()
        if current > schema.SCHEMA_VERSION:
            raise StoreError(
                f"store {self.db.url} has schema version {current}, newer than this trainer's "
                f"{schema.SCHEMA_VERSION}; upgrade the trainer"
            )
        for version, statements in enumerate(schema.ddl(self.db.dialect), start=1):
            if version <= current:
                continue
            # MySQL commits DDL implicitly; each statement is idempotent (IF NOT EXISTS).
            for stmt in statements:
                try:
                    await self.db.execute(stmt)
                except Exception as e:
                    if "Duplicate key name" not in str(e):  # index already there (MySQL)
                        raise
            await self.db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) "
                "VALUES (:version, :name, :at)",
                {"version": version, "name": schema.MIGRATIONS[version - 1][0], "at": _now()},
            )
            log.info("migrated", extra=kv(version=version, store=self.db.url))
        return schema.SCHEMA_VERSION

    # -- load ---------------------------------------------------------------------------

    async def _index(self, table: str, key: str, idx: str) -> dict[str, int]:
        return {
            str(k): int(i) for k, i in await self.db.fetchall(f"SELECT {key}, {idx} FROM {table}")
        }

    @staticmethod
    def _assign(existing: dict[str, int], keys: Iterable[str]) -> tuple[dict[str, int], int]:
        """Stable indices: known keys keep theirs, new keys get the next ones in sorted order."""
        out = dict(existing)
        nxt = max(existing.values(), default=-1) + 1
        new = sorted(set(keys) - existing.keys())
        for k in new:
            out[k] = nxt
            nxt += 1
        return out, len(new)

    async def _write(self, table: Table, rows: Sequence[Sequence[Any]], what: str) -> None:
        sql = upsert_sql(self.db.dialect, table)
        for start in range(0, len(rows), BATCH):
            await self.db.executemany(sql, rows[start : start + BATCH])
            if len(rows) > 10 * BATCH and (start // BATCH) % 40 == 0:
                self.progress(f"loading {what}: {min(start + BATCH, len(rows))}/{len(rows)}")

    async def datasets(self) -> list[dict[str, str]]:
        rows = await self.db.fetchall(
            "SELECT source, location, first_loaded_at FROM datasets ORDER BY dataset_idx"
        )
        return [
            {"source": str(r[0]), "location": str(r[1]), "first_loaded_at": str(r[2])} for r in rows
        ]

    async def _claim(self, dataset: DataSet, allow_mixed: bool) -> None:
        """Record ``dataset`` as held by this store; refuse a second one unless allowed."""
        rows = await self.db.fetchall(
            "SELECT dataset_idx, source, location, first_loaded_at FROM datasets "
            "ORDER BY dataset_idx"
        )
        if any((str(r[1]), str(r[2])) == (dataset.source, dataset.location) for r in rows):
            return
        if rows and not allow_mixed:
            held = "; ".join(f"{r[1]} data from {r[2]} (first loaded {r[3]})" for r in rows)
            beside = f"sqlite:///{Path(dataset.location) / 'bookrec.sqlite'}"
            raise InputError(
                f"store {redact(self.db.url)} holds {held}, and this run reads {dataset.source} "
                f"data from {dataset.location}: loading it would merge two data sets' users "
                "and books into one model. Use a store of its own (--store URL; without "
                f"--store or BOOKREC_TRAIN_STORE_URL it is the data's own, here {beside}), "
                "or pass --allow-mixed-data (BOOKREC_TRAIN_ALLOW_MIXED_DATA=1) to add it to "
                "this store"
            )
        nxt = max((int(r[0]) for r in rows), default=-1) + 1
        await self.db.execute(
            "INSERT INTO datasets (dataset_idx, source, location, first_loaded_at) "
            "VALUES (:idx, :source, :location, :at)",
            {"idx": nxt, "source": dataset.source, "location": dataset.location, "at": _now()},
        )
        if rows:
            log.warning(
                "store holds mixed data sets",
                extra=kv(store=redact(self.db.url), added=dataset.location, held=len(rows)),
            )

    async def load(
        self, data: CleanData, dataset: DataSet | None = None, allow_mixed: bool = False
    ) -> LoadSummary:
        """Upsert clean data in one transaction; re-running it changes nothing.

        With ``dataset``, the store records which data set it holds and refuses
        (InputError, nothing written) a different one unless ``allow_mixed``.
        """
        start = time.perf_counter()
        await self.db.begin()
        try:
            if dataset is not None:
                await self._claim(dataset, allow_mixed)
            work_idx, new_works = self._assign(
                await self._index("works", "work_id", "item_idx"), (w.work_id for w in data.works)
            )
            author_idx, _ = self._assign(
                await self._index("authors", "name", "author_idx"),
                (w.author or UNKNOWN_AUTHOR for w in data.works),
            )
            subject_id, _ = self._assign(
                await self._index("subjects", "name", "subject_id"),
                (s for w in data.works for s in w.subjects),
            )
            user_idx, new_users = self._assign(
                await self._index("users", "user_id", "user_idx"), (u.user_id for u in data.users)
            )
            await self._write(
                schema.AUTHORS, sorted((i, n) for n, i in author_idx.items()), "authors"
            )
            await self._write(
                schema.SUBJECTS, sorted((i, n) for n, i in subject_id.items()), "subjects"
            )
            await self._write(
                schema.SUBJECT_SPELLINGS,
                sorted(
                    (subject_id[part], spelling)
                    for part, spelling in data.subject_spellings.items()
                    if part in subject_id and len(spelling) <= SPELLING_CHARS
                ),
                "subject spellings",
            )
            await self._write(
                schema.WORKS,
                [
                    (
                        work_idx[w.work_id],
                        w.work_id,
                        w.title,
                        author_idx[w.author or UNKNOWN_AUTHOR],
                        w.year,
                        w.pages,
                        int(w.pages_imputed),
                        w.series,
                        w.series_volume,
                    )
                    for w in data.works
                ],
                "works",
            )
            await self._write(
                schema.EDITIONS,
                [(isbn, work_idx[w.work_id]) for w in data.works for isbn in w.isbns],
                "editions",
            )
            loaded = [work_idx[w.work_id] for w in data.works]
            for s in range(0, len(loaded), 1000):
                chunk = loaded[s : s + 1000]
                marks = ", ".join(f":i{j}" for j in range(len(chunk)))
                await self.db.execute(
                    f"DELETE FROM work_subjects WHERE item_idx IN ({marks})",
                    {f"i{j}": item for j, item in enumerate(chunk)},
                )
            await self._write(
                schema.WORK_SUBJECTS,
                [
                    (work_idx[w.work_id], pos, subject_id[s])
                    for w in data.works
                    for pos, s in enumerate(w.subjects)
                ],
                "work subjects",
            )
            await self._write(
                schema.USERS,
                [
                    (user_idx[u.user_id], u.user_id, u.age, u.age_bucket, u.country)
                    for u in data.users
                ],
                "users",
            )
            await self._write(
                schema.INTERACTIONS,
                [(user_idx[u], work_idx[w], r, t) for u, w, r, t, _ in data.interactions],
                "interactions",
            )
            await self._write_weights(data, user_idx, work_idx)
            await self.db.commit()
        except BaseException:
            await self.db.rollback()
            raise
        summary = LoadSummary(
            len(data.works),
            new_works,
            len(data.users),
            new_users,
            len(data.interactions),
            round(time.perf_counter() - start, 3),
        )
        log.info("store loaded", extra=kv(store=self.db.url, **asdict(summary)))
        return summary

    async def _write_weights(
        self, data: CleanData, user_idx: dict[str, int], work_idx: dict[str, int]
    ) -> None:
        """Weights other than 1.0 upserted; a loaded interaction back at 1.0 loses its row."""
        stored = {
            (int(u), int(i))
            for u, i in await self.db.fetchall("SELECT user_idx, item_idx FROM interaction_weights")
        }
        if stored:
            stale = [
                key
                for u, w, _, _, weight in data.interactions
                if weight == 1.0 and (key := (user_idx[u], work_idx[w])) in stored
            ]
            if stale:
                await self.db.executemany(
                    "DELETE FROM interaction_weights WHERE user_idx = :user AND item_idx = :item",
                    stale,
                )
        await self._write(
            schema.INTERACTION_WEIGHTS,
            [
                (user_idx[u], work_idx[w], float(weight))
                for u, w, _, _, weight in data.interactions
                if weight != 1.0
            ],
            "interaction weights",
        )

    # -- split --------------------------------------------------------------------------

    async def freeze_split(self, cfg: SplitConfig) -> str:
        """Assign every interaction to a part and store it; an identical split is reused."""
        rows = await self.db.fetchall(
            "SELECT u.user_id, w.work_id, i.rating, i.ts, i.user_idx, i.item_idx "
            "FROM interactions i JOIN users u ON u.user_idx = i.user_idx "
            "JOIN works w ON w.item_idx = i.item_idx ORDER BY i.user_idx, i.item_idx"
        )
        if not rows:
            raise StoreError(f"store {self.db.url} holds no interactions: load data first")
        user_ids = [str(r[0]) for r in rows]
        work_ids = [str(r[1]) for r in rows]
        ratings = np.array([r[2] for r in rows], dtype=np.int8)
        ts = np.array([r[3] for r in rows], dtype=np.int64)
        weights = _aligned_weights(
            np.array([r[4] for r in rows], dtype=np.int64),
            np.array([r[5] for r in rows], dtype=np.int64),
            await self.db.fetchall(
                "SELECT user_idx, item_idx, weight FROM interaction_weights "
                "ORDER BY user_idx, item_idx"
            ),
        )
        parts, sid = assign(user_ids, work_ids, ratings, ts, cfg, weights)
        if await self.db.fetchall("SELECT 1 FROM splits WHERE split_id = :sid", {"sid": sid}):
            return sid
        counts = [int((parts == p).sum()) for p in (TRAIN, VAL, TEST, COLD)]
        await self.db.begin()
        try:
            await self.db.execute(
                "INSERT INTO splits (split_id, created_at, config, n_train, n_val, n_test, n_cold) "
                "VALUES (:sid, :at, :config, :train, :val, :test, :cold)",
                {
                    "sid": sid,
                    "at": _now(),
                    "config": json.dumps(asdict(cfg), sort_keys=True),
                    **dict(zip(("train", "val", "test", "cold"), counts, strict=True)),
                },
            )
            await self._write(
                schema.SPLIT_PARTS,
                [
                    (sid, int(r[4]), int(r[5]), int(p))
                    for r, p in zip(rows, parts.tolist(), strict=True)
                ],
                "split",
            )
            await self.db.commit()
        except BaseException:
            await self.db.rollback()
            raise
        log.info(
            "split frozen",
            extra=kv(split_id=sid, train=counts[0], val=counts[1], test=counts[2], cold=counts[3]),
        )
        return sid

    # -- export -------------------------------------------------------------------------

    async def export(self, split_id: str) -> Snapshot:
        """One consistent read of the store for ``split_id``."""
        await self.db.begin(consistent_snapshot=True)
        try:
            if not await self.db.fetchall(
                "SELECT 1 FROM splits WHERE split_id = :sid", {"sid": split_id}
            ):
                raise StoreError(f"no split {split_id!r} in {self.db.url}; run `trainer split`")
            works = await self.db.fetchall(
                "SELECT w.item_idx, w.work_id, w.title, a.name, w.year, w.pages, w.series, "
                "w.series_volume FROM works w JOIN authors a ON a.author_idx = w.author_idx "
                "ORDER BY w.item_idx"
            )
            editions = await self.db.fetchall(
                "SELECT item_idx, isbn13 FROM editions ORDER BY isbn13"
            )
            subjects = await self.db.fetchall(
                "SELECT ws.item_idx, s.name FROM work_subjects ws "
                "JOIN subjects s ON s.subject_id = ws.subject_id ORDER BY ws.item_idx, ws.position"
            )
            spellings = await self.db.fetchall(
                "SELECT s.name, sp.spelling FROM subject_spellings sp "
                "JOIN subjects s ON s.subject_id = sp.subject_id ORDER BY s.name"
            )
            users = await self.db.fetchall(
                "SELECT user_idx, user_id, age_bucket, country FROM users ORDER BY user_idx"
            )
            inter = await self.db.fetchall(
                "SELECT i.user_idx, i.item_idx, i.rating, i.ts, p.part FROM interactions i "
                "JOIN split_parts p ON p.split_id = :sid AND p.user_idx = i.user_idx "
                "AND p.item_idx = i.item_idx ORDER BY i.user_idx, i.item_idx",
                {"sid": split_id},
            )
            weights = await self.db.fetchall(
                "SELECT w.user_idx, w.item_idx, w.weight FROM interaction_weights w "
                "JOIN split_parts p ON p.split_id = :sid AND p.user_idx = w.user_idx "
                "AND p.item_idx = w.item_idx ORDER BY w.user_idx, w.item_idx",
                {"sid": split_id},
            )
            await self.db.commit()
        except BaseException:
            await self.db.rollback()
            raise
        n = len(works)
        if [int(w[0]) for w in works] != list(range(n)):
            raise StoreError("works.item_idx is not dense 0..n-1: the store is corrupt")
        isbns: list[list[str]] = [[] for _ in range(n)]
        for item, isbn in editions:
            isbns[int(item)].append(str(isbn))
        subj: list[list[str]] = [[] for _ in range(n)]
        for item, name in subjects:
            subj[int(item)].append(str(name))
        arr = np.array(inter, dtype=np.int64).reshape(-1, 5)
        return Snapshot(
            split_id=split_id,
            work_ids=[str(w[1]) for w in works],
            titles=[str(w[2]) for w in works],
            authors=[str(w[3]) for w in works],
            years=np.array([w[4] or 0 for w in works], dtype=np.int16),
            pages=np.array([w[5] or 0 for w in works], dtype=np.int32),
            series=[str(w[6]) for w in works],
            series_volume=np.array([w[7] for w in works], dtype=np.int16),
            isbns=isbns,
            subjects=subj,
            user_ids=[str(u[1]) for u in users],
            age_buckets=[str(u[2]) for u in users],
            countries=[str(u[3]) for u in users],
            users=arr[:, 0].astype(np.int32),
            items=arr[:, 1].astype(np.int32),
            ratings=arr[:, 2].astype(np.int8),
            timestamps=arr[:, 3].astype(np.int64),
            parts=arr[:, 4].astype(np.int8),
            weights=_aligned_weights(arr[:, 0], arr[:, 1], weights),
            subject_spellings={str(part): str(spelling) for part, spelling in spellings},
        )

    # -- the once-per-split test evaluation ----------------------------------------------

    async def test_evaluation(self, split_id: str) -> dict[str, Any] | None:
        rows = await self.db.fetchall(
            "SELECT metrics FROM test_evaluations WHERE split_id = :sid", {"sid": split_id}
        )
        return json.loads(rows[0][0]) if rows else None

    async def record_test_evaluation(self, split_id: str, metrics: dict[str, Any]) -> None:
        await self.db.execute(
            "INSERT INTO test_evaluations (split_id, created_at, metrics) "
            "VALUES (:sid, :at, :metrics)",
            {"sid": split_id, "at": _now(), "metrics": json.dumps(metrics, sort_keys=True)},
        )

    # -- runs ---------------------------------------------------------------------------

    async def start_run(self) -> str:
        """Runs still marked running were killed: say so, never leave them looking alive."""
        await self.db.execute(
            "UPDATE runs SET status = 'abandoned', ended_at = :at, "
            "message = 'the process ended before the run finished (killed?)' "
            "WHERE status = 'running'",
            {"at": _now()},
        )
        run_id = uuid.uuid4().hex
        await self.db.execute(
            "INSERT INTO runs (run_id, started_at, status) VALUES (:run, :at, 'running')",
            {"run": run_id, "at": _now()},
        )
        return run_id

    async def finish_run(
        self,
        run_id: str,
        status: str,
        split_id: str | None = None,
        published_version: str | None = None,
        metrics: dict[str, Any] | None = None,
        message: str = "",
    ) -> None:
        await self.db.execute(
            "UPDATE runs SET ended_at = :at, status = :status, split_id = :sid, "
            "published_version = :version, metrics = :metrics, message = :message "
            "WHERE run_id = :run",
            {
                "at": _now(),
                "status": status,
                "sid": split_id,
                "version": published_version,
                "metrics": json.dumps(metrics or {}),
                "message": message,
                "run": run_id,
            },
        )

    async def runs(self) -> list[dict[str, Any]]:
        rows = await self.db.fetchall(
            "SELECT run_id, started_at, ended_at, status, split_id, published_version, message "
            "FROM runs ORDER BY started_at, run_id"
        )
        keys = (
            "run_id",
            "started_at",
            "ended_at",
            "status",
            "split_id",
            "published_version",
            "message",
        )
        return [dict(zip(keys, r, strict=True)) for r in rows]


def _aligned_weights(
    users: npt.NDArray[np.int64], items: npt.NDArray[np.int64], stored: list[Row]
) -> npt.NDArray[np.float32]:
    """One weight per interaction (rows sorted by user_idx, item_idx): 1.0 unless stored."""
    out = np.ones(len(users), dtype=np.float32)
    if not stored or not len(users):
        return out
    w = np.array([(r[0], r[1]) for r in stored], dtype=np.int64).reshape(-1, 2)
    width = int(max(items.max(), w[:, 1].max())) + 1
    keys = users * width + items
    wanted = w[:, 0] * width + w[:, 1]
    pos = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    found = keys[pos] == wanted
    out[pos[found]] = np.array([float(r[2]) for r in stored], dtype=np.float32)[found]
    return out
