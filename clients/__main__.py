"""`python -m clients`: call a bookrec server from the shell and print books.

Words need no quotes (`search the northern window`). Lists print as tables, one
row per line. Paged lists (recommend, search, subjects) print one page and, when
more exist, a line with the token of the next one; `--all` follows the pages, up to
`--max` rows (500; it says so when it stops there). `--json` prints one JSON document
instead of text. A failed call prints one line (`error: INVALID_ARGUMENT (k): ...`)
on stderr and exits 1."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from bookrec.v1 import admin_pb2, common_pb2, recommender_pb2
from clients.common import DEFAULT_TARGET, DEFAULT_TIMEOUT, SIMILAR_MODES
from clients.connect import Connection
from clients.errors import BookrecError, Unauthenticated
from clients.sync import BookrecClient
from clients.tables import Column, count, render

# Rows `--all` gathers at most unless --max says otherwise: enough to read or pipe on,
# never the whole catalogue by accident (a 5-book page of 'the' was 1,673 calls).
MAX_ALL = 500


class _Help(argparse.RawDescriptionHelpFormatter):
    """Appends ``(default: X)`` to every option that has a real default and whose
    help does not already name one, and ``(required)`` to required options."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if action.required and action.option_strings:
            return f"{text} (required)"
        if (
            "default" in text
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or default == []
            or not action.option_strings
        ):
            return text
        return f"{text} (default: {default})"


def _words(values: list[str]) -> str:
    return " ".join(values)


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {n}")
    return n


class _JoinAppend(argparse.Action):
    """``--subject science fiction --subject mystery`` -> ["science fiction", "mystery"]."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        items = list(getattr(namespace, self.dest) or [])
        items.append(_words(list(values)))
        setattr(namespace, self.dest, items)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m clients", description=__doc__, formatter_class=_Help
    )
    p.add_argument("--target", default=DEFAULT_TARGET, help="host:port of the server")
    p.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="deadline of each call, seconds"
    )
    p.add_argument(
        "--api-key",
        help="API key sent as a bearer token (default: env BOOKREC_API_KEY, else none)",
    )
    p.add_argument(
        "--tls",
        action="store_true",
        default=None,
        help="TLS with the system CAs (default: off, unless a --tls-* file is given)",
    )
    p.add_argument(
        "--tls-ca", help="CA certificate (PEM) of the server (default: env BOOKREC_TLS_CA)"
    )
    p.add_argument(
        "--tls-cert", help="client certificate for mutual TLS (default: env BOOKREC_TLS_CERT)"
    )
    p.add_argument("--tls-key", help="the client certificate's key (default: env BOOKREC_TLS_KEY)")
    p.add_argument(
        "--tls-server-name",
        dest="server_name",
        help="name the server cert must carry (default: the target's host)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document (default: text)")
    # Also accepted after the command; SUPPRESS keeps the subparser from resetting it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print one JSON document (default: text)",
    )
    paged = argparse.ArgumentParser(add_help=False)
    paged.add_argument(
        "--page-token", default="", help="next_page_token of an earlier page (default: first page)"
    )
    paged.add_argument(
        "--all",
        action="store_true",
        help="follow the pages to the end or to --max rows (default: one page)",
    )
    paged.add_argument(
        "--max",
        type=_positive,
        default=MAX_ALL,
        metavar="N",
        help="with --all, stop after N rows and print the token to go on",
    )

    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, text: str, *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=text, description=text, parents=[common, *parents], formatter_class=_Help
        )

    r = command("recommend", "recommendations for a user with history", paged)
    r.add_argument("--user", required=True, help="user id")
    s = command("similar", "books similar to a book (one list, not paged)")
    s.add_argument("--book", required=True, help="book id")
    s.add_argument("--mode", choices=sorted(SIMILAR_MODES), default="als", help="similarity")
    s.add_argument(
        "--weight", type=float, help="ALS weight in hybrid mode (default: the model's best)"
    )
    c = command("cold-start", "recommendations from favourite subjects (not paged)")
    c.add_argument(
        "--subject",
        nargs="+",
        action=_JoinAppend,
        default=[],
        help="a subject id or name, words need no quotes; repeat for more "
        "(default: none, popularity alone)",
    )
    c.add_argument(
        "--popularity-weight",
        type=float,
        help="weight of the popularity prior in [0, 1] (default: the model's best)",
    )
    for q in (r, s, c):
        q.add_argument(
            "--k", type=int, default=10, help="books per list, 1..100 (per page for recommend)"
        )
        q.add_argument("--explain", action="store_true", help="say why (default: off)")
    b = command("book", "one book")
    b.add_argument("--book", required=True, help="book id")
    f = command("search", "search titles and authors", paged)
    f.add_argument("words", nargs="+", help="words that must all occur (no quotes needed)")
    f.add_argument("--page-size", type=int, default=20, help="books per page")
    sj = command("subjects", "list subjects", paged)
    sj.add_argument("query", nargs="*", help="only names containing these words (default: all)")
    sj.add_argument("--page-size", type=int, default=100, help="subjects per page")
    rate = command("rate", "rate a book (0 = read, 1..10)")
    rate.add_argument("--user", required=True, help="user id")
    rate.add_argument("--book", required=True, help="book id")
    rate.add_argument("--rating", type=int, required=True, help="0 (read) or 1..10")
    command("status", "the model versions the answering worker knows (an admin or read key)")
    pin = command("pin", "serve exactly this model version on every worker (admin key)")
    pin.add_argument("version", help="a complete artifact version, as `status` lists it")
    command("unpin", "go back to serving the newest loadable version (admin key)")
    command("rollback", "pin the newest loadable version older than the one serving (admin key)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    conn = Connection.from_env(
        api_key=args.api_key,
        tls=args.tls,
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        server_name=args.server_name,
    )
    try:
        with BookrecClient(args.target, args.timeout, conn) as client:
            out = _run(client, args)
    except BookrecError as e:
        print(f"error: {e}{_key_hint(e, conn)}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as e:  # a TLS file that is missing or does not match
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


def _key_hint(e: BookrecError, conn: Connection) -> str:
    """What to do about a refused or missing key, on the error's one line."""
    if not isinstance(e, Unauthenticated):
        return ""
    if conn.api_key:
        return "; check the key given by --api-key or BOOKREC_API_KEY"
    return (
        "; give an API key with --api-key KEY or BOOKREC_API_KEY "
        "(make run writes one: export BOOKREC_API_KEY=$(cat data/local-api-key))"
    )


