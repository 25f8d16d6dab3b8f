"""One NATS connection per process, on its own event loop thread.

The server's handlers call the rating log from worker threads and the trainer
is synchronous, so the asyncio client lives on a private loop and callers wait
on futures with a deadline. The connection retries forever (the first connect
too): an engine that is down makes calls fail fast (``connected`` is False)
and everything resumes by itself when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

from bookrec.log import kv

log = logging.getLogger("bookrec.ratinglog.nats")

T = TypeVar("T")

_LINKS: dict[str, NatsLink] = {}
_LINKS_LOCK = threading.Lock()


def servers_of(url: str) -> str:
    """``nats://host:port/anything`` -> ``nats://host:port``."""
    parts = urlsplit(url)
    return f"nats://{parts.netloc}"


class NatsLink:
    def __init__(self, servers: str) -> None:
        self.servers = servers
        self.loop = asyncio.new_event_loop()
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._up = threading.Event()
        self._closed = False
        #: called on the link's loop after every (re)connect; may be async
        self.on_connect: list[Callable[[], Awaitable[None]]] = []
        self._thread = threading.Thread(target=self._run, name="nats-link", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._connect(), self.loop)

    @staticmethod
    def shared(servers: str) -> NatsLink:
        """The process's link to ``servers`` (the log and the control store share it)."""
        with _LINKS_LOCK:
            link = _LINKS.get(servers)
            if link is None or link._closed:
                link = _LINKS[servers] = NatsLink(servers)
            return link

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def _connect(self) -> None:
        while not self._closed:
            try:
                self._nc = await nats.connect(
                    self.servers,
                    name="bookrec",
                    connect_timeout=2,
                    reconnect_time_wait=0.5,
                    max_reconnect_attempts=-1,
                    ping_interval=5,
                    max_outstanding_pings=2,
                    disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected,
                    error_cb=self._error,
                )
                break
            except Exception as e:  # the engine is down at start: keep trying
                log.warning(
                    "rating engine unreachable, retrying",
                    extra=kv(servers=self.servers, error=str(e) or type(e).__name__),
                )
                await asyncio.sleep(0.5)
        if self._nc is None:
            return
        self._js = self._nc.jetstream(timeout=2)
        await self._reconnected()

    async def _disconnected(self) -> None:
        self._up.clear()
        log.warning("rating engine disconnected", extra=kv(servers=self.servers))

    async def _reconnected(self) -> None:
        for hook in list(self.on_connect):
            try:
                await hook()
            except Exception as e:
                log.warning("on-connect step failed", extra=kv(error=str(e)))
        self._up.set()
        log.info("rating engine connected", extra=kv(servers=self.servers))

    async def _error(self, e: Exception) -> None:
        log.debug("nats error", extra=kv(error=str(e) or type(e).__name__))

    @property
    def connected(self) -> bool:
        nc = self._nc
        return self._up.is_set() and nc is not None and nc.is_connected

    @property
    def nc(self) -> Client:
        if self._nc is None:
            raise ConnectionError(f"not connected to {self.servers} yet")
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise ConnectionError(f"not connected to {self.servers} yet")
        return self._js

    def wait_connected(self, timeout: float) -> bool:
        return self._up.wait(timeout)

    def call(self, coro: Awaitable[T], timeout: float) -> T:
        """Run ``coro`` on the link's loop; TimeoutError after ``timeout`` seconds."""
        fut: Future[T] = asyncio.run_coroutine_threadsafe(_wrap(coro), self.loop)
        try:
            return fut.result(timeout)
        except FutureTimeout as e:
            fut.cancel()
            raise TimeoutError(f"no answer from {self.servers} within {timeout}s") from e

    def spawn(self, coro: Awaitable[Any]) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(_wrap(coro), self.loop)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):  # the tails stop while the connection works
            self.call(_cancel_others(), 3)
        nc = self._nc
        if nc is not None:
            with contextlib.suppress(Exception):  # on the way out: nothing left to do
                self.call(nc.close(), 3)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(3)
        if not self._thread.is_alive():
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
            self.loop.close()


async def _wrap(coro: Awaitable[T]) -> T:
    return await coro


async def _cancel_others() -> None:
    """Cancel every other task on this loop (the tails) and wait for them to end."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
