"""Two small database drivers behind one async interface.

SQL is written once with named parameters (``:name``) and compiled for each
driver's own parameter style by SQLAlchemy Core (trainer/store/statements.py):
a value is always bound, never pasted into the text. SQLite calls run inline
(the trainer is one task; there is nothing to overlap with); asyncmy is
asyncio-native.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from trainer.errors import UserError
from trainer.store.schema import MYSQL, SQLITE
from trainer.store.statements import compile_sql

Row = tuple[Any, ...]
Params = Mapping[str, Any]


class StoreError(UserError):
    """The store cannot be reached or refused an operation; the message says what to do."""


class Driver(Protocol):
    dialect: str
    url: str

    async def execute(self, sql: str, params: Params | None = None) -> None: ...
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Each row gives the values in the order ``sql`` first names its parameters."""
        ...

    async def fetchall(self, sql: str, params: Params | None = None) -> list[Row]: ...
    def chunks(
        self, sql: str, params: Params | None = None, size: int = 100_000
    ) -> AsyncIterator[list[Row]]:
        """The rows of ``sql`` a chunk at a time, never all of them in memory at once."""
        ...

    async def begin(self, consistent_snapshot: bool = False) -> None: ...
    async def commit(self) -> None: ...
    async def rollback(self) -> None: ...
    async def close(self) -> None: ...


def redact(url: str) -> str:
    p = urlparse(url)
    if p.password:
        return url.replace(f":{p.password}@", ":***@")
    return url


class SQLiteDriver:
    dialect = SQLITE

    def __init__(self, path: Path) -> None:
        self.url = f"sqlite:///{path}"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(path, isolation_level=None)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open SQLite store {path}: {e}") from e
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")

    async def execute(self, sql: str, params: Params | None = None) -> None:
        c = compile_sql(sql, self.dialect)
        self.conn.execute(c.sql, c.args(params))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        c = compile_sql(sql, self.dialect)
        self.conn.executemany(c.sql, c.rows(rows))

    async def fetchall(self, sql: str, params: Params | None = None) -> list[Row]:
        c = compile_sql(sql, self.dialect)
        return self.conn.execute(c.sql, c.args(params)).fetchall()

    async def chunks(
        self, sql: str, params: Params | None = None, size: int = 100_000
    ) -> AsyncIterator[list[Row]]:
        c = compile_sql(sql, self.dialect)
        cur = self.conn.execute(c.sql, c.args(params))
        try:
            while rows := cur.fetchmany(size):
                yield rows
        finally:
            cur.close()

    async def begin(self, consistent_snapshot: bool = False) -> None:
        # A read transaction in SQLite is a snapshot; IMMEDIATE takes the write lock early.
        self.conn.execute("BEGIN" if consistent_snapshot else "BEGIN IMMEDIATE")

    async def commit(self) -> None:
        self.conn.execute("COMMIT")

    async def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    async def close(self) -> None:
        self.conn.close()


# asyncmy's codes for a connection the server closed: shutdown, "connection was killed"
# (MariaDB), "server has gone away", "lost connection", "lost connection to server".
_GONE_CODES = frozenset({1053, 1927, 2006, 2013, 2055})


def _connection_gone(e: BaseException) -> bool:
    import asyncmy.errors

    if isinstance(e, asyncmy.errors.InterfaceError | ConnectionError | EOFError):
        return True
    return (
        isinstance(e, asyncmy.errors.OperationalError)
        and bool(e.args)
        and (e.args[0] in _GONE_CODES)
    )


class MySQLDriver:
    dialect = MYSQL

    def __init__(self, url: str, conn: Any) -> None:
        self.url = url
        self.conn = conn
        # Set once the connection is lost: every later call raises it again, so the
        # rollback and run bookkeeping after a failure repeat the one clear error
        # instead of replacing it with asyncmy's "Not connected".
        self.lost: StoreError | None = None

    def _lost(self, e: BaseException) -> StoreError:
        """The one error for a database that went away mid-command."""
        if self.lost is None:
            self.lost = StoreError(
                f"lost the connection to the store {redact(self.url)}: {e}. The open "
                "transaction was rolled back by the database, so nothing of it was kept; "
                "check that the database server is up, then run the command again "
                "(a re-run loads everything once)."
            )
        return self.lost

    @staticmethod
    async def connect(url: str) -> MySQLDriver:
        import asyncmy

        p = urlparse(url)
        try:
            conn = await asyncmy.connect(
                host=p.hostname or "127.0.0.1",
                port=p.port or 3306,
                user=unquote(p.username or "root"),
                password=unquote(p.password or ""),
                database=(p.path or "/test").lstrip("/") or "test",
                charset="utf8mb4",
                autocommit=True,
                connect_timeout=5,
            )
        except Exception as e:  # asyncmy raises OperationalError or OSError subclasses
            raise StoreError(
                f"cannot connect to {redact(url)}: {e}. Is the server running, and are the "
                "user, password and database right?"
            ) from e
        return MySQLDriver(url, conn)

    async def execute(self, sql: str, params: Params | None = None) -> None:
        if self.lost is not None:
            raise self.lost
        c = compile_sql(sql, self.dialect)
        try:
            async with self.conn.cursor() as cur:
                await cur.execute(c.sql, c.args(params))
        except Exception as e:
            if _connection_gone(e):
                raise self._lost(e) from e
            raise

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self.lost is not None:
            raise self.lost
        if rows:
            c = compile_sql(sql, self.dialect)
            try:
                async with self.conn.cursor() as cur:
                    await cur.executemany(c.sql, c.rows(rows))
            except Exception as e:
                if _connection_gone(e):
                    raise self._lost(e) from e
                raise

    async def fetchall(self, sql: str, params: Params | None = None) -> list[Row]:
        if self.lost is not None:
            raise self.lost
        c = compile_sql(sql, self.dialect)
        try:
            async with self.conn.cursor() as cur:
                await cur.execute(c.sql, c.args(params))
                rows: list[Row] = list(await cur.fetchall())
                return rows
        except Exception as e:
            if _connection_gone(e):
                raise self._lost(e) from e
            raise

    async def chunks(
        self, sql: str, params: Params | None = None, size: int = 100_000
    ) -> AsyncIterator[list[Row]]:
        """Streamed from the server (an unbuffered cursor): the client holds one chunk."""
        from asyncmy.cursors import SSCursor

        if self.lost is not None:
            raise self.lost
        c = compile_sql(sql, self.dialect)
        try:
            async with self.conn.cursor(SSCursor) as cur:
                await cur.execute(c.sql, c.args(params))
                while rows := list(await cur.fetchmany(size)):
                    yield rows
        except Exception as e:
            if _connection_gone(e):
                raise self._lost(e) from e
            raise

    async def begin(self, consistent_snapshot: bool = False) -> None:
        if consistent_snapshot:
            await self.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            await self.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        else:
            await self.execute("START TRANSACTION")

    async def commit(self) -> None:
        await self.execute("COMMIT")

    async def rollback(self) -> None:
        if self.lost is None:  # a lost connection's transaction died with it
            await self.execute("ROLLBACK")

    async def close(self) -> None:
        self.conn.close()


async def connect(url: str) -> Driver:
    """``sqlite:///relative/or/absolute.db`` or ``mysql://user:password@host:port/db``."""
    if url.startswith("sqlite:///"):
        return SQLiteDriver(Path(url.removeprefix("sqlite:///")))
    if url.startswith(("mysql://", "mariadb://")):
        return await MySQLDriver.connect(url)
    raise StoreError(f"unsupported store URL {url!r}: use sqlite:///PATH or mysql://USER@HOST/DB")
