"""A loopback TCP proxy in front of nats-server that holds back JetStream's 408s.

It forwards every byte both ways, but reads the server's protocol (``MSG`` and
``HMSG`` frames, other lines) and sends each ``408 Request Timeout`` status
``delay`` seconds late, after what came behind it, or never (``delay`` None).
Late is the race a replica on another host meets now and then: a pull's expiry
notice arriving after the client gave up on that pull and sent the next one.
Never is what nats-server 2.9 does now and then when a message is stored as a
pull expires. Made constant, a test can see what a tail does with either.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

TIMEOUT_STATUS = b"NATS/1.0 408"


class StatusDelayer:
    def __init__(self, upstream_port: int, delay: float | None) -> None:
        self.upstream_port = upstream_port
        self.delay = delay
        self.delayed = 0  # 408s held back so far
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._open):
            w.close()
        await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 10)

    async def _serve(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        s_reader, s_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._open |= {c_writer, s_writer}
        up = asyncio.ensure_future(_pipe(c_reader, s_writer))
        try:
            await self._downstream(s_reader, c_writer)
        finally:
            for w in (c_writer, s_writer):
                w.close()
                self._open.discard(w)
            await asyncio.gather(up, return_exceptions=True)

    async def _downstream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                frame = await _frame(reader)
                if frame.startswith(b"HMSG") and TIMEOUT_STATUS in frame:
                    self.delayed += 1
                    if self.delay is not None:
                        loop.call_later(self.delay, _write_if_open, writer, frame)
                else:
                    writer.write(frame)
                    await writer.drain()


async def _frame(reader: asyncio.StreamReader) -> bytes:
    """One protocol line, with its payload for MSG and HMSG (the size is the last field)."""
    line = await reader.readuntil(b"\r\n")
    if line.startswith((b"MSG ", b"HMSG ")):
        size = int(line.split()[-1])
        return line + await reader.readexactly(size + 2)
    return line


def _write_if_open(writer: asyncio.StreamWriter, data: bytes) -> None:
    if not writer.is_closing():
        writer.write(data)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


@contextmanager
def late_timeouts(upstream_port: int, delay: float | None) -> Iterator[StatusDelayer]:
    """A ``StatusDelayer`` on its own event loop thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    proxy = StatusDelayer(upstream_port, delay)
    asyncio.run_coroutine_threadsafe(proxy.start(), loop).result(10)
    try:
        yield proxy
    finally:
        asyncio.run_coroutine_threadsafe(proxy.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
