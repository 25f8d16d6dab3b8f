"""The clients' one description: clients/sync.py is what clients/unasync.py makes of
clients/aio.py, and a caller's code passes ``mypy --strict`` with precise types (a
wrong use fails it, so the types are not ``Any``)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from clients import unasync
from tests.serverproc import ROOT

CALLER = ROOT / "clients" / "examples" / "typed_caller.py"


def mypy_strict(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_sync_client_is_generated_from_the_async_one() -> None:
    assert unasync.TARGET.read_text() == unasync.render(unasync.SOURCE.read_text()), (
        "clients/sync.py is stale: run python -m clients.unasync"
    )
    assert unasync.main(["--check"]) == 0
    body = unasync.TARGET.read_text().split("do not edit.", 1)[1]
    assert not re.search(r"\b(async|await|aio)\b", body)
    # Every public method of the asyncio client exists on the blocking one.
    from clients.aio import AsyncBookrecClient
    from clients.sync import BookrecClient

    public = {n for n in vars(AsyncBookrecClient) if not n.startswith("_")}
    assert public <= set(vars(BookrecClient)) and "rollback" in public


def test_a_caller_passes_mypy_strict_and_a_wrong_one_fails(tmp_path: Path) -> None:
    done = mypy_strict(CALLER)
    assert done.returncode == 0, done.stdout + done.stderr
    wrong = tmp_path / "wrong_caller.py"
    wrong.write_text(
        "from clients.client import BookrecClient\n"
        "with BookrecClient() as c:\n"
        "    n: int = c.recommend('1').items[0].book.title\n"  # a str, not an int
        "    c.rate_book('u', 'b', rating='9')\n"  # rating is an int
        "    async_only = [x async for x in c.iter_search('q')]\n"  # a blocking iterator
    )
    done = mypy_strict(wrong)
    assert done.returncode == 1, done.stdout
    assert 'Incompatible types in assignment (expression has type "str"' in done.stdout
    assert 'Argument "rating" to "rate_book"' in done.stdout
    assert "__aiter__" in done.stdout or "async for" in done.stdout.lower()
