"""The three Book-Crossing CSVs, each with the dirt the real dump has.

Why: the trainer's BX reader (trainer/sources/bx_reader.py) must cope with the real files, so these
are written in the same format (``;``-separated, every field quoted, ``NULL`` ages, headers
from the reader itself) and the same row order, with the faults of trainer/demo/dirt.py
planted in counted rows.  Each writer returns its dirt counts for demo_truth.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer.demo.catalogue import _Catalogue
from trainer.demo.dirt import (
    BROKEN_KIND_FIELDS,
    BROKEN_KINDS,
    FUTURE_YEARS,
    IMPOSSIBLE_AGES,
    _broken_title_field,
    _hyphenate,
    _invalid_check,
    _space,
)
from trainer.demo.isbns import _bodies, _isbn_digits, _isbn_strings
from trainer.demo.ratings import _Ratings
from trainer.demo.sampling import IntArray, _pick, _zipf
from trainer.demo.users import _Users
from trainer.demo.words import COUNTRY_WEIGHTS, LOCATIONS, NOUNS
from trainer.demo.writers import _write_bx

# The generator writes exactly what the readers read.
from trainer.sources.bx_reader import BOOKS_HEADER, RATINGS_HEADER, USERS_HEADER


def _write_books(
    rng: np.random.Generator, path: Path, cat: _Catalogue, per_kind: int
) -> dict[str, object]:
    """BX-Books.csv in shuffled order with years, authors, entities and broken lines dirty."""
    n = cat.n_isbns
    perm = rng.permutation(n)
    k_year0 = max(3, round(0.015 * n))
    k_future = max(2, round(0.0005 * n))
    k_unknown = max(2, round(0.001 * n))
    k_empty = max(2, round(0.0005 * n))
    k_broken = len(BROKEN_KINDS)
    year = cat.isbn_year.copy()
    at = 0
    year[perm[:k_year0]] = 0
    at += k_year0
    fut = perm[at : at + k_future]
    year[fut] = np.array(FUTURE_YEARS)[np.arange(fut.size) % len(FUTURE_YEARS)]
    at += k_future
    author = [cat.author_name[a] for a in cat.work_author[cat.isbn_work].tolist()]
    for r in perm[at : at + k_unknown].tolist():
        author[r] = "Unknown"
    at += k_unknown
    for r in perm[at : at + k_empty].tolist():
        author[r] = ""
    at += k_empty

    title_field = [f'"{cat.work_title[w]}"' for w in cat.isbn_work.tolist()]
    broken: list[dict[str, object]] = []
    nouns = rng.integers(len(NOUNS), size=k_broken * per_kind)
    b_rows = perm[at : at + k_broken * per_kind].tolist()
    for i, r in enumerate(b_rows):
        kind = BROKEN_KINDS[i % k_broken]
        title = cat.work_title[int(cat.isbn_work[r])]
        title_field[r] = _broken_title_field(kind, title, NOUNS[int(nouns[i])])
        broken.append({"isbn": cat.isbn[r], "kind": kind, "csv_fields": BROKEN_KIND_FIELDS[kind]})
    broken.sort(key=lambda b: str(b["isbn"]))

    header = ";".join(f'"{h}"' for h in BOOKS_HEADER)
    url = "http://images.amazon.com/images/P/"
    years = year.tolist()
    publisher = [cat.publishers[i] for i in cat.isbn_publisher.tolist()]
    lines = [header]
    lines += [
        f'"{i}";{title_field[r]};"{author[r]}";"{years[r]}";"{publisher[r]}";'
        f'"{url}{i}.01.THUMBZZZ.jpg";"{url}{i}.01.MZZZZZZZ.jpg";"{url}{i}.01.LZZZZZZZ.jpg"'
        for r, i in ((r, cat.isbn[r]) for r in rng.permutation(n).tolist())
    ]
    _write_bx(path, lines)
    with_amp = sum("&amp;" in t for t in title_field)
    return {
        "books_year_zero": k_year0,
        "books_year_future": k_future,
        "books_author_unknown": k_unknown,
        "books_author_empty": k_empty,
        "books_title_amp": with_amp,
        "broken_book_lines": broken,
    }


def _write_users(rng: np.random.Generator, path: Path, users: _Users) -> dict[str, int]:
    """BX-Users.csv: 'city, state, country', ages with NULLs and impossible values."""
    n = users.user_id.size
    places = [
        (f"{city}, {state}, {country}", cw * pw)
        for (country, cities), cw in zip(LOCATIONS.items(), COUNTRY_WEIGHTS, strict=True)
        for (city, state), pw in zip(cities, _zipf(len(cities), 1.0).tolist(), strict=True)
    ]
    p = np.array([w for _, w in places])
    locs = [places[i][0] for i in rng.choice(len(places), size=n, p=p / p.sum()).tolist()]

    perm = rng.permutation(n)
    k_na, k_empty = max(2, round(0.004 * n)), max(2, round(0.003 * n))
    k_no_state, k_no_country = max(2, round(0.02 * n)), max(2, round(0.005 * n))
    at = 0
    for r in perm[at : at + k_na].tolist():
        locs[r] = "n/a, n/a, n/a"
    at += k_na
    for r in perm[at : at + k_empty].tolist():
        locs[r] = ""
    at += k_empty
    for r in perm[at : at + k_no_state].tolist():
        city, _, country_name = locs[r].split(", ")
        locs[r] = f"{city}, , {country_name}"
    at += k_no_state
    for r in perm[at : at + k_no_country].tolist():
        city, state, _ = locs[r].split(", ")
        locs[r] = f"{city}, {state}, "
    at += k_no_country

    age = np.clip(np.rint(14 + rng.gamma(3.0, 6.5, size=n)), 10, 95).astype(np.int64)
    null = rng.random(n) < 0.4
    perm = rng.permutation(n)
    k0, k244, k_bad = max(2, round(0.005 * n)), max(1, round(0.0002 * n)), max(3, round(0.001 * n))
    age[perm[:k0]] = 0
    age[perm[k0 : k0 + k244]] = 244
    bad = perm[k0 + k244 : k0 + k244 + k_bad]
    age[bad] = np.array(IMPOSSIBLE_AGES)[rng.integers(len(IMPOSSIBLE_AGES), size=bad.size)]
    null[perm[: k0 + k244 + k_bad]] = False

    header = ";".join(f'"{h}"' for h in USERS_HEADER)
    lines = [header]
    lines += [
        f'"{u}";"{loc}";' + ("NULL" if nl else f'"{a}"')
        for u, loc, a, nl in zip(
            users.user_id.tolist(), locs, age.tolist(), null.tolist(), strict=True
        )
    ]
    _write_bx(path, lines)
    return {
        "users_age_null": int(null.sum()),
        "users_age_0": int(k0),
        "users_age_244": int(k244),
        "users_age_other_impossible": int(k_bad),
        "users_location_na": int(k_na),
        "users_location_empty": int(k_empty),
        "users_location_no_state": int(k_no_state),
        "users_location_no_country": int(k_no_country),
    }


def _write_ratings(
    rng: np.random.Generator, path: Path, cat: _Catalogue, users: _Users, ratings: _Ratings
) -> dict[str, int]:
    """BX-Book-Ratings.csv with formatting dirt, bad ISBNs and exact duplicate rows."""
    n = ratings.user.size
    raw = np.array(cat.isbn, dtype="U13")[ratings.isbn]
    perm = rng.permutation(n)
    counts = {
        "hyphenated": max(10, round(0.002 * n)),
        "spaced": max(10, round(0.002 * n)),
        "invalid_check": max(5, round(0.0015 * n)),
        "unknown": max(5, round(0.004 * n)),
    }
    rows: dict[str, IntArray] = {}
    at = 0
    for name, k in counts.items():
        rows[name] = np.sort(perm[at : at + k])
        at += k
    rest = perm[at:]
    x_rows = np.sort(rest[cat.isbn_digits[ratings.isbn[rest], 9] == 10])
    rows["lower_x"] = x_rows[_pick(rng, x_rows.size, max(5, round(0.05 * x_rows.size)))]

    for i, r in enumerate(rows["hyphenated"].tolist()):
        raw[r] = _hyphenate(str(raw[r])) if i % 3 else _hyphenate(str(raw[r])).lower()
    for i, r in enumerate(rows["spaced"].tolist()):
        raw[r] = _space(str(raw[r]), i)
    for i, r in enumerate(rows["invalid_check"].tolist()):
        raw[r] = _invalid_check(cat.isbn_digits[ratings.isbn[r]], i)
    for r in rows["lower_x"].tolist():
        raw[r] = str(raw[r]).lower()
    # ISBNs that name no book: a small pool, some of them rated several times.
    pool_digits = _isbn_digits(rng, max(3, counts["unknown"] // 3), avoid=_bodies(cat.isbn_digits))
    pool = np.array(_isbn_strings(pool_digits), dtype="U13")
    pick = rng.choice(pool.size, size=counts["unknown"], p=_zipf(pool.size, 1.0))
    raw[rows["unknown"]] = pool[pick]

    uid = users.user_id[ratings.user]
    rating = ratings.rating
    dup = _pick(rng, n, max(5, round(0.001 * n)))
    uid = np.concatenate([uid, uid[dup]])
    raw = np.concatenate([raw, raw[dup]])
    rating = np.concatenate([rating, rating[dup]])

    # Sorted by user, then ISBN text, like the dump.
    _, isbn_rank = np.unique(raw.astype("S13"), return_inverse=True)
    order = np.lexsort((isbn_rank, uid))
    header = ";".join(f'"{h}"' for h in RATINGS_HEADER)
    lines = [header]
    lines += [
        f'"{u}";"{i}";"{r}"'
        for u, i, r in zip(
            uid[order].tolist(), raw[order].tolist(), rating[order].tolist(), strict=True
        )
    ]
    _write_bx(path, lines)
    stats = {f"ratings_isbn_{k}": int(v.size) for k, v in rows.items()}
    stats["ratings_duplicate_rows"] = int(dup.size)
    stats["ratings_unknown_isbn_pool"] = int(pool.size)
    stats["ratings_rows"] = len(lines) - 1
    stats["ratings_implicit"] = int((rating == 0).sum())
    return stats