def _collect(
    fetch: Callable[[str, int], Any], field: str, args: argparse.Namespace, size: int
) -> Any:
    """The page at ``--page-token`` (``size`` rows); with ``--all``, the later pages
    appended to it up to ``--max`` rows (the last page asks only for what is left, so
    its token goes on exactly after the last row shown)."""
    cap = args.max if args.all else size
    first = fetch(args.page_token, min(size, cap))
    last, rows = first, getattr(first, field)
    while args.all and last.next_page_token and len(rows) < cap:
        last = fetch(last.next_page_token, min(size, cap - len(rows)))
        rows.extend(getattr(last, field))
    first.next_page_token = last.next_page_token
    return first


def _hint(reply: Any, args: argparse.Namespace, shown: int, total: int | None = None) -> str:
    if not reply.next_page_token:
        return ""
    of = f" of {total}" if total is not None else ""
    token = f"--page-token {reply.next_page_token}"
    if args.all:
        return f"\n-- stopped at --max {args.max}: {shown}{of} shown; go on with {token}"
    return f"\n-- {shown}{of} shown; next page: {token} (or --all for every page)"


def _json(msg: Message) -> str:
    doc = MessageToDict(
        msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return json.dumps(doc, indent=2, ensure_ascii=False)


def _run(client: BookrecClient, args: argparse.Namespace) -> str:
    as_json: bool = args.json
    if args.command == "recommend":
        rec = _collect(
            lambda t, n: client.recommend(args.user, n, args.explain, page_token=t),
            "items",
            args,
            args.k,
        )
        return _json(rec) if as_json else _listing(rec) + _hint(rec, args, len(rec.items))
    if args.command == "similar":
        sim = client.similar(args.book, args.k, args.mode, args.weight, args.explain)
        return _json(sim) if as_json else _listing(sim)
    if args.command == "cold-start":
        cold = client.cold_start(args.subject, args.popularity_weight, args.k, args.explain)
        return _json(cold) if as_json else _listing(cold)
    if args.command == "book":
        got = client.get_book(args.book)
        return _json(got) if as_json else _book_block(got.book, got.model_version)
    if args.command == "search":
        found = _collect(
            lambda t, n: client.search_books(_words(args.words), n, t),
            "books",
            args,
            args.page_size,
        )
        if as_json:
            return _json(found)
        rows = [[b.book_id, b.title, b.author, str(b.year or "?")] for b in found.books]
        head = count(found.total_size, "match", "matches")
        return _table(head, _BOOK_COLUMNS, rows) + _hint(found, args, len(rows), found.total_size)
    if args.command == "subjects":
        subj = _collect(
            lambda t, n: client.list_subjects(_words(args.query), n, t),
            "subjects",
            args,
            args.page_size,
        )
        if as_json:
            return _json(subj)
        rows = [[s.subject_id, s.name, str(s.book_count)] for s in subj.subjects]
        head = count(subj.total_size, "subject")
        return _table(head, _SUBJECT_COLUMNS, rows) + _hint(subj, args, len(rows), subj.total_size)
    if args.command == "rate":
        reply = client.rate_book(args.user, args.book, args.rating)
        return _json(reply) if as_json else f"accepted={reply.accepted} model {reply.model_version}"
    return _admin(client, args.command, args, as_json)


def _admin(client: BookrecClient, command: str, args: argparse.Namespace, as_json: bool) -> str:
    if command == "status":
        st = client.get_status()
        return _json(st) if as_json else _status_text(st)
    if command == "pin":
        pinned = client.pin_version(args.version)
        return _json(pinned) if as_json else f"pinned {pinned.pinned_version}"
    if command == "unpin":
        unpinned = client.unpin()
        return _json(unpinned) if as_json else "unpinned: serving the newest loadable version"
    back = client.rollback()
    return _json(back) if as_json else f"rolled back: pinned {back.pinned_version}"


def _table(head: str, columns: Sequence[Column], rows: list[list[str]]) -> str:
    """``head`` over the table, or a plain line when there is no row to show."""
    if rows:
        return f"{head}\n{render(columns, rows)}"
    return "no " + head.split(" ", 1)[1] if head.startswith("0 ") else f"{head}; none on this page"


def _status_text(st: admin_pb2.GetStatusResponse) -> str:
    head = [
        f"serving {st.serving_version or '(none)'}"
        + (f", pinned {st.pinned_version}" if st.pinned_version else ", not pinned")
        + (f", worker {st.worker_pid}" if st.worker_pid else "")
    ]
    if st.decision:
        head.append(f"decision: {st.decision}")
    rows = [
        [
            v.version,
            admin_pb2.ModelState.Name(v.state).removeprefix("MODEL_STATE_").lower(),
            v.error,
        ]
        for v in st.versions
    ]
    return "\n".join(head) + "\n" + render(_STATUS_COLUMNS, rows)


_BOOK_COLUMNS = (
    Column("book id"),
    Column("title", flex=3),
    Column("author", flex=2),
    Column("year"),
)
_SUBJECT_COLUMNS = (Column("subject id"), Column("name", flex=1), Column("books", right=True))
_STATUS_COLUMNS = (Column("version"), Column("state"), Column("error", flex=1))


def _book_block(b: common_pb2.Book, model_version: str) -> str:
    rows = [f"{b.title} — {b.author} ({b.year or '?'})", f"  id:       {b.book_id}"]
    if b.isbns:
        rows.append(f"  isbns:    {', '.join(b.isbns)}")
    if b.subjects:
        rows.append(f"  subjects: {', '.join(s.name or s.subject_id for s in b.subjects)}")
    if b.series:
        vol = f" #{b.series_volume}" if b.series_volume else ""
        rows.append(f"  series:   {b.series}{vol}")
    if b.rating_count:
        rows.append(f"  ratings:  {b.rating_count}, mean {b.mean_rating:.2f}")
    rows.append(f"  model:    {model_version}")
    return "\n".join(rows)


Listing = (
    recommender_pb2.RecommendResponse
    | recommender_pb2.SimilarResponse
    | recommender_pb2.ColdStartResponse
)


_LIST_COLUMNS = (
    Column("#", right=True),
    Column("title", flex=3),
    Column("author", flex=2),
    Column("year"),
    Column("book id"),
    Column("score", right=True),
)


def _listing(reply: Listing) -> str:
    """The reply's model and source on one line, one table row per book, then with
    --explain each book's reasons whole, on a line of their own ("why")."""
    source = common_pb2.Source.Name(reply.source).removeprefix("SOURCE_").lower()
    head = f"model {reply.model_version}, source {source}"
    if not reply.items:
        return f"{head}\nno books"
    rows = [
        [
            str(item.rank),
            item.book.title,
            item.book.author,
            str(item.book.year or "?"),
            item.book.book_id,
            f"{item.score:.3f}",
        ]
        for item in reply.items
    ]
    why = [
        f"{item.rank:>3}. " + "; ".join(r.text for r in item.reasons)
        for item in reply.items
        if item.reasons
    ]
    text = f"{head}\n{render(_LIST_COLUMNS, rows)}"
    return text + ("\n\nwhy\n" + "\n".join(why) if why else "")


if __name__ == "__main__":
    sys.exit(main())
