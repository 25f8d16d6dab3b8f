"""One bookrec server per port: only the workers of one supervisor share it.

Workers share their gRPC and web ports with SO_REUSEPORT, and the kernel lets any
process of the same user that asks for SO_REUSEPORT join such a port; a second
server would then silently take a share of the connections (with its own keys,
or none). So a server claims each port before it listens (``claim``):

- a probe socket bound *without* SO_REUSEPORT (with SO_REUSEADDR, so a previous
  run's TIME_WAIT connections do not count) fails while any other socket listens
  on the address, a bookrec server's or any other program's, SO_REUSEPORT or not;
- a lock, an abstract Unix socket named after the address and held for the
  server's whole life, refuses a second bookrec server that starts at the same
  moment (both probes would pass before either listens) or while the first one's
  workers are all restarting.

A supervisor claims before it starts workers and keeps the probe bound until they
listen (its workers can still bind: they use SO_REUSEPORT and the probe does not
listen); its workers do not claim again. A server of one process claims, then
listens without SO_REUSEPORT, so nothing can join it later. A supervisor's workers
must share, so a program of the same user that asks for SO_REUSEPORT on their port
after they listen can still join: that is that program's doing, not a race.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# The one line a server prints when it cannot listen: (host, port, why) -> line.
TakenLine = Callable[[str, int, object], str]


@dataclass
class Claim:
    """A claimed address: ``port`` is the one bound (the chosen one for port 0)."""

    host: str
    port: int
    probe: socket.socket | None
    lock: socket.socket | None

    def release_probe(self) -> None:
        """Once this server listens on the port itself (its own socket refuses others)."""
        if self.probe is not None:
            self.probe.close()
            self.probe = None

    def close(self) -> None:
        """When the server stops; a process that dies releases both anyway."""
        self.release_probe()
        if self.lock is not None:
            self.lock.close()
            self.lock = None


def _probe(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _lock(address: str, port: int) -> socket.socket | None:
    """The abstract socket ``bookrec-port/ADDRESS:PORT`` (Linux; None elsewhere). It is
    per network namespace, as the port is, and vanishes with the process."""
    if not sys.platform.startswith("linux"):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(f"\0bookrec-port/{address}:{port}")
    except OSError:
        sock.close()
        raise
    return sock


def claim(host: str, port: int, taken: TakenLine) -> Claim:
    """Claim ``host:port`` for this server, or SystemExit with ``taken``'s one line."""
    try:
        probe = _probe(host, port)
    except OSError as e:
        raise SystemExit(taken(host, port, e.strerror or e)) from None
    address, bound = probe.getsockname()[:2]
    try:
        lock = _lock(address, bound)
    except OSError:
        probe.close()
        raise SystemExit(
            taken(host, bound, "a bookrec server is starting or serving on it")
        ) from None
    return Claim(host, bound, probe, lock)


def claim_all(host: str, ports: Sequence[tuple[int, TakenLine]]) -> list[Claim]:
    """Claim each (port, taken line) in turn; none stays claimed if one fails."""
    claims: list[Claim] = []
    try:
        for port, taken in ports:
            claims.append(claim(host, port, taken))
    except SystemExit:
        for c in claims:
            c.close()
        raise
    return claims
