"""API keys: how they are made, stored (hashed) and recognised.

A key is ``bkr_`` and 32 random bytes (urlsafe base64); only its sha256 is kept,
in a keys file of JSON lines ``{"id", "sha256", "scopes", "users", ...}`` and/or
in ``BOOKREC_API_KEYS`` (the same entries as JSON lines or a JSON list). The
keys are random, so a fast hash is enough: there is nothing to guess from it.
A presented key is hashed and compared with every entry with
``hmac.compare_digest``, so the time taken says nothing about which entry (or
how much of one) matched. The plaintext is shown once, by ``keys create``, and
never stored or logged by the server.

The keys file is read again when it changes (checked at most once a second), so
``keys revoke`` takes effect on running workers without a restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("server.keys")

SCOPES = frozenset({"read", "write", "admin"})
KEY_PREFIX = "bkr_"
# The legacy admin token (BOOKREC_ADMIN_TOKEN) is an admin key under this id.
ADMIN_TOKEN_ID = "admin-token"
RELOAD_EVERY_S = 1.0


class BadKeys(ValueError):
    """A malformed key entry or keys file (the message says which line)."""


@dataclass(frozen=True)
class KeyEntry:
    id: str
    sha256: str
    scopes: frozenset[str]
    # Users a write key may rate for; empty means any user.
    users: frozenset[str] = frozenset()
    # Per-key rate limit (calls/s, burst); None means the server's default.
    rate: float | None = None
    burst: float | None = None
    created: str = ""

    def to_json(self) -> str:
        out: dict[str, Any] = {
            "id": self.id,
            "sha256": self.sha256,
            "scopes": sorted(self.scopes),
            "users": sorted(self.users),
        }
        if self.rate is not None:
            out["rate"] = self.rate
        if self.burst is not None:
            out["burst"] = self.burst
        if self.created:
            out["created"] = self.created
        return json.dumps(out, sort_keys=True)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _entry(raw: Any, where: str) -> KeyEntry:
    if not isinstance(raw, dict):
        raise BadKeys(f"{where}: expected a JSON object")
    key_id, digest = raw.get("id"), raw.get("sha256")
    if not isinstance(key_id, str) or not key_id:
        raise BadKeys(f"{where}: 'id' must be a non-empty string")
    if not isinstance(digest, str) or len(digest) != 64:
        raise BadKeys(f"{where}: 'sha256' must be 64 hex digits")
    try:
        bytes.fromhex(digest)
    except ValueError:
        raise BadKeys(f"{where}: 'sha256' must be 64 hex digits") from None
    scopes = raw.get("scopes", [])
    users = raw.get("users", [])
    if not isinstance(scopes, list) or not set(scopes) <= SCOPES or not scopes:
        raise BadKeys(f"{where}: 'scopes' must be a non-empty list of {sorted(SCOPES)}")
    if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
        raise BadKeys(f"{where}: 'users' must be a list of user ids")
    rate, burst = raw.get("rate"), raw.get("burst")
    for name, value in (("rate", rate), ("burst", burst)):
        if value is not None and (not isinstance(value, int | float) or value < 0):
            raise BadKeys(f"{where}: {name!r} must be a number >= 0")
    return KeyEntry(
        id=key_id,
        sha256=digest.lower(),
        scopes=frozenset(scopes),
        users=frozenset(users),
        rate=None if rate is None else float(rate),
        burst=None if burst is None else float(burst),
        created=str(raw.get("created", "")),
    )


def parse_entries(text: str, source: str) -> list[KeyEntry]:
    """Entries from JSON lines or one JSON list; blank lines and ``#`` comments skipped."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except json.JSONDecodeError as e:
            raise BadKeys(f"{source}: not JSON ({e.msg})") from None
        return [_entry(r, f"{source}[{i}]") for i, r in enumerate(items)]
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as e:
            raise BadKeys(f"{source}:{n}: not JSON ({e.msg})") from None
        out.append(_entry(raw, f"{source}:{n}"))
    ids = [e.id for e in out]
    if len(ids) != len(set(ids)):
        raise BadKeys(f"{source}: duplicate key ids")
    return out


def read_keys_file(path: Path) -> list[KeyEntry]:
    return parse_entries(path.read_text(), str(path))


def write_keys_file(path: Path, entries: Iterable[KeyEntry]) -> None:
    """Atomically (temp file + rename, mode 0600): a worker never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".keys-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            for e in entries:
                f.write(e.to_json() + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass
class KeyStore:
    """The keys a worker accepts: the keys file (re-read when it changes), the
    environment's entries and the legacy admin token."""

    keys_file: Path | None = None
    fixed: list[KeyEntry] = field(default_factory=list)
    _from_file: list[KeyEntry] = field(default_factory=list)
    _stamp: tuple[int, int, int] | None = None
    _checked: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def build(keys_file: Path | None, env_entries: str, admin_token: str) -> KeyStore:
        """Raises BadKeys (or OSError) on a missing or malformed source: a server told
        to check keys must not start open because it could not read them."""
        fixed = parse_entries(env_entries, "BOOKREC_API_KEYS") if env_entries.strip() else []
        if admin_token:
            fixed.append(KeyEntry(ADMIN_TOKEN_ID, hash_key(admin_token), frozenset({"admin"})))
        store = KeyStore(keys_file, fixed)
        if keys_file is not None:
            if not keys_file.is_file():
                raise BadKeys(
                    f"keys file {keys_file} does not exist: create a key with "
                    f"`python -m server keys create --keys-file {keys_file} --scopes read`"
                )
            store._reload(force=True)
        return store

    @property
    def enforced(self) -> bool:
        """Whether read and write calls need a key: a keys file or environment keys are
        configured. The legacy admin token alone guards only the admin changes."""
        return self.keys_file is not None or any(e.id != ADMIN_TOKEN_ID for e in self.fixed)

    @property
    def has_admin(self) -> bool:
        return any("admin" in e.scopes for e in self.entries())

    def entries(self) -> list[KeyEntry]:
        self._reload()
        return [*self._from_file, *self.fixed]

    def identify(self, presented: str) -> KeyEntry | None:
        """The entry whose hash matches, comparing with every entry (no early exit)."""
        digest = hash_key(presented).encode()
        found = None
        for e in self.entries():
            if hmac.compare_digest(digest, e.sha256.encode()):
                found = e
        return found

    def _reload(self, force: bool = False) -> None:
        if self.keys_file is None:
            return
        now = time.monotonic()
        if not force and now - self._checked < RELOAD_EVERY_S:
            return
        with self._lock:
            self._checked = now
            try:
                st = self.keys_file.stat()
            except FileNotFoundError:
                if self._from_file:
                    log.error("keys file is gone: no key from it is accepted now")
                self._from_file, self._stamp = [], None
                return
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if stamp == self._stamp:
                return
            try:
                entries = read_keys_file(self.keys_file)
            except (BadKeys, OSError) as e:
                if force:
                    raise
                # Keep the last good set: a typo must not lock everyone out or let
                # everyone in. Revocations go through `keys revoke`, which is atomic.
                log.error("keys file unreadable, keeping the previous keys: %s", e)
                self._stamp = stamp  # said once per change, not once a second
                return
            self._from_file, self._stamp = entries, stamp
            log.info("keys loaded", extra={"fields": {"keys": len(entries)}})
