"""Ratings -> one interaction per (user, work), filtered to a k-core.

Consolidation: ratings on different editions of one work collapse to one. An
explicit rating (1..10) wins over an implicit one (0); among explicit ratings
the latest wins when timestamps exist, else the highest. An interaction's
weight is 1.0 when explicit; when implicit it is the sum of the weights of the
implicit rows that collapsed into it (an implicit source's counts: plays,
clicks), with the latest timestamp. Then users and works with too few
interactions are dropped, repeatedly, until both thresholds hold at once (a
fixed point: dropping a book can push a user under the threshold).

The rules run in the columnar engine (trainer/cleaning/columnar.py) on the table
raw_ratings, in the order the rows were read: the result is the one of taking them
one by one. The winner among one user's explicit ratings of a work is the greatest
(timestamp, rating) when all of them have a timestamp or none has; when only some
have one, the order they were read in decides (``udfs.fold_explicit``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainer.cleaning import rules
from trainer.cleaning.report import CleaningReport

if TYPE_CHECKING:
    from trainer.cleaning.columnar import Columnar
    from trainer.sources.raw import RawRating

# (user_id, work_id, rating, timestamp or -1, weight)
Interaction = tuple[str, str, int, int, float]


@dataclass(frozen=True)
class KCore:
    min_user_interactions: int = 1
    min_work_interactions: int = 1


_WHY_ONE = (
    "editions merged; explicit beats implicit, then latest, then highest; implicit counts add up"
)


def consolidate_table(db: Columnar, report: CleaningReport) -> int:
    """raw_ratings -> interactions (one per user and work); returns how many."""
    db.execute(
        """CREATE OR REPLACE TABLE r0 AS
        SELECT r.pos, r.user_id, r.rating, coalesce(r.ts, -1) AS ts, r.weight,
          CASE WHEN NOT (r.rating BETWEEN 0 AND 10) THEN 1
               WHEN NOT (isfinite(r.weight) AND r.weight > 0) THEN 2
               WHEN r.book_key = '' AND c.canon IS NULL THEN 3
               WHEN coalesce(k.work_id, i.work_id) IS NULL THEN 4
               ELSE 0 END AS dropped,
          CASE WHEN r.book_key <> '' THEN k.work_id ELSE i.work_id END AS work_id
        FROM raw_ratings r
        LEFT JOIN key_to_work k ON r.book_key <> '' AND k.book_key = r.book_key
        LEFT JOIN isbn_canon c ON r.book_key = '' AND c.raw = r.isbn
        LEFT JOIN isbn_to_work i ON r.book_key = '' AND i.isbn = c.canon"""
    )
    by_code = dict(db.all("SELECT dropped, count(*) FROM r0 GROUP BY dropped"))
    db.execute(
        """CREATE OR REPLACE TABLE r1 AS
        SELECT user_id, work_id, rating, ts, weight, min(pos) AS pos
        FROM r0 WHERE dropped = 0 GROUP BY ALL"""
    )
    db.execute("DROP TABLE r0")
    n = sum(by_code.values())
    exact_dup = by_code.get(0, 0) - db.count("r1")
    steps = [
        (rules.RATINGS_IN_SCALE, by_code.get(1, 0), "rating outside the scale"),
        (rules.RATINGS_POSITIVE_WEIGHT, by_code.get(2, 0),
         "a count that is zero, negative or not finite"),
        (rules.RATINGS_VALID_ISBN, by_code.get(3, 0), "ISBN with a bad check digit or length"),
        (rules.RATINGS_KNOWN_BOOK, by_code.get(4, 0), "the book is not in the catalogue"),
        (rules.RATINGS_EXACT_DUPLICATES, exact_dup, "the same row twice"),
    ]  # fmt: skip
    for rule, dropped, why in steps:
        report.add(rule, n, n - dropped, why)
        n -= dropped
    db.execute(
        """CREATE OR REPLACE TABLE r2 AS
        SELECT user_id, work_id,
          max(struct_pack(t := ts, r := rating)) FILTER (WHERE rating > 0) AS best,
          bool_or(ts >= 0) FILTER (WHERE rating > 0) AND bool_or(ts < 0) FILTER (WHERE rating > 0)
            AS mixed,
          max(ts) FILTER (WHERE rating = 0) AS implicit_ts,
          sum(weight ORDER BY pos) FILTER (WHERE rating = 0) AS implicit_weight
        FROM r1 GROUP BY user_id, work_id"""
    )
    db.execute(
        """CREATE OR REPLACE TABLE r3 AS
        SELECT user_id, work_id, py_fold(list(rating ORDER BY pos), list(ts ORDER BY pos)) AS f
        FROM r1 SEMI JOIN (SELECT user_id, work_id FROM r2 WHERE mixed) m USING (user_id, work_id)
        WHERE rating > 0 GROUP BY user_id, work_id"""
    )
    db.execute(
        """CREATE OR REPLACE TABLE interactions AS
        SELECT r2.user_id, r2.work_id,
          CASE WHEN best IS NULL THEN 0 WHEN f IS NOT NULL THEN f[1] ELSE best.r END AS rating,
          CASE WHEN best IS NULL THEN implicit_ts WHEN f IS NOT NULL THEN f[2] ELSE best.t END
            AS ts,
          CASE WHEN best IS NULL THEN implicit_weight ELSE 1.0 END AS weight
        FROM r2 LEFT JOIN r3 USING (user_id, work_id)"""
    )
    for t in ("r1", "r2", "r3"):
        db.execute(f"DROP TABLE {t}")
    out = db.count("interactions")
    report.add(rules.RATINGS_ONE_PER_USER_WORK, n, out, _WHY_ONE)
    return out


def kcore_table(db: Columnar, k: KCore, report: CleaningReport) -> None:
    """Drop users and works under their thresholds from interactions, to a fixed point."""
    n_in = n = db.count("interactions")
    rounds = 1
    while k.min_user_interactions > 1 or k.min_work_interactions > 1:
        db.execute(
            f"""CREATE OR REPLACE TABLE kept AS SELECT * FROM interactions
            WHERE user_id IN (SELECT user_id FROM interactions GROUP BY user_id
                              HAVING count(*) >= {k.min_user_interactions})
              AND work_id IN (SELECT work_id FROM interactions GROUP BY work_id
                              HAVING count(*) >= {k.min_work_interactions})"""
        )
        kept = db.count("kept")
        if kept == n:
            db.execute("DROP TABLE kept")
            break
        db.execute("DROP TABLE interactions")
        db.execute("ALTER TABLE kept RENAME TO interactions")
        n = kept
        rounds += 1
    report.add(
        rules.RATINGS_KCORE,
        n_in,
        n,
        f"users < {k.min_user_interactions} or works < {k.min_work_interactions} "
        f"interactions ({rounds} rounds to a fixed point)",
    )


# -- small inputs: the same rules on rows held in Python (tests, tools) ---------------------


def consolidate(
    rows: Sequence[RawRating],
    isbn_to_work: dict[str, str],
    key_to_work: dict[str, str],
    report: CleaningReport,
) -> list[Interaction]:
    """``consolidate_table`` on Python rows, with the catalogue given as mappings."""
    from trainer.sources.raw import RawDataset

    with RawDataset("", ratings=list(rows)).tables() as db:
        db.execute("CREATE TABLE isbn_to_work (isbn VARCHAR, work_id VARCHAR)")
        db.execute("CREATE TABLE key_to_work (book_key VARCHAR, work_id VARCHAR)")
        db.insert("isbn_to_work", ("isbn", "work_id"), list(isbn_to_work.items()))
        db.insert("key_to_work", ("book_key", "work_id"), list(key_to_work.items()))
        consolidate_table(db, report)
        return read_interactions(db)


def kcore(rows: list[Interaction], k: KCore, report: CleaningReport) -> list[Interaction]:
    """``kcore_table`` on Python rows."""
    from trainer.cleaning.columnar import Columnar

    with Columnar.open() as db:
        db.execute(
            "CREATE TABLE interactions (user_id VARCHAR, work_id VARCHAR, rating BIGINT, "
            "ts BIGINT, weight DOUBLE)"
        )
        db.insert("interactions", ("user_id", "work_id", "rating", "ts", "weight"), rows)
        kcore_table(db, k, report)
        return read_interactions(db)


def read_interactions(db: Columnar) -> list[Interaction]:
    """The interactions table as tuples sorted by (user_id, work_id) (small data only)."""
    return [
        (u, w, int(r), int(t), float(x))
        for u, w, r, t, x in db.all(
            "SELECT user_id, work_id, rating, ts, weight FROM interactions "
            "ORDER BY user_id, work_id"
        )
    ]
