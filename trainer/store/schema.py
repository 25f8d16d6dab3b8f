"""One schema, rendered for SQLite and MySQL so the two never drift apart.

Tables are declared once with portable column types; ``ddl(dialect)`` renders
them. Migrations are numbered; ``MIGRATIONS[n]`` moves a store from version n
to n + 1 and the applied versions are recorded in ``schema_migrations``.
Text keys use a binary collation on MySQL so that ORDER BY sorts exactly as
SQLite does: exports are byte-identical whichever database holds the data.
"""

from __future__ import annotations

from dataclasses import dataclass

SQLITE, MYSQL = "sqlite", "mysql"

_TYPES = {
    SQLITE: {
        "int": "INTEGER",
        "big": "INTEGER",
        "small": "INTEGER",
        "tiny": "INTEGER",
        "text": "TEXT",
        "real": "REAL",
    },
    MYSQL: {
        "int": "INT",
        "big": "BIGINT",
        "small": "SMALLINT",
        "tiny": "TINYINT",
        "text": "TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        "real": "DOUBLE",
    },
}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # int | big | small | tiny | text | real | str:N
    nullable: bool = False

    def render(self, dialect: str) -> str:
        if self.kind.startswith("str:"):
            n = self.kind.split(":")[1]
            sql = (
                f"VARCHAR({n}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                if dialect == MYSQL
                else "TEXT"
            )
        else:
            sql = _TYPES[dialect][self.kind]
        return f"{self.name} {sql}{'' if self.nullable else ' NOT NULL'}"


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    unique: tuple[tuple[str, ...], ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()

    def create(self, dialect: str) -> list[str]:
        parts = [c.render(dialect) for c in self.columns]
        parts.append(f"PRIMARY KEY ({', '.join(self.primary_key)})")
        parts += [f"UNIQUE ({', '.join(u)})" for u in self.unique]
        suffix = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4" if dialect == MYSQL else ""
        stmts = [
            f"CREATE TABLE IF NOT EXISTS {self.name} (\n  " + ",\n  ".join(parts) + f"\n){suffix}"
        ]
        for cols in self.indexes:
            name = f"ix_{self.name}_{'_'.join(cols)}"
            if dialect == MYSQL:
                stmts.append(f"CREATE INDEX {name} ON {self.name} ({', '.join(cols)})")
            else:
                stmts.append(
                    f"CREATE INDEX IF NOT EXISTS {name} ON {self.name} ({', '.join(cols)})"
                )
        return stmts

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


C = Column
MIGRATIONS_TABLE = Table(
    "schema_migrations",
    (C("version", "int"), C("name", "str:100"), C("applied_at", "str:40")),
    ("version",),
)
AUTHORS = Table(
    "authors", (C("author_idx", "int"), C("name", "str:255")), ("author_idx",), (("name",),)
)
WORKS = Table(
    "works",
    (
        C("item_idx", "int"),
        C("work_id", "str:40"),
        C("title", "text"),
        C("author_idx", "int"),
        C("year", "small", nullable=True),
        C("pages", "int", nullable=True),
        C("pages_imputed", "tiny"),
        C("series", "str:255"),
        C("series_volume", "small"),
    ),
    ("item_idx",),
    (("work_id",),),
)
EDITIONS = Table(
    "editions", (C("isbn13", "str:13"), C("item_idx", "int")), ("isbn13",), indexes=(("item_idx",),)
)
SUBJECTS = Table(
    "subjects", (C("subject_id", "int"), C("name", "str:255")), ("subject_id",), (("name",),)
)
WORK_SUBJECTS = Table(
    "work_subjects",
    (C("item_idx", "int"), C("position", "small"), C("subject_id", "int")),
    ("item_idx", "position"),
)
USERS = Table(
    "users",
    (
        C("user_idx", "int"),
        C("user_id", "str:64"),
        C("age", "small", nullable=True),
        C("age_bucket", "str:8"),
        C("country", "str:64"),
    ),
    ("user_idx",),
    (("user_id",),),
)
INTERACTIONS = Table(
    "interactions",
    (C("user_idx", "int"), C("item_idx", "int"), C("rating", "tiny"), C("ts", "big")),
    ("user_idx", "item_idx"),
)
SPLITS = Table(
    "splits",
    (
        C("split_id", "str:40"),
        C("created_at", "str:40"),
        C("config", "text"),
        C("n_train", "int"),
        C("n_val", "int"),
        C("n_test", "int"),
        C("n_cold", "int"),
    ),
    ("split_id",),
)
SPLIT_PARTS = Table(
    "split_parts",
    (C("split_id", "str:40"), C("user_idx", "int"), C("item_idx", "int"), C("part", "tiny")),
    ("split_id", "user_idx", "item_idx"),
)
RUNS = Table(
    "runs",
    (
        C("run_id", "str:40"),
        C("started_at", "str:40"),
        C("ended_at", "str:40", nullable=True),
        C("status", "str:16"),
        C("split_id", "str:40", nullable=True),
        C("published_version", "str:64", nullable=True),
        C("metrics", "text", nullable=True),
        C("message", "text", nullable=True),
    ),
    ("run_id",),
)

TEST_EVALUATIONS = Table(
    "test_evaluations",
    (C("split_id", "str:40"), C("created_at", "str:40"), C("metrics", "text")),
    ("split_id",),
)

# An interaction's weight (an implicit source's count: plays, clicks), only where it is
# not 1.0: explicit data sets leave this table empty. Exports read 1.0 for a missing row.
INTERACTION_WEIGHTS = Table(
    "interaction_weights",
    (C("user_idx", "int"), C("item_idx", "int"), C("weight", "real")),
    ("user_idx", "item_idx"),
)
# Which data set(s) the store holds: a load of another one is refused unless mixing is
# allowed (one row per data set then). `source` is the reader (bookcrossing, goodbooks,
# generic); `location` the resolved data directory.
DATASETS = Table(
    "datasets",
    (
        C("dataset_idx", "int"),
        C("source", "str:40"),
        C("location", "text"),
        C("first_loaded_at", "str:40"),
    ),
    ("dataset_idx",),
)

# A subject's display name: the data's own spelling ("München", "Latin American fiction")
# of the normalised part in `subjects.name`, which is only for matching. A store from
# before this table names its subjects by the part, capitalised, until the next load.
SUBJECT_SPELLINGS = Table(
    "subject_spellings",
    (C("subject_id", "int"), C("spelling", "str:255")),
    ("subject_id",),
)

# Migration n takes the store from version n to n + 1.
MIGRATIONS: tuple[tuple[str, tuple[Table, ...]], ...] = (
    (
        "initial schema",
        (
            AUTHORS,
            WORKS,
            EDITIONS,
            SUBJECTS,
            WORK_SUBJECTS,
            USERS,
            INTERACTIONS,
            SPLITS,
            SPLIT_PARTS,
            RUNS,
        ),
    ),
    # The test split is looked at once per split: baselines only, recorded here.
    ("test evaluations", (TEST_EVALUATIONS,)),
    ("interaction weights", (INTERACTION_WEIGHTS,)),
    ("data sets", (DATASETS,)),
    ("subject spellings", (SUBJECT_SPELLINGS,)),
)
SCHEMA_VERSION = len(MIGRATIONS)


def ddl(dialect: str) -> list[list[str]]:
    """Statements of each migration, for ``dialect``."""
    return [[s for t in tables for s in t.create(dialect)] for _, tables in MIGRATIONS]
