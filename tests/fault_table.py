"""The fault table in docs/faults.md, written by the tests that prove each row.

A fault test calls, once it has asserted what it claims::

    from tests.fault_table import record_fault
    record_fault("NaN in popularity.npy", "refused at load, logged; old version served")

``record_fault(fault, outcome, lost="nothing")``: ``fault`` is the fault or bad
input tried, ``outcome`` what the server did, ``lost`` what was lost. The row
is tagged with the test that recorded it (pytest's current test id). At the end
of a passing session that recorded rows, ``write`` rewrites the page: rows of
the tests that ran are replaced by what they recorded now, rows of tests that
did not run this time are kept as they were. So running one test file updates
its rows only, and a fault test that stops recording drops its row.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "faults.md"
HEADER = """# Fault table

Each fault or bad input below was tried by an automated test against the real
code (most through a real server on loopback), and the row was written by that
test when it passed: this page is generated (`tests/fault_table.py`, at the end
of a pytest session); do not edit it by hand. Run a test to refresh its rows.

| fault or bad input tried | what the server did | lost | test |
|---|---|---|---|
"""
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


@dataclass(frozen=True)
class Row:
    fault: str
    outcome: str
    lost: str
    test: str


_recorded: list[Row] = []


def record_fault(fault: str, outcome: str, lost: str = "nothing") -> None:
    """Add a row for the running test (call it after the test's assertions)."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
    _recorded.append(Row(fault, outcome, lost, test))


def recorded() -> list[Row]:
    return list(_recorded)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _uncell(text: str) -> str:
    return text.strip().replace("\\|", "|")


def _read(page: Path) -> list[Row]:
    if not page.is_file():
        return []
    rows = []
    for line in page.read_text().splitlines():
        cells = _CELL_SPLIT.split(line.strip())[1:-1]
        if len(cells) == 4 and not set(cells[0].strip()) <= {"-"}:
            fault, outcome, lost, test = (_uncell(c) for c in cells)
            row = Row(fault, outcome, lost, test.strip("`"))
            if row.fault != "fault or bad input tried":
                rows.append(row)
    return rows


def write(ran: set[str], page: Path = PAGE) -> None:
    """Rewrite ``page``: this session's rows, and the old rows of tests not in ``ran``."""
    kept = [r for r in _read(page) if r.test not in ran]
    fresh = [r for r in dict.fromkeys(_recorded) if r not in kept]
    rows = sorted([*kept, *fresh], key=lambda r: r.test)  # stable: a test's rows in order
    lines = [
        f"| {_cell(r.fault)} | {_cell(r.outcome)} | {_cell(r.lost)} | `{_cell(r.test)}` |"
        for r in rows
    ]
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(HEADER + "\n".join(lines) + "\n")
