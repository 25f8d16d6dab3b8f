"""Raw rows -> clean, consolidated data ready for the store, with a report.

Every rule runs in the columnar engine (trainer/cleaning/columnar.py); ``Cleaned``
holds its tables until the store has loaded them (``Store.load``) and then closes
it. ``CleanData`` is the same data as Python rows, for small hand-made sets (tests)
and for tools that want the rows (``Cleaned.works`` / ``users`` / ``interactions``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trainer.cleaning.catalog import Work, merge_editions, read_works
from trainer.cleaning.columnar import Columnar
from trainer.cleaning.interactions import (
    Interaction,
    KCore,
    consolidate_table,
    kcore_table,
    read_interactions,
)
from trainer.cleaning.report import CleaningReport
from trainer.cleaning.rules import EVERY_RULE, RATINGS_KNOWN_BOOK, RATINGS_VALID_ISBN
from trainer.cleaning.users import AGE_BUCKETS, UNKNOWN
from trainer.errors import InputError
from trainer.sources.raw import RawDataset


@dataclass(frozen=True)
class CleanUser:
    user_id: str
    age: int | None
    age_bucket: str
    country: str


@dataclass
class CleanData:
    works: list[Work]  # sorted by work_id
    users: list[CleanUser]  # sorted by user_id
    interactions: list[Interaction]  # sorted by (user_id, work_id)
    report: CleaningReport = field(default_factory=CleaningReport)
    source: str = ""  # the reader's name (RawDataset.source): the data set's kind
    # normalised subject part -> display name, the data's own spelling (best_spelling)
    subject_spellings: dict[str, str] = field(default_factory=dict)


class Cleaned:
    """Clean data as tables: works, work_isbns, work_parts, users, interactions."""

    def __init__(
        self, db: Columnar, report: CleaningReport, source: str, spellings: dict[str, str]
    ) -> None:
        self.db = db
        self.report = report
        self.source = source
        self.subject_spellings = spellings

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Cleaned:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def works(self) -> list[Work]:
        return read_works(self.db)

    @property
    def users(self) -> list[CleanUser]:
        return [
            CleanUser(u, None if a is None else int(a), b, c)
            for u, a, b, c in self.db.all(
                "SELECT user_id, age, age_bucket, country FROM users ORDER BY user_id"
            )
        ]

    @property
    def interactions(self) -> list[Interaction]:
        return read_interactions(self.db)

    @staticmethod
    def of(data: CleanData) -> Cleaned:
        """Python rows as tables (what ``Store.load`` loads)."""
        db = Columnar.open()
        db.execute(
            "CREATE TABLE works (work_id VARCHAR, title VARCHAR, author VARCHAR, year BIGINT, "
            "pages BIGINT, pages_imputed BOOLEAN, series VARCHAR, series_volume BIGINT)"
        )
        db.execute("CREATE TABLE work_isbns (work_id VARCHAR, isbn VARCHAR)")
        db.execute("CREATE TABLE work_parts (work_id VARCHAR, position BIGINT, part VARCHAR)")
        db.execute(
            "CREATE TABLE users (user_id VARCHAR, age BIGINT, age_bucket VARCHAR, country VARCHAR)"
        )
        db.execute(
            "CREATE TABLE interactions (user_id VARCHAR, work_id VARCHAR, rating BIGINT, "
            "ts BIGINT, weight DOUBLE)"
        )
        w = data.works
        db.insert(
            "works",
            ("work_id", "title", "author", "year", "pages", "pages_imputed", "series",
             "series_volume"),
            [(x.work_id, x.title, x.author, x.year, x.pages, x.pages_imputed, x.series,
              x.series_volume) for x in w],
        )  # fmt: skip
        db.insert("work_isbns", ("work_id", "isbn"), [(x.work_id, i) for x in w for i in x.isbns])
        db.insert(
            "work_parts",
            ("work_id", "position", "part"),
            [(x.work_id, p, s) for x in w for p, s in enumerate(x.subjects)],
        )
        db.insert(
            "users",
            ("user_id", "age", "age_bucket", "country"),
            [(u.user_id, u.age, u.age_bucket, u.country) for u in data.users],
        )
        db.insert(
            "interactions", ("user_id", "work_id", "rating", "ts", "weight"), data.interactions
        )
        return Cleaned(db, data.report, data.source, dict(data.subject_spellings))


def clean(raw: RawDataset, k: KCore) -> Cleaned:
    """Run every cleaning rule on ``raw``'s tables; the caller closes the result."""
    report = CleaningReport(undeclared=frozenset(EVERY_RULE) - set(raw.rules))
    for r in raw.reports:
        why = r.why or f"{r.recovered} recovered; unparseable lines"
        report.add(f"read {r.file}", r.lines, r.rows, why)
        if r.rejected_examples:
            report.notes[f"rejected {r.file}"] = r.rejected_examples
    db = raw.tables()
    try:
        spellings = merge_editions(db, report)
        rating_rows = db.count("raw_ratings")
        if not consolidate_table(db, report):
            dropped = {r.rule: r.dropped for r in report.rules}
            bad = dropped.get(RATINGS_VALID_ISBN)
            isbns = f"invalid ISBNs {bad}, " if bad is not None else ""
            raise InputError(
                f"{raw.source}: no rating names a known book "
                f"({rating_rows} rating rows; {isbns}unknown books "
                f"{dropped.get(RATINGS_KNOWN_BOOK, 0)}): check that the ratings and books files "
                "belong together"
            )
        kcore_table(db, k, report)
        _users(db, report)
        for table in ("raw_books", "raw_ratings", "raw_users", "raw_subjects", "isbn_canon"):
            db.execute(f"DROP TABLE IF EXISTS {table}")
    except BaseException:
        db.close()
        raw.db = None
        raise
    raw.db = None  # the tables are the result's now
    return Cleaned(db, report, raw.source, spellings)


