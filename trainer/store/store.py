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

import contextlib
import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bookrec.log import kv
from trainer.cleaning.catalog import UNKNOWN_AUTHOR
from trainer.cleaning.clean import CleanData, Cleaned
from trainer.cleaning.columnar import CHUNK, Columnar
from trainer.errors import InputError
from trainer.evaluation.split import COLD, TEST, TRAIN, VAL, Rows, SplitConfig, assign_rows
from trainer.snapshot import Snapshot
from trainer.store import schema
from trainer.store.drivers import Driver, Row, StoreError, connect, redact
from trainer.store.schema import MYSQL, Table

log = logging.getLogger("trainer.store")
BATCH = 5000
MIGRATION_LOCK = "bookrec.store.migrate"  # MySQL's named lock around migrate()
MIGRATION_WAIT_S = 120
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
        """Apply the migrations this store lacks; returns the schema version. One trainer
        at a time (``_migration_lock``): the others then find them applied. A store that
        is up to date takes no lock (another command may be writing to it)."""
        if await self.schema_version() == schema.SCHEMA_VERSION:
            return schema.SCHEMA_VERSION
        async with self._migration_lock():
            return await self._migrate()

    @contextlib.asynccontextmanager
    async def _migration_lock(self) -> AsyncIterator[None]:
        """Hosts of one shared study open an empty store together; unlocked, each applied
        version 1 and all but one failed on its schema_migrations row. MySQL: a named
        lock on this connection; SQLite: its write lock (DDL is transactional there)."""
        if self.db.dialect != MYSQL:
            await self.db.begin()  # BEGIN IMMEDIATE
            try:
                yield
            except BaseException:
                await self.db.rollback()
                raise
            await self.db.commit()
            return
        got = await self.db.fetchall(
            "SELECT GET_LOCK(:name, :wait)", {"name": MIGRATION_LOCK, "wait": MIGRATION_WAIT_S}
        )
        if got[0][0] != 1:
            raise StoreError(
                f"another trainer has been migrating {self.db.url} for {MIGRATION_WAIT_S} s; "
                "wait for it to finish (or find the stuck process) and run again"
            )
        try:
            yield
        finally:
            await self.db.fetchall("SELECT RELEASE_LOCK(:name)", {"name": MIGRATION_LOCK})

    async def _migrate(self) -> int:
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

    async def _stream(
        self, table: Table, chunks: Iterable[Sequence[Sequence[Any]]], what: str
    ) -> int:
        """Bulk-load ``chunks`` of rows (one multi-row statement per chunk on MySQL)."""
        sql = upsert_sql(self.db.dialect, table)
        n = 0
        for rows in chunks:
            await self.db.executemany(sql, rows)
            n += len(rows)
            if n % (10 * CHUNK) < len(rows):
                self.progress(f"loading {what}: {n}")
        return n

    async def _pull_index(self, db: Columnar, table: str, key: str, idx: str) -> None:
        """The store's key -> index of ``table`` into the engine as ``store_<table>``."""
        db.execute(f"CREATE OR REPLACE TABLE store_{table} (key VARCHAR, idx BIGINT)")
        async for rows in self.db.chunks(f"SELECT {key}, {idx} FROM {table}", size=CHUNK):
            db.insert(f"store_{table}", ("key", "idx"), [(str(k), int(i)) for k, i in rows])

    async def _assign(self, db: Columnar, table: str, key: str, idx: str, keys_sql: str) -> int:
        """Stable indices in ``idx_<table>``: known keys keep theirs, new keys get the next
        ones in sorted order. Returns how many are new."""
        await self._pull_index(db, table, key, idx)
        db.execute(
            f"""CREATE OR REPLACE TABLE idx_{table} AS
            WITH new AS (SELECT DISTINCT k AS key FROM ({keys_sql}) ANTI JOIN store_{table} s
                         ON s.key = k)
            SELECT key, idx, false AS is_new FROM store_{table}
            UNION ALL
            SELECT key, (SELECT coalesce(max(idx), -1) FROM store_{table})
                        + row_number() OVER (ORDER BY key) AS idx, true FROM new"""
        )
        return int(db.scalar(f"SELECT count(*) FROM idx_{table} WHERE is_new"))

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
        self, data: Cleaned | CleanData, dataset: DataSet | None = None, allow_mixed: bool = False
    ) -> LoadSummary:
        """Load clean data in one transaction; re-running it changes nothing.

        Bulk: indices are assigned in the columnar engine, beside the clean tables,
        and the rows go to the store in chunks of upserts. With ``dataset``, the store
        records which data set it holds and refuses (InputError, nothing written) a
        different one unless ``allow_mixed``.
        """
        start = time.perf_counter()
        cleaned = data if isinstance(data, Cleaned) else Cleaned.of(data)
        await self.db.begin()
        try:
            if dataset is not None:
                await self._claim(dataset, allow_mixed)
            summary = await self._load(cleaned, start)
            await self.db.commit()
        except BaseException:
            await self.db.rollback()
            raise
        finally:
            if cleaned is not data:
                cleaned.close()
        log.info("store loaded", extra=kv(store=self.db.url, **asdict(summary)))
        return summary

    async def _load(self, data: Cleaned, start: float) -> LoadSummary:
        db = data.db
        new_works = await self._assign(
            db, "works", "work_id", "item_idx", "SELECT work_id AS k FROM works"
        )
        await self._assign(
            db, "authors", "name", "author_idx",
            f"SELECT coalesce(nullif(author, ''), '{UNKNOWN_AUTHOR}') AS k FROM works",
        )  # fmt: skip
        await self._assign(db, "subjects", "name", "subject_id", "SELECT part AS k FROM work_parts")
        new_users = await self._assign(
            db, "users", "user_id", "user_idx", "SELECT user_id AS k FROM users"
        )
        fresh_subjects = not await self.db.fetchall("SELECT 1 FROM work_subjects LIMIT 1")
        fresh_weights = not await self.db.fetchall("SELECT 1 FROM interaction_weights LIMIT 1")
        await self._stream(
            schema.AUTHORS,
            db.chunks("SELECT idx, key FROM idx_authors WHERE is_new ORDER BY idx"),
            "authors",
        )
        await self._stream(
            schema.SUBJECTS,
            db.chunks("SELECT idx, key FROM idx_subjects WHERE is_new ORDER BY idx"),
            "subjects",
        )
        db.execute("CREATE OR REPLACE TABLE spellings (part VARCHAR, spelling VARCHAR)")
        db.insert("spellings", ("part", "spelling"), list(data.subject_spellings.items()))
        await self._stream(
            schema.SUBJECT_SPELLINGS,
            db.chunks(
                f"SELECT s.idx, p.spelling FROM spellings p JOIN idx_subjects s ON s.key = p.part "
                f"WHERE length(p.spelling) <= {SPELLING_CHARS} ORDER BY s.idx"
            ),
            "subject spellings",
        )
        await self._stream(
            schema.WORKS,
            db.chunks(
                f"""SELECT i.idx, w.work_id, w.title, a.idx, w.year, w.pages,
                       CAST(w.pages_imputed AS INT), w.series, w.series_volume
                FROM works w JOIN idx_works i ON i.key = w.work_id
                JOIN idx_authors a ON a.key = coalesce(nullif(w.author, ''), '{UNKNOWN_AUTHOR}')
                ORDER BY w.work_id"""
            ),
            "works",
        )
        await self._stream(
            schema.EDITIONS,
            db.chunks(
                "SELECT e.isbn, i.idx FROM work_isbns e JOIN idx_works i ON i.key = e.work_id"
            ),
            "editions",
        )
        if not fresh_subjects:
            for chunk in db.chunks(
                "SELECT i.idx FROM works w JOIN idx_works i ON i.key = w.work_id", 1000
            ):
                marks = ", ".join(f":i{j}" for j in range(len(chunk)))
                await self.db.execute(
                    f"DELETE FROM work_subjects WHERE item_idx IN ({marks})",
                    {f"i{j}": int(r[0]) for j, r in enumerate(chunk)},
                )
        await self._stream(
            schema.WORK_SUBJECTS,
            db.chunks(
                "SELECT i.idx, p.position, s.idx FROM work_parts p JOIN idx_works i "
                "ON i.key = p.work_id JOIN idx_subjects s ON s.key = p.part ORDER BY 1, 2"
            ),
            "work subjects",
        )
        await self._stream(
            schema.USERS,
            db.chunks(
                "SELECT i.idx, u.user_id, u.age, u.age_bucket, u.country FROM users u "
                "JOIN idx_users i ON i.key = u.user_id ORDER BY u.user_id"
            ),
            "users",
        )
        db.execute(
            """CREATE OR REPLACE TABLE loaded AS
            SELECT u.idx AS user_idx, w.idx AS item_idx, r.rating, r.ts, r.weight
            FROM interactions r JOIN idx_users u ON u.key = r.user_id
            JOIN idx_works w ON w.key = r.work_id"""
        )
        if db.count("loaded") != db.count("interactions"):
            (user, work) = db.all(
                "SELECT user_id, work_id FROM interactions r WHERE NOT EXISTS (SELECT 1 FROM "
                "loaded l JOIN idx_users u ON u.idx = l.user_idx JOIN idx_works w ON "
                "w.idx = l.item_idx WHERE u.key = r.user_id AND w.key = r.work_id) LIMIT 1"
            )[0]
            raise KeyError(f"interaction ({user!r}, {work!r}) names a user or work not loaded")
        n = await self._stream(
            schema.INTERACTIONS,
            db.chunks(
                "SELECT user_idx, item_idx, rating, ts FROM loaded ORDER BY user_idx, item_idx"
            ),
            "interactions",
        )
        if not fresh_weights:
            # A loaded interaction back at weight 1.0 loses its stored weight.
            db.execute("CREATE OR REPLACE TABLE stored_weights (user_idx BIGINT, item_idx BIGINT)")
            async for rows in self.db.chunks("SELECT user_idx, item_idx FROM interaction_weights"):
                db.insert("stored_weights", ("user_idx", "item_idx"), rows)
            stale = (
                "SELECT user_idx, item_idx FROM loaded WHERE weight = 1.0 "
                "INTERSECT SELECT * FROM stored_weights"
            )
            for chunk in db.chunks(stale, BATCH):
                await self.db.executemany(
                    "DELETE FROM interaction_weights WHERE user_idx = :user AND item_idx = :item",
                    chunk,
                )
        await self._stream(
            schema.INTERACTION_WEIGHTS,
            db.chunks(
                "SELECT user_idx, item_idx, weight FROM loaded WHERE weight <> 1.0 ORDER BY 1, 2"
            ),
            "interaction weights",
        )
        return LoadSummary(
            db.count("works"),
            new_works,
            db.count("users"),
            new_users,
            n,
            round(time.perf_counter() - start, 3),
        )

    # -- split --------------------------------------------------------------------------

    async def _interaction_arrays(
        self, sql: str, params: dict[str, Any] | None = None
    ) -> npt.NDArray[np.int64]:
        """An integer query's rows as one array, read a chunk at a time."""
        parts = [
            np.array(rows, dtype=np.int64) async for rows in self.db.chunks(sql, params, CHUNK)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, 5), dtype=np.int64)

    async def _ids(self, sql: str) -> list[str]:
        """Ids by their dense index (``sql`` selects index, id in index order)."""
        out: list[str] = []
        async for rows in self.db.chunks(sql):
            for i, key in rows:
                if int(i) != len(out):
                    raise StoreError(f"{sql}: the index is not dense 0..n-1: the store is corrupt")
                out.append(str(key))
        return out

    async def freeze_split(self, cfg: SplitConfig) -> str:
        """Assign every interaction to a part and store it; an identical split is reused."""
        arr = await self._interaction_arrays(
            "SELECT user_idx, item_idx, rating, ts FROM interactions ORDER BY user_idx, item_idx"
        )
        if not len(arr):
            raise StoreError(f"store {self.db.url} holds no interactions: load data first")
        users = await self._ids("SELECT user_idx, user_id FROM users ORDER BY user_idx")
        works = await self._ids("SELECT item_idx, work_id FROM works ORDER BY item_idx")
        weights = _aligned_weights(
            arr[:, 0],
            arr[:, 1],
            await self.db.fetchall(
                "SELECT user_idx, item_idx, weight FROM interaction_weights "
                "ORDER BY user_idx, item_idx"
            ),
        )
        ratings, timestamps = arr[:, 2].astype(np.int8), arr[:, 3].copy()
        rows = Rows(arr[:, 0], arr[:, 1], users, works, ratings, timestamps, weights)
        parts, sid = assign_rows(rows, cfg)
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
            await self._stream(
                schema.SPLIT_PARTS,
                (
                    [
                        (sid, u, i, p)
                        for u, i, p in zip(
                            arr[s : s + CHUNK, 0].tolist(),
                            arr[s : s + CHUNK, 1].tolist(),
                            parts[s : s + CHUNK].tolist(),
                            strict=True,
                        )
                    ]
                    for s in range(0, len(arr), CHUNK)
                ),
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
        """One consistent read of the store for ``split_id``, a chunk at a time."""
        await self.db.begin(consistent_snapshot=True)
        try:
            if not await self.db.fetchall(
                "SELECT 1 FROM splits WHERE split_id = :sid", {"sid": split_id}
            ):
                raise StoreError(f"no split {split_id!r} in {self.db.url}; run `trainer split`")
            works = await self._works()
            n = len(works["work_ids"])
            isbns: list[list[str]] = [[] for _ in range(n)]
            async for rows in self.db.chunks(
                "SELECT item_idx, isbn13 FROM editions ORDER BY isbn13"
            ):
                for item, isbn in rows:
                    isbns[int(item)].append(str(isbn))
            subj: list[list[str]] = [[] for _ in range(n)]
            async for rows in self.db.chunks(
                "SELECT ws.item_idx, s.name FROM work_subjects ws "
                "JOIN subjects s ON s.subject_id = ws.subject_id ORDER BY ws.item_idx, ws.position"
            ):
                for item, name in rows:
                    subj[int(item)].append(str(name))
            spellings = await self.db.fetchall(
                "SELECT s.name, sp.spelling FROM subject_spellings sp "
                "JOIN subjects s ON s.subject_id = sp.subject_id ORDER BY s.name"
            )
            user_ids: list[str] = []
            age_buckets: list[str] = []
            countries: list[str] = []
            async for rows in self.db.chunks(
                "SELECT user_idx, user_id, age_bucket, country FROM users ORDER BY user_idx"
            ):
                for _, uid, bucket, country in rows:
                    user_ids.append(str(uid))
                    age_buckets.append(str(bucket))
                    countries.append(str(country))
            arr = (
                await self._interaction_arrays(
                    "SELECT i.user_idx, i.item_idx, i.rating, i.ts, p.part FROM interactions i "
                    "JOIN split_parts p ON p.split_id = :sid AND p.user_idx = i.user_idx "
                    "AND p.item_idx = i.item_idx ORDER BY i.user_idx, i.item_idx",
                    {"sid": split_id},
                )
            ).reshape(-1, 5)
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
        return Snapshot(
            split_id=split_id,
            work_ids=works["work_ids"],
            titles=works["titles"],
            authors=works["authors"],
            years=np.array(works["years"], dtype=np.int16),
            pages=np.array(works["pages"], dtype=np.int32),
            series=works["series"],
            series_volume=np.array(works["series_volume"], dtype=np.int16),
            isbns=isbns,
            subjects=subj,
            user_ids=user_ids,
            age_buckets=age_buckets,
            countries=countries,
            users=arr[:, 0].astype(np.int32),
            items=arr[:, 1].astype(np.int32),
            ratings=arr[:, 2].astype(np.int8),
            timestamps=arr[:, 3].astype(np.int64),
            parts=arr[:, 4].astype(np.int8),
            weights=_aligned_weights(arr[:, 0], arr[:, 1], weights),
            subject_spellings={str(part): str(spelling) for part, spelling in spellings},
        )

    async def _works(self) -> dict[str, list[Any]]:
        cols: dict[str, list[Any]] = {
            k: []
            for k in ("work_ids", "titles", "authors", "years", "pages", "series", "series_volume")
        }
        async for rows in self.db.chunks(
            "SELECT w.item_idx, w.work_id, w.title, a.name, w.year, w.pages, w.series, "
            "w.series_volume FROM works w JOIN authors a ON a.author_idx = w.author_idx "
            "ORDER BY w.item_idx"
        ):
            for idx, wid, title, author, year, pages, series, vol in rows:
                if int(idx) != len(cols["work_ids"]):
                    raise StoreError("works.item_idx is not dense 0..n-1: the store is corrupt")
                cols["work_ids"].append(str(wid))
                cols["titles"].append(str(title))
                cols["authors"].append(str(author))
                cols["years"].append(year or 0)
                cols["pages"].append(pages or 0)
                cols["series"].append(str(series))
                cols["series_volume"].append(vol)
        return cols

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
