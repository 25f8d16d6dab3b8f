"""The `python -m clients` CLI and the Python client's paging and deadlines, against a
real server on loopback with the tiny artifact (retries: test_clients_retry.py)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from clients.__main__ import MAX_ALL, _parser, main
from clients.client import NO_RETRY, AsyncBookrecClient, BookrecClient
from clients.tables import count
from tests.keyfile import make_keys
from tests.serverproc import ROOT, ServerProcess, ready_server


@pytest.fixture(scope="module")
def server(
    tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with ready_server(tiny_artifact.parent, tmp_path_factory.mktemp("cli")) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOOKREC_API_KEY", raising=False)


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[BookrecClient]:
    with BookrecClient(server.target, api_key="") as c:
        yield c


def cli(server: ServerProcess, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    rc = main(["--target", server.target, *args])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return out.out


def two_word_query(client: BookrecClient) -> str:
    """Two words of a real title, so a multi-word search matches something."""
    for book in client.iter_search("", page_size=100):
        words = [w for w in book.title.split() if w.isalpha()]
        if len(words) >= 2:
            return " ".join(words[:2])
    raise AssertionError("no title with two words in the tiny set")


# 1. free text needs no quotes


def test_search_takes_words_without_quotes(
    server: ServerProcess, client: BookrecClient, capsys: pytest.CaptureFixture[str]
) -> None:
    query = two_word_query(client)
    want = client.search_books(query, 20)
    assert want.total_size > 0
    out = cli(server, capsys, "search", *query.split())
    assert out.startswith(count(want.total_size, "match", "matches") + "\n")
    assert all(b.book_id in out for b in want.books)
    # Quoted still works, and the same way.
    assert cli(server, capsys, "search", query) == out
    # Through the real entry point too.
    done = subprocess.run(
        [sys.executable, "-m", "clients", "--target", server.target, "search", *query.split()],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == out


def test_subject_names_and_subject_filters_take_words_without_quotes() -> None:
    args = _parser().parse_args(["cold-start", "--subject", "science", "fiction", "--subject", "x"])
    assert args.subject == ["science fiction", "x"]
    args = _parser().parse_args(["subjects", "science", "fiction"])
    assert args.query == ["science", "fiction"]


# 2. every option shows its default


def test_help_shows_every_default() -> None:
    p = _parser()
    top = p.format_help()
    assert "(default: 127.0.0.1:50051)" in top
    assert "deadline of each call, seconds (default: 5.0)" in top
    subs = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    for name, sp in subs.choices.items():
        for action in sp._actions:
            if not action.option_strings or action.dest == "help":
                continue
            text = sp._get_formatter()._get_help_string(action) or ""
            assert action.help and ("(default" in text or "(required)" in text), (name, text)
    for action in p._actions:
        if action.option_strings and action.dest != "help":
            assert "(default" in (p._get_formatter()._get_help_string(action) or ""), action.dest


# 3. book prints a block


def test_book_prints_a_readable_block(
    server: ServerProcess, client: BookrecClient, capsys: pytest.CaptureFixture[str]
) -> None:
    book = next(client.iter_search("", page_size=5))
    out = cli(server, capsys, "book", "--book", book.book_id)
    assert out.splitlines()[0].startswith(f"{book.title} — {book.author}")
    assert f"  id:       {book.book_id}" in out
    assert "book_id:" not in out and "{" not in out  # not protobuf text


# 4. pages


def test_search_pages_hint_token_and_all(
    server: ServerProcess, client: BookrecClient, capsys: pytest.CaptureFixture[str]
) -> None:
    every = list(client.iter_search("", page_size=100))
    assert len(every) > 3
    first = client.search_books("", 2)
    out = cli(server, capsys, "search", "", "--page-size", "2")
    hint = out.splitlines()[-1]
    assert f"2 of {len(every)} shown" in hint and f"--page-token {first.next_page_token}" in hint
    nxt = cli(
        server, capsys, "search", "", "--page-size", "2", "--page-token", first.next_page_token
    )
    second = client.search_books("", 2, first.next_page_token)
    assert all(b.book_id in nxt for b in second.books)
    assert not any(b.book_id in nxt for b in first.books)
    everything = cli(server, capsys, "search", "", "--page-size", "2", "--all")
    assert "--page-token" not in everything
    # "N matches", the table's header and rule, then one row per book.
    assert len(everything.splitlines()) == 3 + len(every)
    assert all(b.book_id in everything for b in every)


def test_subjects_and_recommend_page(
    server: ServerProcess, client: BookrecClient, capsys: pytest.CaptureFixture[str]
) -> None:
    subjects = list(client.iter_subjects(page_size=2))
    assert len(subjects) == client.list_subjects().total_size > 2
    out = cli(server, capsys, "subjects", "--page-size", "2")
    assert "--page-token" in out.splitlines()[-1]
    out = cli(server, capsys, "subjects", "--page-size", "2", "--all")
    assert "--page-token" not in out and all(s.subject_id in out for s in subjects)

    user = "1"
    items = list(client.iter_recommend(user, k=3))
    assert [i.rank for i in items] == list(range(1, len(items) + 1))
    page = client.recommend(user, 3)
    assert page.next_page_token and len(items) > 3
    out = cli(server, capsys, "recommend", "--user", user, "--k", "3")
    assert f"3 shown; next page: --page-token {page.next_page_token}" in out
    out = cli(server, capsys, "recommend", "--user", user, "--k", "3", "--all")
    assert "--page-token" not in out
    # The model line, the table's header and rule, then one row per book.
    assert len(out.strip().splitlines()) == 3 + len(items)


# 5. --json


def test_every_command_prints_json(
    server: ServerProcess, client: BookrecClient, capsys: pytest.CaptureFixture[str]
) -> None:
    book = next(client.iter_search("", page_size=5)).book_id
    subject = client.list_subjects(page_size=1).subjects[0].subject_id
    runs = {
        "recommend": ["recommend", "--user", "1"],
        "similar": ["similar", "--book", book],
        "cold-start": ["cold-start", "--subject", subject],
        "book": ["book", "--book", book],
        "search": ["search", ""],
        "subjects": ["subjects"],
        "rate": ["rate", "--user", "cli-json", "--book", book, "--rating", "7"],
    }
    for name, args in runs.items():
        for argv in (["--json", *args], [*args, "--json"]):
            doc = json.loads(cli(server, capsys, *argv))
            assert isinstance(doc, dict) and doc.get("model_version"), (name, doc)
    doc = json.loads(cli(server, capsys, "search", "", "--page-size", "2", "--all", "--json"))
    assert len(doc["books"]) == doc["total_size"] and doc["next_page_token"] == ""
    assert (
        json.loads(cli(server, capsys, "book", "--book", book, "--json"))["book"]["book_id"] == book
    )


# 6. the Python client: iterators, deadlines, retries


def test_iterators_cover_every_page(client: BookrecClient) -> None:
    total = client.search_books("", 1).total_size
    ids = [b.book_id for b in client.iter_search("", page_size=3)]
    assert len(ids) == len(set(ids)) == total
    names = [s.subject_id for s in client.iter_subjects(page_size=2)]
    assert len(names) == len(set(names)) == client.list_subjects().total_size


@contextlib.contextmanager
def silent_target() -> Iterator[str]:
    """An address that takes connections and never answers: every call on it ends at
    its deadline, however fast the machine (a 1 us deadline against a real server
    was sometimes met, the deadline being kept in whole ms)."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def test_per_call_deadline_overrides_the_default() -> None:
    with silent_target() as target:
        with BookrecClient(target, timeout=60.0, api_key="", retry=NO_RETRY) as c:
            began = time.monotonic()
            with pytest.raises(grpc.RpcError) as e:
                c.search_books("", 100, timeout=0.2)
            assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert time.monotonic() - began < 30, "the 60 s default applied, not 0.2 s"
        with BookrecClient(target, timeout=0.2, api_key="", retry=NO_RETRY) as c:
            with pytest.raises(grpc.RpcError) as e:
                c.search_books("", 100)  # the default applies when no deadline is given
            assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_async_client_pages_and_deadlines(server: ServerProcess) -> None:
    async with AsyncBookrecClient(server.target, api_key="") as c:
        ids = [b.book_id async for b in c.iter_search("", page_size=3)]
        assert len(ids) == len(set(ids)) == (await c.search_books("", 1)).total_size
        subjects = [s async for s in c.iter_subjects(page_size=2)]
        assert len(subjects) == (await c.list_subjects()).total_size
        items = [i async for i in c.iter_recommend("1", k=3)]
        assert [i.rank for i in items] == list(range(1, len(items) + 1))
    with silent_target() as target:
        async with AsyncBookrecClient(target, timeout=60.0, api_key="", retry=NO_RETRY) as c:
            began = time.monotonic()
            with pytest.raises(grpc.RpcError) as e:
                await c.search_books("", 100, timeout=0.2)
            assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert time.monotonic() - began < 30, "the 60 s default applied, not 0.2 s"