def _bucket_sql() -> str:
    cases = " ".join(
        f"WHEN age BETWEEN {lo} AND {hi} THEN '{label}'" for lo, hi, label in AGE_BUCKETS
    )
    return f"CASE WHEN age IS NULL THEN '{UNKNOWN}' {cases} END"


def _users(db: Columnar, report: CleaningReport) -> None:
    """Profiles (the last row of a user wins) cleaned; users who rated without one get
    an empty profile."""
    db.execute(
        f"""CREATE OR REPLACE TABLE users AS
        WITH p AS (SELECT user_id, arg_max(location, pos) AS location, arg_max(age, pos) AS age
                   FROM raw_users GROUP BY user_id),
        ages AS (SELECT age AS raw, py_age(age) AS age FROM (SELECT DISTINCT age FROM p)),
        places AS (SELECT location, py_country(location) AS country
                   FROM (SELECT DISTINCT location FROM p)),
        profiled AS (SELECT p.user_id, a.age, c.country FROM p
                     JOIN ages a ON a.raw = p.age JOIN places c USING (location)),
        bare AS (SELECT DISTINCT user_id, NULL::BIGINT AS age, '' AS country
                 FROM interactions ANTI JOIN p USING (user_id))
        SELECT user_id, age, {_bucket_sql()} AS age_bucket, country
        FROM (SELECT * FROM profiled UNION ALL SELECT * FROM bare) ORDER BY user_id"""
    )
    report.notes["users_without_profile"] = int(
        db.scalar(
            "SELECT count(DISTINCT user_id) FROM interactions ANTI JOIN raw_users USING (user_id)"
        )
    )
    total, age_unknown, country_unknown = db.all(
        "SELECT count(*), count(*) FILTER (WHERE age IS NULL), "
        "count(*) FILTER (WHERE country = '') FROM users"
    )[0]
    report.notes["users"] = {
        "total": int(total),
        "age_unknown": int(age_unknown),
        "country_unknown": int(country_unknown),
        "with_interactions": int(db.scalar("SELECT count(DISTINCT user_id) FROM interactions")),
    }
