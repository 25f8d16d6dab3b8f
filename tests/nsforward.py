"""A TCP port of this machine's own network seen from a test host (tests/netns.py).

The store's MariaDB listens on 127.0.0.1:3306 of the machine's own namespace, which no
test host can reach. This process listens on ``PORT`` inside host namespace ``NS``
(a socket keeps the namespace it was made in) and relays every connection to
``TARGET_HOST:TARGET_PORT`` here: to the hosts it is a database server at that
host's address, reached across the switch like any other host.

    python tests/nsforward.py NS PORT TARGET_HOST TARGET_PORT

Prints ``listening`` once the port is open; runs until killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import sys
import threading

CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


def listen_in(ns: str, port: int) -> socket.socket:
    """A listening socket on 0.0.0.0:``port`` of namespace ``ns``; this thread returns
    to its own namespace after."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", port))
            s.listen(64)
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)
    return s


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def main() -> None:
    ns, port, host, target_port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    server = listen_in(ns, port)
    print("listening", flush=True)
    while True:
        client, _ = server.accept()
        try:
            upstream = socket.create_connection((host, target_port), timeout=10)
        except OSError:
            client.close()
            continue
        upstream.settimeout(None)
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


if __name__ == "__main__":
    main()