# 7. wording: one match, no matches, whole reasons, what to do about a missing key


def one_hit(client: BookrecClient) -> tuple[str, str]:
    """A query with exactly one book and one with exactly one subject."""
    book = next(
        b.title
        for b in client.iter_search("", page_size=100)
        if client.search_books(b.title, 2).total_size == 1
    )
    subject = next(
        s.name
        for s in client.iter_subjects(page_size=100)
        if client.list_subjects(s.name, 2).total_size == 1
    )
    return book, subject


def test_counts_are_singular_or_plural_and_nothing_is_a_plain_line(
    server: ServerProcess, client: BookrecClient, capsys: pytest.CaptureFixture[str]
) -> None:
    book, subject = one_hit(client)
    out = cli(server, capsys, "search", book)
    assert out.startswith("1 match\n") and "1 matches" not in out
    out = cli(server, capsys, "subjects", subject)
    assert out.startswith("1 subject\n") and "1 subjects" not in out
    many = cli(server, capsys, "search", "")
    assert many.startswith(f"{client.search_books('', 1).total_size} matches\n")
    # Nothing found: one plain line, no table header.
    assert cli(server, capsys, "search", "qqqzzzxxx") == "no matches\n"
    assert cli(server, capsys, "subjects", "qqqzzzxxx") == "no subjects\n"


