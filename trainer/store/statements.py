"""SQL written once with named parameters, compiled by SQLAlchemy Core for each driver.

The store's SQL names its values (``WHERE split_id = :split_id``). SQLAlchemy's
compiler turns a statement into the driver's own parameter style (sqlite3's
``?``, asyncmy's ``%s``, escaping a literal ``%`` as ``%%`` there) and says
which parameter each placeholder takes, so a ``?`` or ``%s`` inside a string
literal or a value is never mistaken for a placeholder. SQLAlchemy's one rule:
a literal colon before a word (``':x'``) is written ``\\:x``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.engine import Dialect

from trainer.store.schema import MYSQL, SQLITE

# The paramstyles the drivers take: sqlite3 "qmark", asyncmy "format".
_DIALECTS: dict[str, Dialect] = {
    SQLITE: sqlite.dialect(paramstyle="qmark"),
    MYSQL: mysql.dialect(paramstyle="format"),
}


@dataclass(frozen=True)
class Compiled:
    """A statement in one driver's style and the parameter behind each placeholder."""

    sql: str
    names: tuple[str, ...]  # one per placeholder, in the order the driver binds them
    order: tuple[str, ...]  # each name once, in the order the statement first names it

    def args(self, params: Mapping[str, Any] | None) -> tuple[Any, ...]:
        """The positional values for named ``params``; a missing one is a KeyError naming it."""
        given = params or {}
        return tuple(given[n] for n in self.names)

    def rows(self, rows: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
        """Rows that give their values in ``order``, laid out for the placeholders."""
        if self.names == self.order:
            return rows
        at = [self.order.index(n) for n in self.names]
        return [tuple(row[i] for i in at) for row in rows]


@functools.lru_cache(maxsize=1024)
def compile_sql(sql: str, dialect: str) -> Compiled:
    """``sql`` with ``:name`` parameters, for ``dialect``'s driver (cached: the store repeats)."""
    compiled = text(sql).compile(dialect=_DIALECTS[dialect])
    names = tuple(compiled.positiontup or ())
    return Compiled(compiled.string, names, tuple(dict.fromkeys(names)))
