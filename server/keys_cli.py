"""`python -m server keys create|list|revoke`: manage the API keys file.

``create`` shows the new key once (only its hash is written): printed, or with
``--out FILE`` written to that file and never printed, and with ``--web-url`` put in
the web page's link once, at creation (later runs print the link without it and
where the key is). ``list`` shows ids and scopes, never keys; ``revoke`` removes an
entry (running workers notice within a second).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import shlex
import sys
from pathlib import Path

from server.keys import SCOPES, BadKeys, KeyEntry, hash_key, new_key, read_keys_file
from server.keys import write_keys_file as _write

DEFAULT_FILE = os.environ.get("BOOKREC_KEYS_FILE") or "data/keys.jsonl"


def _split(raw: str) -> list[str]:
    return [s.strip() for s in raw.split(",") if s.strip()]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m server keys", description=__doc__)
    p.add_argument("--keys-file", type=Path, default=Path(DEFAULT_FILE))
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create", help="make a key and print it once")
    c.add_argument("--id", help="a name for the key (default: random)")
    c.add_argument("--scopes", required=True, help=f"comma-separated, of {sorted(SCOPES)}")
    c.add_argument("--users", default="", help="comma-separated user ids a write key may rate for")
    c.add_argument("--rate", type=float, help="calls/s for this key (default: the server's)")
    c.add_argument("--burst", type=float, help="token bucket size for this key")
    c.add_argument(
        "--out", type=Path, help="write the key to this file (mode 0600) instead of printing it"
    )
    c.add_argument("--if-missing", action="store_true", help="do nothing if --id exists")
    c.add_argument(
        "--web-url",
        help="the web page's address: printed with the new key in its #key= fragment (the "
        "page adopts it) when the key is made, and without it afterwards",
    )
    c.add_argument(
        "--env",
        action="store_true",
        help="print a BOOKREC_API_KEYS entry instead of writing the keys file",
    )
    listing = sub.add_parser("list", help="ids, scopes and users (never keys)")
    r = sub.add_parser("revoke", help="remove a key")
    r.add_argument("id")
    for q in (c, listing, r):  # either side of the command
        q.add_argument("--keys-file", type=Path, default=argparse.SUPPRESS)
    return p


def _load(path: Path) -> list[KeyEntry]:
    return read_keys_file(path) if path.is_file() else []


def _create(args: argparse.Namespace) -> int:
    scopes = _split(args.scopes)
    if not scopes or not set(scopes) <= SCOPES:
        print(f"--scopes must be a comma-separated list of {sorted(SCOPES)}", file=sys.stderr)
        return 2
    entries = [] if args.env else _load(args.keys_file)
    key_id = args.id or "k-" + secrets.token_hex(4)
    if any(e.id == key_id for e in entries):
        if args.if_missing:
            print(f"key {key_id!r} already in {args.keys_file}")
            if args.out is not None and not args.out.is_file():
                print(f"its key is not in {args.out}: `keys revoke {key_id}`, then run again")
            elif args.out is not None:
                _point_to(args.out, args.web_url)
            return 0
        print(f"key {key_id!r} already exists in {args.keys_file}", file=sys.stderr)
        return 1
    key = new_key()
    entry = KeyEntry(
        id=key_id,
        sha256=hash_key(key),
        scopes=frozenset(scopes),
        users=frozenset(_split(args.users)),
        rate=args.rate,
        burst=args.burst,
        created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
    if args.env:
        print(f"BOOKREC_API_KEYS={shlex.quote(entry.to_json())}")
    else:
        _write(args.keys_file, [*entries, entry])
        print(f"added key {key_id!r} ({', '.join(sorted(scopes))}) to {args.keys_file}")
    _show_once(key, args.out, args.web_url)
    return 0


def _show_once(key: str, out: Path | None, web_url: str | None) -> None:
    """The new key, shown exactly once: in the web link when there is one, else
    printed unless it went to a file (only its hash is kept)."""
    if out is not None:
        print(f"the key is in {out} (mode 0600; only its hash is kept)")
        print(f"for the CLI client: export BOOKREC_API_KEY=$(cat {shlex.quote(str(out))})")
    if web_url:
        print(f"web page (the link carries the key; it is shown only now): {web_url}#key={key}")
    elif out is None:
        print("the key, shown once (only its hash is kept):")
        print(f"  {key}")
        print("use it: BOOKREC_API_KEY=<the key> .venv/bin/python -m clients ... (or --api-key)")


def _point_to(out: Path, web_url: str | None) -> None:
    """Where an existing key is, and the web link without it."""
    print(f"the key is in {out}")
    print(f"for the CLI client: export BOOKREC_API_KEY=$(cat {shlex.quote(str(out))})")
    if web_url:
        print(f'web page: {web_url} (paste the key from {out} into its "API key" box)')


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "create":
            return _create(args)
        entries = _load(args.keys_file)
        if args.command == "list":
            for e in entries:
                users = ",".join(sorted(e.users)) or "*"
                rate = "" if e.rate is None else f" rate={e.rate:g}/s"
                print(f"{e.id}\tscopes={','.join(sorted(e.scopes))}\tusers={users}{rate}")
            return 0
        kept = [e for e in entries if e.id != args.id]
        if len(kept) == len(entries):
            print(f"no key {args.id!r} in {args.keys_file}", file=sys.stderr)
            return 1
        _write(args.keys_file, kept)
        print(f"revoked {args.id!r}")
        return 0
    except BadKeys as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
