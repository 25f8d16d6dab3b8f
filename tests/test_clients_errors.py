"""The Python clients' errors (status, message, field violations from the server's
google.rpc.BadRequest trailer), the CLI's one-line error, "did you mean" for an
unknown subject, Subject.book_count inside books, and the admin commands, against a
real server on loopback with the tiny artifact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from bookrec.v1 import common_pb2
from clients.__main__ import main
from clients.client import (
    NO_RETRY,
    AsyncBookrecClient,
    BookrecClient,
    BookrecError,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from tests.serverproc import ROOT, ServerProcess, ready_server


@pytest.fixture(scope="module")
def server(
    tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with ready_server(tiny_artifact.parent, tmp_path_factory.mktemp("errors")) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOOKREC_API_KEY", raising=False)


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[BookrecClient]:
    with BookrecClient(server.target, api_key="", retry=NO_RETRY) as c:
        yield c


def test_a_bad_field_keeps_code_message_and_field(client: BookrecClient) -> None:
    with pytest.raises(InvalidArgument) as e:
        client.recommend("1", k=1000)
    err = e.value
    assert err.status is grpc.StatusCode.INVALID_ARGUMENT and err.code() is err.status
    assert "1..100" in err.message and err.details() == err.message
    assert err.field_violations == [FieldViolation("k", err.message)]
    assert err.field == "k"
    assert str(err) == f"INVALID_ARGUMENT (k): {err.message}"
    assert isinstance(err, grpc.RpcError)  # code written for the raw stubs still catches it


def test_unknown_ids_are_not_found_with_their_own_class(client: BookrecClient) -> None:
    with pytest.raises(NotFound) as e:
        client.get_book("no-such-book")
    assert e.value.status is grpc.StatusCode.NOT_FOUND and "no-such-book" in e.value.message
    assert isinstance(e.value, BookrecError)


def test_an_unknown_subject_gets_did_you_mean(client: BookrecClient) -> None:
    with pytest.raises(InvalidArgument) as e:
        client.cold_start(["mystery", "sci-fi"])
    err = e.value
    assert err.field == "favourite_subjects[1]"
    assert "unknown subject 'sci-fi'" in err.message
    assert "did you mean 'science-fiction'" in err.message
    # A misspelling too (difflib's side).
    with pytest.raises(InvalidArgument) as e:
        client.cold_start(["mistery"])
    assert "did you mean 'mystery'" in e.value.message


def test_a_dead_server_is_unavailable(tmp_path: Path) -> None:
    c = BookrecClient("127.0.0.1:1", timeout=2.0, api_key="", retry=NO_RETRY)
    with c, pytest.raises(Unavailable) as e:
        c.list_subjects()
    assert e.value.field_violations == []


async def test_the_async_client_raises_the_same_errors(server: ServerProcess) -> None:
    async with AsyncBookrecClient(server.target, api_key="", retry=NO_RETRY) as c:
        with pytest.raises(InvalidArgument) as e:
            await c.similar("x", k=0, mode="subject", weight=0.5)
        assert e.value.field == "weight"
        with pytest.raises(NotFound):
            await c.get_book("no-such-book")
        status = await c.get_status()
        assert status.serving_version == (await c.list_subjects()).model_version


CLI_SCIFI = ("cold-start", "--subject", "sci-fi")


def test_the_cli_prints_one_line_with_the_field_and_exits_1(server: ServerProcess) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "clients", "--target", server.target, *CLI_SCIFI],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: INVALID_ARGUMENT (favourite_subjects[0]): unknown subject")
    assert "did you mean 'science-fiction'" in lines[0]


def test_subject_book_count_is_filled_inside_books(client: BookrecClient) -> None:
    counts = {s.subject_id: s.book_count for s in client.iter_subjects()}
    seen = 0
    for book in client.iter_search("", page_size=100):
        for s in book.subjects:
            assert s.book_count == counts[s.subject_id] > 0, s
            seen += 1
    assert seen > 0
    rec = client.recommend("1", k=5)
    assert all(s.book_count > 0 for i in rec.items for s in i.book.subjects)
    assert any(i.book.subjects for i in rec.items)


def test_cli_status_table_and_admin_errors(
    server: ServerProcess, client: BookrecClient, capsys: pytest.CaptureFixture[str]
) -> None:
    serving = client.get_status().serving_version
    assert main(["--target", server.target, "status"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"serving {serving}, not pinned")
    header = next(i for i, line in enumerate(out) if line.startswith("version"))
    assert out[header].split() == ["version", "state", "error"]
    assert out[header + 2].split()[:2] == [serving, "available"]
    assert main(["--target", server.target, "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["serving_version"] == serving
    # This server has no admin key: pinning is refused with a readable line.
    assert main(["--target", server.target, "pin", serving]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: PERMISSION_DENIED") and err.count("\n") == 1


def test_cli_tables_keep_one_row_per_line(
    server: ServerProcess,
    client: BookrecClient,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    want = client.recommend("1", k=7, explain=True)
    argv = ["--target", server.target, "recommend", "--user", "1", "--k", "7", "--explain"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"model {want.model_version}, source {_source(want.source)}"
    assert lines[1].split()[:2] == ["#", "title"] and lines[1].rstrip().endswith("score")
    assert set(lines[2]) == {"─"}
    rows = lines[3 : 3 + len(want.items)]
    for item, row in zip(want.items, rows, strict=True):
        assert row.split()[0] == str(item.rank)
        assert item.book.book_id in row and f"{item.score:.3f}" in row
        assert len(row) <= 120  # a pipe gets 120 columns: long titles are cut, not wrapped
    # The reasons follow the table, one line per book, whole.
    assert lines[3 + len(want.items) : 5 + len(want.items)] == ["", "why"]


def _source(value: common_pb2.Source.ValueType) -> str:
    return common_pb2.Source.Name(value).removeprefix("SOURCE_").lower()
