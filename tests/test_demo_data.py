"""The synthetic data set: real Book-Crossing format, planted dirt, planted structure."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trainer.demo import SCALES, DemoSummary, generate
from trainer.sources.bx_reader import BOOKS_HEADER, RATINGS_HEADER, USERS_HEADER

FILES = (
    "BX-Books.csv",
    "BX-Users.csv",
    "BX-Book-Ratings.csv",
    "ol_dump_editions.txt",
    "ol_dump_works.txt",
    "demo_truth.json",
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoSummary]:
    out = tmp_path_factory.mktemp("demo-tiny")
    return out, generate(out, "tiny", seed=0)


@pytest.fixture(scope="module")
def out(tiny: tuple[Path, DemoSummary]) -> Path:
    return tiny[0]


@pytest.fixture(scope="module")
def truth(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "demo_truth.json").read_text(encoding="utf-8"))
    return data


def bx_rows(path: Path) -> list[list[str]]:
    """The plain reader a consumer would start with."""
    with path.open(encoding="latin-1", newline="") as f:
        return list(csv.reader(f, delimiter=";", quotechar='"'))


def isbn10_valid(isbn: str) -> bool:
    if not re.fullmatch(r"\d{9}[\dX]", isbn):
        return False
    total = sum((10 - i) * (10 if c == "X" else int(c)) for i, c in enumerate(isbn))
    return total % 11 == 0


def clean_isbn(raw: str) -> str:
    return re.sub(r"[^0-9X]", "", raw.upper())


@pytest.fixture(scope="module")
def ratings(out: Path) -> list[tuple[int, str, int]]:
    rows = bx_rows(out / "BX-Book-Ratings.csv")[1:]
    return [(int(u), i, int(r)) for u, i, r in rows]


@pytest.fixture(scope="module")
def work_ratings(
    ratings: list[tuple[int, str, int]], truth: dict[str, Any]
) -> list[tuple[int, int, int]]:
    """(user, work index, rating) for rows whose ISBN (cleaned) names a book."""
    isbn_work = {i: w for w, work in enumerate(truth["works"]) for i in work["isbns"]}
    out = []
    for u, raw, r in ratings:
        w = isbn_work.get(clean_isbn(raw))
        if w is not None:
            out.append((u, w, r))
    return out


def ol_lines(path: Path) -> Iterator[tuple[list[str], dict[str, Any]]]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            assert len(cols) == 5, line
            yield cols, json.loads(cols[4])


# --------------------------------------------------------------------------- format


def test_bx_headers_and_column_counts(out: Path, truth: dict[str, Any]) -> None:
    books = bx_rows(out / "BX-Books.csv")
    users = bx_rows(out / "BX-Users.csv")
    ratings = bx_rows(out / "BX-Book-Ratings.csv")
    assert tuple(books[0]) == BOOKS_HEADER
    assert tuple(users[0]) == USERS_HEADER
    assert tuple(ratings[0]) == RATINGS_HEADER
    assert all(len(r) == 3 for r in users[1:])
    assert all(len(r) == 3 for r in ratings[1:])

    broken = truth["dirt"]["broken_book_lines"]
    per_kind = SCALES["tiny"].broken_lines_per_kind
    assert Counter(b["kind"] for b in broken) == {
        "unescaped_quote": per_kind,
        "unquoted_semicolon": per_kind,
        "backslash_quote_end": per_kind,
    }
    # Exactly the planted lines mis-split, and the ISBN (first field) survives in them.
    missplit = {r[0] for r in books[1:] if len(r) != 8}
    assert missplit == {b["isbn"] for b in broken if b["csv_fields"] != 8}
    assert all(len(r) == 9 for r in books[1:] if r[0] in missplit)
    # The MySQL-escaped quote at the end of a title: 8 fields, title ends in a backslash.
    escaped = {b["isbn"] for b in broken if b["kind"] == "backslash_quote_end"}
    assert all(r[1].endswith("\\") for r in books[1:] if r[0] in escaped)


def test_bx_bytes_are_latin1_crlf_with_unquoted_null(out: Path) -> None:
    users = (out / "BX-Users.csv").read_bytes()
    books = (out / "BX-Books.csv").read_bytes()
    assert users.startswith(b'"User-ID";"Location";"Age"\r\n')
    assert b'";NULL\r\n' in users and b'"NULL"' not in users
    assert re.search(rb'";"\d+"\r\n', users)  # known ages are quoted
    # Accented names and titles are single latin-1 bytes, not UTF-8 pairs.
    for ch in "éüñ":
        assert ch.encode("latin-1") in books + users
    assert "é".encode() not in books


def test_book_isbns_have_valid_check_digits(out: Path) -> None:
    isbns = [r[0] for r in bx_rows(out / "BX-Books.csv")[1:]]
    assert len(isbns) == len(set(isbns))
    assert all(isbn10_valid(i) for i in isbns)
    assert any(i.endswith("X") for i in isbns)


# --------------------------------------------------------------------------- dirt


def test_rating_dirt(out: Path, ratings: list[tuple[int, str, int]]) -> None:
    books = {r[0] for r in bx_rows(out / "BX-Books.csv")[1:]}
    isbns = [i for _, i, _ in ratings]
    assert any(re.fullmatch(r"\d-\d{3}-\d{5}-[\dXx]", i) for i in isbns)
    assert any(" " in i and clean_isbn(i) in books for i in isbns)
    assert any(i.endswith("x") and i[:-1].isdigit() and i.upper() in books for i in isbns)
    # Invalid check digits, and valid ISBNs that name no book.
    assert any(re.fullmatch(r"\d{9}[\dX]", i) and not isbn10_valid(i) for i in isbns)
    assert any(isbn10_valid(i) and i not in books for i in isbns)
    dirty = sum(clean_isbn(i) not in books for i in isbns)
    assert 0 < dirty < 0.02 * len(isbns)

    counts = Counter(ratings)
    assert sum(c - 1 for c in counts.values()) >= 5  # exact duplicate rows
    assert [r for _, _, r in ratings] and all(0 <= r <= 10 for _, _, r in ratings)
    implicit = sum(r == 0 for _, _, r in ratings) / len(ratings)
    assert 0.5 < implicit < 0.7


def test_user_dirt(out: Path) -> None:
    users = bx_rows(out / "BX-Users.csv")[1:]
    ages = Counter(a for _, _, a in users)
    assert ages["0"] >= 1 and ages["244"] >= 1
    impossible = [int(a) for a in ages.elements() if a != "NULL" and not 5 <= int(a) <= 100]
    assert len(set(impossible)) >= 4
    assert 0.3 < ages["NULL"] / len(users) < 0.5
    locations = Counter(loc for _, loc, _ in users)
    assert locations[""] >= 1 and locations["n/a, n/a, n/a"] >= 1
    countries = Counter(loc.split(", ")[-1] for loc in locations.elements() if loc.count(", ") == 2)
    assert countries.most_common(1)[0][0] == "usa"
    assert {"canada", "united kingdom", "germany", "spain"} <= set(countries)
    ids = [int(u) for u, _, _ in users]
    assert ids == sorted(set(ids))


def test_book_dirt(out: Path) -> None:
    books = [r for r in bx_rows(out / "BX-Books.csv")[1:] if len(r) == 8]
    assert any("&amp;" in r[1] for r in books)
    years = Counter(r[3] for r in books)
    assert years["0"] >= 1
    assert any(int(y) > 2025 for y in years if y.isdigit())
    authors = Counter(r[2] for r in books)
    assert authors["Unknown"] >= 1 and authors[""] >= 1
    urls = books[0][5:]
    assert urls[0] == f"http://images.amazon.com/images/P/{books[0][0]}.01.THUMBZZZ.jpg"
    assert urls[2].endswith(".01.LZZZZZZZ.jpg")


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_other_seed_differs(out: Path, tmp_path: Path) -> None:
    generate(tmp_path / "a", "tiny", seed=0)
    generate(tmp_path / "b", "tiny", seed=1)
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (out / name).read_bytes(), name
        assert (tmp_path / "b" / name).read_bytes() != (out / name).read_bytes(), name
    assert not list((tmp_path / "a").glob("*.tmp"))


def test_rejects_unknown_scale_and_reports_progress(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown scale"):
        generate(tmp_path, "huge")
    messages: list[str] = []
    summary = generate(tmp_path / "p", "tiny", seed=3, progress=messages.append)
    assert len(messages) >= 5 and all(isinstance(m, str) and m for m in messages)
    assert summary.scale == "tiny" and summary.seed == 3


def test_summary_matches_files(tiny: tuple[Path, DemoSummary]) -> None:
    out, s = tiny
    lines = {n: (out / n).read_bytes().count(b"\n") for n in FILES[:5]}
    assert lines["BX-Books.csv"] - 1 == s.isbns
    assert lines["BX-Users.csv"] - 1 == s.users
    assert lines["BX-Book-Ratings.csv"] - 1 == s.ratings
    assert lines["ol_dump_editions.txt"] == s.ol_editions
    assert lines["ol_dump_works.txt"] == s.ol_works
    assert s.broken_book_lines == 3 * SCALES["tiny"].broken_lines_per_kind
    assert s.missplit_book_lines == 2 * SCALES["tiny"].broken_lines_per_kind
    # The tiny scale is roughly what it promises.
    assert 550 <= s.users <= 650 and s.works == 400 and 500 <= s.isbns <= 700
    assert 22_000 <= s.ratings <= 28_000


# --------------------------------------------------------------------------- structure


def test_truth_shape(out: Path, truth: dict[str, Any]) -> None:
    works = truth["works"]
    subjects = set(truth["subjects"])
    assert all(1 <= len(w["subjects"]) <= 4 for w in works)
    assert all(w["subjects"][0] == w["primary_subject"] in subjects for w in works)
    assert all(1 <= len(w["isbns"]) <= 3 for w in works)
    in_series = [w for w in works if w["series"] is not None]
    assert 0.15 <= len(in_series) / len(works) <= 0.25
    broken = {b["isbn"] for b in truth["dirt"]["broken_book_lines"]}
    titles = {r[0]: r[1] for r in bx_rows(out / "BX-Books.csv")[1:] if r[0] not in broken}
    for s in truth["series"]:
        members = [w for w in works if w["key"] in set(s["works"])]
        assert 2 <= len(members) <= 7
        assert len({w["author"] for w in members}) == 1
        assert len({w["primary_subject"] for w in members}) == 1
        assert sorted(w["volume"] for w in members) == list(range(1, len(members) + 1))
        for w in members:
            title = titles.get(w["isbns"][0])
            assert title is None or title.endswith(f"({s['name']}, #{w['volume']})")
    per_author = Counter(w["author"] for w in works)
    assert max(per_author.values()) >= 4
    assert all(1 <= len(u["fav_subjects"]) <= 3 for u in truth["users"])


def test_subject_popularity_is_skewed(
    truth: dict[str, Any], work_ratings: list[tuple[int, int, int]]
) -> None:
    primary = [w["primary_subject"] for w in truth["works"]]
    by_subject = Counter(primary[w] for _, w, _ in work_ratings)
    counts = sorted(by_subject.values(), reverse=True)
    assert counts[0] > 5 * counts[len(counts) // 2]
    assert sum(counts[:3]) > 0.3 * sum(counts)


def test_series_volumes_are_read_together(
    truth: dict[str, Any], work_ratings: list[tuple[int, int, int]]
) -> None:
    readers: defaultdict[int, set[int]] = defaultdict(set)
    for u, w, _ in work_ratings:
        readers[w].add(u)
    n_users = len({u for u, _, _ in work_ratings})
    index = {w["key"]: i for i, w in enumerate(truth["works"])}

    def lift(a: int, b: int) -> float:
        p_b = len(readers[b]) / n_users
        return len(readers[a] & readers[b]) / len(readers[a]) / p_b

    series_lifts = [
        lift(index[a], index[b])
        for s in truth["series"]
        for a, b in pairwise(s["works"])
        if len(readers[index[a]]) >= 5 and readers[index[b]]
    ]
    rng = np.random.default_rng(0)
    standalone = [i for i, w in enumerate(truth["works"]) if w["series"] is None]
    random_lifts = [
        lift(int(a), int(b))
        for a, b in rng.choice(standalone, size=(300, 2))
        if a != b and len(readers[int(a)]) >= 5 and readers[int(b)]
    ]
    assert len(series_lifts) >= 20
    assert float(np.median(series_lifts)) > 3.0 * float(np.median(random_lifts))
    # Most readers of a volume read at least one other volume of its series.
    share = []
    for s in truth["series"]:
        vols = [readers[index[k]] for k in s["works"]]
        for i, r in enumerate(vols):
            others = set().union(*(v for j, v in enumerate(vols) if j != i))
            if r:
                share.append(len(r & others) / len(r))
    assert float(np.mean(share)) > 0.6


def test_explicit_ratings_follow_taste(
    truth: dict[str, Any], work_ratings: list[tuple[int, int, int]]
) -> None:
    favourite = {u["user_id"]: set(u["fav_subjects"]) for u in truth["users"]}
    primary = [w["primary_subject"] for w in truth["works"]]
    liked: list[int] = []
    other: list[int] = []
    for u, w, r in work_ratings:
        if r > 0:
            (liked if primary[w] in favourite[u] else other).append(r)
    assert len(liked) > 100 and len(other) > 100
    assert np.mean(liked) > np.mean(other) + 0.8
    # Taste also drives what is read: favourite subjects are read far more than chance.
    subject_share = Counter(primary[w] for _, w, _ in work_ratings)
    total = sum(subject_share.values())
    chance = np.mean(
        [sum(subject_share[s] for s in favourite[u]) / total for u, _, _ in work_ratings]
    )
    read = np.mean([primary[w] in favourite[u] for u, w, _ in work_ratings])
    assert read > 1.5 * chance


# --------------------------------------------------------------------------- Open Library


def test_open_library_dumps(out: Path, truth: dict[str, Any]) -> None:
    works = {}
    for cols, rec in ol_lines(out / "ol_dump_works.txt"):
        assert cols[0] == "/type/work" and rec["key"] == cols[1]
        assert cols[2].isdigit() and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+", cols[3])
        assert re.fullmatch(r"/works/OL\d+W", cols[1])
        assert rec["authors"][0]["author"]["key"].startswith("/authors/OL")
        works[cols[1]] = rec
    isbn_to_work = {}
    for cols, rec in ol_lines(out / "ol_dump_editions.txt"):
        assert cols[0] == "/type/edition" and re.fullmatch(r"/books/OL\d+M", cols[1])
        assert rec["works"][0]["key"] in works
        isbn_to_work[rec["isbn_10"][0]] = rec["works"][0]["key"]

    bx_isbns = [i for w in truth["works"] for i in w["isbns"]]
    covered = sum(i in isbn_to_work for i in bx_isbns) / len(bx_isbns)
    assert 0.88 < covered < 1.0
    for w in truth["works"]:
        assert w["key"] in works
        assert all(isbn_to_work.get(i, w["key"]) == w["key"] for i in w["isbns"])


def test_open_library_subjects_are_dirty(out: Path, truth: dict[str, Any]) -> None:
    raw = Counter(
        s for _, rec in ol_lines(out / "ol_dump_works.txt") for s in rec.get("subjects", [])
    )
    clean = set(truth["subjects"])
    assert any(s.isupper() and s.endswith(".") for s in raw)  # "SCIENCE FICTION."
    assert any("-" in s and s.replace("-", " ").lower() in clean for s in raw)  # "Science-fiction"
    assert any(s.startswith("Fiction, ") and s.endswith(", general") for s in raw)
    assert raw["Fiction"] > 0 and raw["General"] + raw["Juvenile literature"] > 0
    assert any(raw[s] == 1 and s.lower() not in clean for s in raw)  # rare one-offs
    # Every clean subject of a work is recoverable from its raw strings.
    by_key = {rec["key"]: rec for _, rec in ol_lines(out / "ol_dump_works.txt")}
    with_subjects = [w for w in truth["works"] if "subjects" in by_key[w["key"]]]
    assert len(with_subjects) > 0.9 * len(truth["works"])
    for w in with_subjects:
        text = " | ".join(by_key[w["key"]]["subjects"]).lower().replace("-", " ")
        assert all(s.replace("-", " ") in text for s in w["subjects"])


# --------------------------------------------------------------------------- learnability


def test_tiny_is_learnable_by_implicit_als(
    truth: dict[str, Any], work_ratings: list[tuple[int, int, int]]
) -> None:
    """ALS similar-items for a series volume should rank the other volumes in its top 10."""
    implicit_als = pytest.importorskip("implicit.als")
    sparse = pytest.importorskip("scipy.sparse")
    threadpoolctl = pytest.importorskip("threadpoolctl")
    users = sorted({u for u, _, _ in work_ratings})
    row = {u: i for i, u in enumerate(users)}
    pairs = sorted({(row[u], w) for u, w, _ in work_ratings})
    matrix = sparse.csr_matrix(
        (np.ones(len(pairs), dtype=np.float32), tuple(np.array(pairs).T)),
        shape=(len(users), len(truth["works"])),
    )
    with threadpoolctl.threadpool_limits(1, "blas"):
        model = implicit_als.AlternatingLeastSquares(
            factors=64, regularization=0.05, iterations=15, random_state=0
        )
        model.fit(matrix, show_progress=False)
    index = {w["key"]: i for i, w in enumerate(truth["works"])}
    hits = total = 0
    for s in truth["series"]:
        members = [index[k] for k in s["works"]]
        for w in members:
            ids, _ = model.similar_items(w, N=11)
            top = {int(i) for i in ids if int(i) != w}
            others = set(members) - {w}
            hits += len(others & top)
            total += len(others)
    assert hits / total > 0.9