def test_reasons_are_printed_whole_on_their_own_lines(
    server: ServerProcess,
    client: BookrecClient,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Piped (120 columns) or narrow (60), every book's reasons appear in full, not cut
    to "because you rated The Sunlit ..." inside a table cell."""
    want = client.recommend("1", k=5, explain=True)
    assert all(item.reasons for item in want.items)
    for columns in ("120", "60"):
        monkeypatch.setenv("COLUMNS", columns)
        out = cli(server, capsys, "recommend", "--user", "1", "--k", "5", "--explain")
        lines = out.splitlines()
        if columns == "120":  # the table fits a pipe's width (titles cut, not wrapped)
            assert all(len(line) <= 120 for line in lines[: lines.index("")])
        start = lines.index("why") + 1
        why = lines[start : start + len(want.items)]
        assert lines[start + len(want.items)].startswith("-- 5 shown; next page")
        for item, line in zip(want.items, why, strict=True):
            assert line == f"{item.rank:>3}. " + "; ".join(r.text for r in item.reasons)
        assert "…" not in "\n".join(why)


def test_a_missing_key_says_how_to_give_one(
    tiny_artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys.jsonl"
    key = make_keys(keys, {"reader": {"scopes": ["read"]}})["reader"]
    args = ("--keys-file", str(keys))
    with ready_server(tiny_artifact.parent, tmp_path / "srv", extra_args=args) as srv:
        assert main(["--target", srv.target, "subjects"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: UNAUTHENTICATED") and err.count("\n") == 1
        assert "BOOKREC_API_KEY" in err and "--api-key" in err
        assert main(["--target", srv.target, "--api-key", "bkr_wrong", "subjects"]) == 1
        err = capsys.readouterr().err
        assert "check the key given by --api-key or BOOKREC_API_KEY" in err
        assert main(["--target", srv.target, "--api-key", key, "subjects"]) == 0


# 8. --all stops at --max rows


def test_all_stops_at_max_rows_and_says_where_to_go_on(
    server: ServerProcess, client: BookrecClient, capsys: pytest.CaptureFixture[str]
) -> None:
    every = [b.book_id for b in client.iter_search("", page_size=100)]
    assert len(every) > 7
    out = cli(server, capsys, "search", "", "--page-size", "3", "--all", "--max", "7")
    lines = out.splitlines()
    rows = [ln for ln in lines[3:] if ln and not ln.startswith("--")]
    assert [r.split()[0] for r in rows] == every[:7]  # a partial last page: exactly 7
    hint = lines[-1]
    assert hint.startswith(
        f"-- stopped at --max 7: 7 of {len(every)} shown; go on with --page-token"
    )
    token = hint.rsplit(" ", 1)[1]
    rest = cli(server, capsys, "search", "", "--page-size", "3", "--page-token", token)
    assert rest.splitlines()[3].split()[0] == every[7]  # nothing skipped, nothing repeated
    doc = json.loads(
        cli(server, capsys, "search", "", "--page-size", "3", "--all", "--max", "7", "--json")
    )
    assert len(doc["books"]) == 7 and doc["next_page_token"] == token
    items = list(client.iter_recommend("1", k=5))
    assert len(items) > 6
    out = cli(server, capsys, "recommend", "--user", "1", "--k", "5", "--all", "--max", "6")
    assert "-- stopped at --max 6: 6 shown" in out
    assert _parser().parse_args(["search", "x", "--all"]).max == MAX_ALL == 500
    with pytest.raises(SystemExit):
        _parser().parse_args(["search", "x", "--all", "--max", "0"])
