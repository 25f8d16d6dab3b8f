"""The CLI's readable list output: one table row per line (long titles cut with an
ellipsis, never wrapped), so a list reads, greps and counts by line; text too long
for a cell (a list's reasons) goes on lines of its own below the table, whole.
``--json`` is the form for machines."""

from __future__ import annotations

import io
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.table import Table

# Columns a table gets when stdout is not a terminal (a pipe, a file, CI) and COLUMNS is
# unset: wide enough for a title and an author without cutting most of them.
PIPE_WIDTH = 120
# Spaces between two columns (rich's padding on each side).
_GAP = 3


@dataclass(frozen=True)
class Column:
    header: str
    # Flexible columns (titles, authors, messages) share what the fixed ones leave.
    flex: int = 0
    right: bool = False


def width() -> int:
    """The terminal's width; PIPE_WIDTH (or $COLUMNS) when stdout is not a terminal."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    if sys.stdout.isatty():
        return shutil.get_terminal_size((PIPE_WIDTH, 24)).columns
    return PIPE_WIDTH


def count(n: int, one: str, many: str = "") -> str:
    """``1 match``, ``2 matches``, ``0 subjects``: a number with its noun."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


def render(columns: Sequence[Column], rows: Sequence[Sequence[str]], total: int = 0) -> str:
    """``rows`` as a table of ``columns`` in ``total`` characters (default: ``width()``)."""
    total = total or width()
    fixed = [
        max([len(c.header), *(len(r[i]) for r in rows)])
        for i, c in enumerate(columns)
        if not c.flex
    ]
    flex_sum = sum(c.flex for c in columns) or 1
    room = max(10 * flex_sum, total - sum(fixed) - _GAP * len(columns))
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for c in columns:
        table.add_column(
            c.header,
            no_wrap=True,
            overflow="ellipsis",
            justify="right" if c.right else "left",
            max_width=room * c.flex // flex_sum if c.flex else None,
        )
    for r in rows:
        table.add_row(*r)
    out = io.StringIO()
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    Console(
        file=out,
        width=max(total, sum(fixed) + _GAP * len(columns) + 10 * flex_sum),
        force_terminal=color,
        color_system="auto" if color else None,
        highlight=False,
    ).print(table)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())
