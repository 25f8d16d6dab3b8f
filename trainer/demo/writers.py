"""Byte-level file conventions: BX (CRLF, latin-1), Open Library (LF, UTF-8), atomic writes.

Why: the readers are tested against these exact encodings and line ends, so they are set in
one place; every file is written beside its target and renamed, so an interrupted run never
leaves a half file that a later run or test would read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# The Book-Crossing dump was written on Windows: CRLF line ends, latin-1 bytes.
BX_NEWLINE = "\r\n"
BX_ENCODING = "latin-1"


def _write_bx(path: Path, lines: Sequence[str]) -> None:
    """Write a BX file: CRLF, latin-1 (fails loudly on a character latin-1 cannot hold)."""
    _write_bytes(path, (BX_NEWLINE.join(lines) + BX_NEWLINE).encode(BX_ENCODING))


def _write_text(path: Path, lines: Sequence[str]) -> None:
    """UTF-8, LF line ends: the Open Library dump convention."""
    _write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))


def _write_bytes(path: Path, data: bytes) -> None:
    """Write beside the target and rename, so an interrupted run leaves no half file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
