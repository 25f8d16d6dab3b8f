"""bench/hostile.py covers every RPC of proto/bookrec/v1 with a request the limits allow,
and runs end to end (a real server on the tiny artifact, one call per case)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import hostile
from bookrec.v1 import admin_pb2, catalog_pb2, feedback_pb2, recommender_pb2
from server import limits

ANSWERS = {"OK", "NOT_FOUND", "INVALID_ARGUMENT", "FAILED_PRECONDITION"}


def _every_rpc() -> set[str]:
    files = (recommender_pb2, catalog_pb2, feedback_pb2, admin_pb2)
    return {
        method.name
        for module in files
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }


def test_common_letters_are_words_some_book_holds_all_of() -> None:
    rows = ["abc de", "abd", "xyz", "bad"]
    words = hostile._common_letters(rows).split()
    assert words[:2] == ["a", "b"] and len(words) <= limits.MAX_QUERY_WORDS
    assert any(all(w in row for w in words) for row in rows)


def test_every_rpc_runs_its_worst_case(tiny_artifact: Path, tmp_path: Path) -> None:
    quick = hostile.HostileSettings(min_calls=1, max_calls=1, min_seconds=0, idle_seconds=0.1)
    rows = hostile.run_size(tiny_artifact, tmp_path, quick)
    assert {r["rpc"] for r in rows} == _every_rpc() | {"Health/Check"}
    for row in rows:
        assert set(row["codes"].split(",")) <= ANSWERS, row
        assert row["server_cpu_ms_per_call"] >= 0
    search = [r for r in rows if r["rpc"] == "SearchBooks"]
    assert any(f"{limits.MAX_QUERY_WORDS} one-letter words" in r["request"] for r in search)
    assert "| SearchBooks |" in hostile.markdown([{"books": 400, **r} for r in rows], [])


@pytest.mark.parametrize("books", [1000, 5000])
def test_the_worst_filters_sit_at_their_bounds(books: int) -> None:
    cat = hostile.Catalogue(
        version="v",
        heaviest_user="u",
        history=1,
        popular_book="b0",
        book_ids=[f"b{i}" for i in range(books)],
        subjects=[f"s{i}" for i in range(100)],
        letters="a",
    )
    filters = hostile._worst_filters(cat)
    assert len(filters.exclude_book_ids) == limits.MAX_EXCLUDE_IDS
    assert len(set(filters.exclude_book_ids)) == limits.MAX_EXCLUDE_IDS
    assert len(filters.subject_ids) == limits.MAX_FILTER_SUBJECTS
