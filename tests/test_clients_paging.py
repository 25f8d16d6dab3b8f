"""Page tokens across a real model swap: a token made by the previous version is
FAILED_PRECONDITION ("the model changed since this page token"), in the Python
client (``FailedPrecondition``) and the CLI alike, and paging from the start works
on the new version. A token for another query stays INVALID_ARGUMENT."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from bench.publish import publish_copy
from clients.client import NO_RETRY, BookrecClient, FailedPrecondition, InvalidArgument
from tests.serverproc import ROOT, ServerProcess, ready_server

STALE = "the model changed since this page token"


@pytest.fixture
def server(artifact_root: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    with ready_server(artifact_root, tmp_path / "work") as srv:
        yield srv


def wait_for_version(client: BookrecClient, version: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get_status().serving_version != version:
        assert time.monotonic() < deadline, f"{version} never served"
        time.sleep(0.1)


@pytest.mark.timeout(180)
def test_tokens_of_the_old_model_say_the_list_changed(
    artifact_root: Path, server: ServerProcess
) -> None:
    with BookrecClient(server.target, api_key="", retry=NO_RETRY) as client:
        old_rec = client.recommend("1", k=3)
        old_search = client.search_books("", 2)
        old_subjects = client.list_subjects("", 2)
        old = old_rec.model_version
        tokens = (old_rec, old_search, old_subjects)
        assert all(t.next_page_token for t in tokens)
        # Before the swap the tokens page on.
        assert client.search_books("", 2, old_search.next_page_token).model_version == old

        new = publish_copy(artifact_root)
        wait_for_version(client, new)

        calls: dict[str, Callable[[], object]] = {
            "Recommend": lambda: client.recommend("1", 3, page_token=old_rec.next_page_token),
            "SearchBooks": lambda: client.search_books("", 2, old_search.next_page_token),
            "ListSubjects": lambda: client.list_subjects("", 2, old_subjects.next_page_token),
        }
        for rpc, call in calls.items():
            with pytest.raises(FailedPrecondition) as e:
                call()
            err = e.value
            assert err.status is grpc.StatusCode.FAILED_PRECONDITION, rpc
            assert STALE in err.message and "start again without a page_token" in err.message
            assert old in err.message and new in err.message
            assert err.field == "page_token"

        # Starting again works, and its tokens page on the new model.
        fresh = client.search_books("", 2)
        assert fresh.model_version == new
        assert client.search_books("", 2, fresh.next_page_token).model_version == new
        # The iterators start from the first page, so they just work after a swap.
        assert len(list(client.iter_search("", page_size=2))) == fresh.total_size
        # A token for another query is still INVALID_ARGUMENT, not "the model changed".
        with pytest.raises(InvalidArgument) as bad:
            client.search_books("zzz", 2, old_search.next_page_token)
        assert STALE not in bad.value.message

    done = subprocess.run(
        [
            *(sys.executable, "-m", "clients", "--target", server.target, "search", ""),
            *("--page-size", "2", "--page-token", old_search.next_page_token),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT), "BOOKREC_API_KEY": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: FAILED_PRECONDITION (page_token): {STALE}")
