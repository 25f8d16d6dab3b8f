"""`python -m clients`: call a bookrec server from the shell and print books."""

from __future__ import annotations

import argparse
import sys

import grpc

from bookrec.v1 import common_pb2, recommender_pb2
from clients.client import DEFAULT_TARGET, SIMILAR_MODES, BookrecClient, describe
from clients.connect import Connection


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m clients", description=__doc__)
    p.add_argument("--target", default=DEFAULT_TARGET, help="host:port of the server")
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--api-key", help="API key sent as a bearer token (env BOOKREC_API_KEY)")
    p.add_argument("--tls", action="store_true", default=None, help="TLS with the system CAs")
    p.add_argument("--tls-ca", help="CA certificate (PEM) of the server (env BOOKREC_TLS_CA)")
    p.add_argument("--tls-cert", help="client certificate for mutual TLS (env BOOKREC_TLS_CERT)")
    p.add_argument("--tls-key", help="the client certificate's key (env BOOKREC_TLS_KEY)")
    p.add_argument("--tls-server-name", dest="server_name", help="name the server cert must carry")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("recommend", help="recommendations for a user with history")
    r.add_argument("--user", required=True)
    s = sub.add_parser("similar", help="books similar to a book")
    s.add_argument("--book", required=True)
    s.add_argument("--mode", choices=sorted(SIMILAR_MODES), default="als")
    s.add_argument("--weight", type=float, help="ALS weight in hybrid mode")
    c = sub.add_parser("cold-start", help="recommendations from favourite subjects")
    c.add_argument("--subject", action="append", default=[], help="repeatable")
    c.add_argument("--popularity-weight", type=float)
    for q in (r, s, c):
        q.add_argument("--k", type=int, default=10)
        q.add_argument("--explain", action="store_true")
    b = sub.add_parser("book", help="one book")
    b.add_argument("--book", required=True)
    f = sub.add_parser("search", help="search titles and authors")
    f.add_argument("query")
    f.add_argument("--page-size", type=int, default=20)
    sub.add_parser("subjects", help="list subjects")
    rate = sub.add_parser("rate", help="rate a book (0 = read, 1..10)")
    rate.add_argument("--user", required=True)
    rate.add_argument("--book", required=True)
    rate.add_argument("--rating", type=int, required=True)
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
    with BookrecClient(args.target, args.timeout, conn) as client:
        try:
            out = _run(client, args)
        except grpc.RpcError as e:
            print(f"error: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
    print(out)
    return 0


def _run(client: BookrecClient, args: argparse.Namespace) -> str:
    if args.command == "recommend":
        rec = client.recommend(args.user, args.k, args.explain)
        return _header(rec) + describe(rec)
    if args.command == "similar":
        sim = client.similar(args.book, args.k, args.mode, args.weight, args.explain)
        return _header(sim) + describe(sim)
    if args.command == "cold-start":
        cold = client.cold_start(args.subject, args.popularity_weight, args.k, args.explain)
        return _header(cold) + describe(cold)
    if args.command == "book":
        return str(client.get_book(args.book).book)
    if args.command == "search":
        found = client.search_books(args.query, args.page_size)
        lines = [f"{b.book_id}  {b.title} — {b.author} ({b.year or '?'})" for b in found.books]
        return f"{found.total_size} matches\n" + "\n".join(lines)
    if args.command == "subjects":
        subjects = client.list_subjects().subjects
        return "\n".join(f"{s.subject_id:30s} {s.name} ({s.book_count} books)" for s in subjects)
    reply = client.rate_book(args.user, args.book, args.rating)
    return f"accepted={reply.accepted} model {reply.model_version}"


Listing = (
    recommender_pb2.RecommendResponse
    | recommender_pb2.SimilarResponse
    | recommender_pb2.ColdStartResponse
)


def _header(reply: Listing) -> str:
    source = common_pb2.Source.Name(reply.source).removeprefix("SOURCE_").lower()
    return f"model {reply.model_version}, source {source}\n"


if __name__ == "__main__":
    sys.exit(main())
