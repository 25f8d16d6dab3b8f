"""Writes clients/sync.py (``BookrecClient``) from clients/aio.py, so every RPC is
described once. ``python -m clients.unasync`` rewrites it; ``--check`` exits 1 when
the file on disk differs from what this would write (a test runs that)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).parent
SOURCE = HERE / "aio.py"
TARGET = HERE / "sync.py"
MARKER = "# --- generated body starts here (clients/unasync.py copies what follows) ---\n"
HEADER = '''"""``BookrecClient``: the blocking client, with the same methods as
``AsyncBookrecClient`` (clients/aio.py). Every call gets the client's deadline
(5 s unless told otherwise) for the whole call, is retried by gRPC itself on
``UNAVAILABLE`` only, inside that deadline and throttled (clients/retry.py), and
raises ``clients.errors.BookrecError`` (a ``grpc.RpcError``) with the status,
message and field violations."""

# GENERATED from clients/aio.py by `python -m clients.unasync`: do not edit.
'''
# (async spelling, blocking spelling), applied in this order.
REPLACEMENTS = (
    ("AsyncBookrecClient", "BookrecClient"),
    ("import AsyncIterator, Iterable", "import Iterable, Iterator"),
    ("AsyncIterator", "Iterator"),
    ("aio.UnaryUnaryMultiCallable", "grpc.UnaryUnaryMultiCallable"),
    ("conn.aio_channel(", "conn.channel("),
    ("__aenter__", "__enter__"),
    ("__aexit__", "__exit__"),
    ("async with", "with"),
    ("async for", "for"),
    ("async def ", "def "),
    ("await ", ""),
    ("  # noqa: ASYNC109 - a gRPC deadline", ""),
    ("from grpc import aio\n", ""),
    ("``async with BookrecClient(target) as client``", "``with BookrecClient(target) as client``"),
)


def render(source: str) -> str:
    """The blocking client's source for the asyncio client's ``source``."""
    _head, sep, body = source.partition(MARKER)
    if not sep:
        raise ValueError(f"{SOURCE} lacks the marker line {MARKER.strip()!r}")
    for old, new in REPLACEMENTS:
        body = body.replace(old, new)
    # An async generator cannot ``yield from``; a blocking one should.
    body = re.sub(r"for (\w+) in ([\w.]+):\n\s+yield \1\n", r"yield from \2\n", body)
    leftover = re.search(r"\b(async|await|aio)\b", body)
    if leftover:
        raise ValueError(f"clients/aio.py: no blocking spelling for {leftover.group(0)!r}")
    return HEADER + "\n" + body


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    want = render(SOURCE.read_text())
    if "--check" in args:
        if not TARGET.exists() or TARGET.read_text() != want:
            print(f"{TARGET} is stale: run python -m clients.unasync", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(want)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
