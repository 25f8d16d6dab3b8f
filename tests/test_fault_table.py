"""docs/faults.md is rewritten from the rows this session recorded, keeping the rows
of tests that did not run, and reads back what it wrote (pipes included)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import fault_table
from tests.fault_table import Row


def test_rows_of_tests_that_ran_are_replaced_and_the_others_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = tmp_path / "faults.md"
    monkeypatch.setattr(
        fault_table,
        "_recorded",
        [Row("old fault", "old outcome", "nothing", "t.py::a"), Row("x|y", "z", "n", "u.py::b")],
    )
    fault_table.write(set(), page)
    assert fault_table._read(page) == [
        Row("old fault", "old outcome", "nothing", "t.py::a"),
        Row("x|y", "z", "n", "u.py::b"),
    ]
    monkeypatch.setattr(fault_table, "_recorded", [Row("new fault", "did", "nothing", "t.py::a")])
    fault_table.write({"t.py::a"}, page)
    assert fault_table._read(page) == [
        Row("new fault", "did", "nothing", "t.py::a"),
        Row("x|y", "z", "n", "u.py::b"),
    ]
    assert page.read_text().startswith(fault_table.HEADER)


def test_record_fault_tags_the_row_with_the_running_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fault_table, "_recorded", [])
    fault_table.record_fault("a fault", "an outcome")
    (row,) = fault_table.recorded()
    name = "test_record_fault_tags_the_row_with_the_running_test"
    assert row == Row("a fault", "an outcome", "nothing", f"tests/test_fault_table.py::{name}")
