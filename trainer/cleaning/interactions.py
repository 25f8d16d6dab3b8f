"""Ratings -> one interaction per (user, work), filtered to a k-core.

Consolidation: ratings on different editions of one work collapse to one. An
explicit rating (1..10) wins over an implicit one (0); among explicit ratings
the latest wins when timestamps exist, else the highest. An interaction's
weight is 1.0 when explicit; when implicit it is the sum of the weights of the
implicit rows that collapsed into it (an implicit source's counts: plays,
clicks), with the latest timestamp. Then users and works with too few
interactions are dropped, repeatedly, until both thresholds hold at once (a
fixed point: dropping a book can push a user under the threshold).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from trainer.cleaning import rules
from trainer.cleaning.isbn import normalize_isbn
from trainer.cleaning.report import CleaningReport
from trainer.sources.raw import RawRating

# (user_id, work_id, rating, timestamp or -1, weight)
Interaction = tuple[str, str, int, int, float]


@dataclass(frozen=True)
class KCore:
    min_user_interactions: int = 1
    min_work_interactions: int = 1


def consolidate(
    rows: Sequence[RawRating],
    isbn_to_work: dict[str, str],
    key_to_work: dict[str, str],
    report: CleaningReport,
) -> list[Interaction]:
    best: dict[tuple[str, str], tuple[int, int]] = {}
    # (user, work) -> summed weight and latest timestamp of its implicit rows
    implicit: dict[tuple[str, str], tuple[float, int]] = {}
    invalid = unknown = out_of_range = bad_weight = exact_dup = 0
    seen_rows: set[tuple[str, str, int, int, float]] = set()
    for row in rows:
        if not 0 <= row.rating <= 10:
            out_of_range += 1
            continue
        if not (row.weight > 0 and math.isfinite(row.weight)):
            bad_weight += 1
            continue
        if row.book_key:
            work = key_to_work.get(row.book_key)
        else:
            isbn = normalize_isbn(row.isbn)
            if isbn is None:
                invalid += 1
                continue
            work = isbn_to_work.get(isbn)
        if work is None:
            unknown += 1
            continue
        ts = row.timestamp if row.timestamp is not None else -1
        fingerprint = (row.user_id, work, row.rating, ts, row.weight)
        if fingerprint in seen_rows:
            exact_dup += 1
            continue
        seen_rows.add(fingerprint)
        key = (row.user_id, work)
        if row.rating == 0:
            total, latest = implicit.get(key, (0.0, -1))
            implicit[key] = (total + row.weight, max(latest, ts))
        prev = best.get(key)
        if prev is None or _wins((row.rating, ts), prev):
            best[key] = (row.rating, ts)
    n = len(rows)
    steps = [
        (rules.RATINGS_IN_SCALE, out_of_range, "rating outside the scale"),
        (
            rules.RATINGS_POSITIVE_WEIGHT,
            bad_weight,
            "a count that is zero, negative or not finite",
        ),
        (rules.RATINGS_VALID_ISBN, invalid, "ISBN with a bad check digit or length"),
        (rules.RATINGS_KNOWN_BOOK, unknown, "the book is not in the catalogue"),
        (rules.RATINGS_EXACT_DUPLICATES, exact_dup, "the same row twice"),
    ]
    for rule, dropped, why in steps:
        report.add(rule, n, n - dropped, why)
        n -= dropped
    report.add(
        rules.RATINGS_ONE_PER_USER_WORK,
        n,
        len(best),
        "editions merged; explicit beats implicit, then latest, then highest; "
        "implicit counts add up",
    )
    out: list[Interaction] = []
    for (u, w), (r, t) in best.items():
        if r == 0:
            weight, latest = implicit[(u, w)]
            out.append((u, w, 0, latest, weight))
        else:
            out.append((u, w, r, t, 1.0))
    return sorted(out)


def _wins(new: tuple[int, int], old: tuple[int, int]) -> bool:
    (r_new, t_new), (r_old, t_old) = new, old
    if (r_new > 0) != (r_old > 0):
        return r_new > 0
    if t_new != t_old and t_new >= 0 and t_old >= 0:
        return t_new > t_old
    return r_new > r_old


def kcore(rows: list[Interaction], k: KCore, report: CleaningReport) -> list[Interaction]:
    n_in = len(rows)
    rounds = 0
    while True:
        users = Counter(r[0] for r in rows)
        works = Counter(r[1] for r in rows)
        kept = [
            r
            for r in rows
            if users[r[0]] >= k.min_user_interactions and works[r[1]] >= k.min_work_interactions
        ]
        rounds += 1
        if len(kept) == len(rows):
            break
        rows = kept
    report.add(
        rules.RATINGS_KCORE,
        n_in,
        len(rows),
        f"users < {k.min_user_interactions} or works < {k.min_work_interactions} "
        f"interactions ({rounds} rounds to a fixed point)",
    )
    return rows
