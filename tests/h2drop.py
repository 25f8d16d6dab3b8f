"""A loopback TCP proxy in front of a gRPC server that loses replies on purpose.

It forwards every byte both ways, but reads the server's HTTP/2 frames, and while
``drop`` is above zero it cuts the connection at the first response HEADERS frame
of a call instead of forwarding it: the server finished the call (a unary reply's
headers leave with its message), the client never hears of it and sees
UNAVAILABLE. That is the lost reply a client retries, made deterministic. With
``hold`` it waits that many seconds before cutting: a server that answers each call
UNAVAILABLE, slowly.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

FRAME_HEADER = 9
HEADERS = 0x1


class ReplyDropper:
    def __init__(self, upstream: str, drop: int = 1, hold: float = 0.0) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.drop = drop  # replies still to lose
        self.hold = hold  # seconds a reply to lose is held before the cut
        self.dropped = 0
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._done = asyncio.Event()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close every connection and wait for their handlers to end."""
        if self._server is not None:
            self._server.close()
        for w in list(self._open):
            w.close()
        if self._open:
            await asyncio.wait_for(self._done.wait(), 10)

    async def _serve(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._done.clear()
        s_reader, s_writer = await asyncio.open_connection(*self.upstream)
        self._open |= {c_writer, s_writer}
        up = asyncio.ensure_future(_pipe(c_reader, s_writer))
        try:
            await self._replies(s_reader, c_writer)
        finally:
            for w in (c_writer, s_writer):
                w.close()
                self._open.discard(w)
            await asyncio.gather(up, return_exceptions=True)  # ends with its reader
            if not self._open:
                self._done.set()

    async def _replies(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Server -> client, a frame at a time; cut at a reply's headers while dropping."""
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readexactly(FRAME_HEADER)
                length = int.from_bytes(head[:3], "big")
                stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
                body = await reader.readexactly(length)
                if head[3] == HEADERS and stream and self.drop > 0:
                    self.drop -= 1
                    self.dropped += 1
                    await asyncio.sleep(self.hold)
                    return  # the reply is lost with the connection
                writer.write(head + body)
                await writer.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


@contextmanager
def dropping_replies(upstream: str, drop: int = 1, hold: float = 0.0) -> Iterator[ReplyDropper]:
    """A ``ReplyDropper`` running on its own event loop thread (for blocking clients)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    proxy = ReplyDropper(upstream, drop, hold)
    asyncio.run_coroutine_threadsafe(proxy.start(), loop).result(10)
    try:
        yield proxy
    finally:
        asyncio.run_coroutine_threadsafe(proxy.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
