"""A JetStream pull consumer read by pull requests that each have their own reply inbox.

Why not nats-py's ``PullSubscription.fetch``: every fetch of one subscription shares
one inbox, so the late ``408 Request Timeout`` of a pull that the client had already
given up on is taken for the answer to the next one. ``fetch`` then sends a second,
lingering pull for 512 messages; the server serves the next rating on that orphan,
and the fetch that receives it waits for the orphan's batch to fill or expire: the
rating reaches the sink up to 2 s late (3 of ~1,800 ratings across hosts, issue 20
item 18). Here each pull has a fresh inbox, so an answer can only be its own:

- ``next(wait)``: one message, waiting up to ``wait`` s for it. The server ends
  the request (a 408, which also proves the consumer is there); the client waits
  ``ANSWER_SLACK`` longer for that answer, in short steps, so a busy machine that
  reads it late is not taken for a lost consumer. It returns the moment a rating
  is stored: nothing waits for a batch to fill.
- ``available(batch)``: up to ``batch`` messages there now (``no_wait``), which the
  server ends with a 404 or 408 at once. Used while ``num_pending`` says more wait.

No answer at all means the consumer is gone (an engine restart: the engine drops
pulls for a consumer it lacks without a word) or the connection is: ``TimeoutError``,
and the caller makes a new consumer. A reconnect (``stale()`` turns true) ends a
pull at once, as its request died with the old connection. A pull whose answer
never came may still take a message on the server and send it to an inbox nobody
reads. The consumer sequence of every
delivery is checked, so such a gap raises ``MissedDelivery`` and the caller makes
a new consumer from the last stream sequence it handled: nothing is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import api
from nats.js.client import JetStreamContext
from nats.js.errors import APIError

# Seconds the client waits for an answer beyond the request's own expiry, and the
# steps it waits in (each step also looks whether the connection was replaced).
ANSWER_SLACK = 5.0
STEP = 0.25
HEARTBEAT = "100"
ENDED = ("404", "408")  # no messages now / the request expired: a normal end


class MissedDelivery(Exception):
    """A delivery of this consumer went to an inbox nobody reads (see the module)."""


class PullConsumer:
    """An ephemeral pull consumer of ``stream`` from ``start``, AckAll, never paused."""

    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        stream: str,
        name: str,
        stale: Callable[[], bool] = lambda: False,
    ) -> None:
        self.nc, self.js, self.stream, self.name = nc, js, stream, name
        self.stale = stale  # true once the connection was replaced: pulls end at once
        self._next_subject = f"{js._prefix}.CONSUMER.MSG.NEXT.{stream}.{name}"
        self._dseq = 0  # consumer sequence of the last delivery taken

    @classmethod
    async def create(
        cls,
        nc: Client,
        js: JetStreamContext,
        stream: str,
        start: int,
        stale: Callable[[], bool] = lambda: False,
    ) -> PullConsumer:
        info = await js.add_consumer(
            stream,
            config=api.ConsumerConfig(
                deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=start,
                ack_policy=api.AckPolicy.ALL,
                inactive_threshold=60.0,
                max_ack_pending=-1,
            ),
        )
        if not info.name:
            raise APIError(description=f"{stream}: the engine made a consumer without a name")
        return cls(nc, js, stream, info.name, stale)

    async def next(self, wait: float) -> list[Msg]:
        """The next message, or none when ``wait`` s passed without one."""
        return await self._pull({"batch": 1, "expires": int(wait * 1e9)}, 1, wait)

    async def available(self, batch: int) -> list[Msg]:
        """Up to ``batch`` messages stored now, without waiting for more."""
        return await self._pull({"batch": batch, "no_wait": True}, batch, 0.0)

    async def delete(self) -> None:
        await self.js.delete_consumer(self.stream, self.name)

    async def _pull(self, request: dict[str, Any], limit: int, wait: float) -> list[Msg]:
        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox)
        loop = asyncio.get_running_loop()
        end = loop.time() + wait + ANSWER_SLACK
        out: list[Msg] = []
        try:
            await self.nc.publish(self._next_subject, json.dumps(request).encode(), reply=inbox)
            while len(out) < limit:
                try:
                    msg = await sub.next_msg(timeout=min(STEP, max(end - loop.time(), 0.001)))
                except NatsTimeout:
                    if self.stale():
                        return out  # the request died with the old connection
                    if loop.time() < end:
                        continue  # never leave a live pull: it would deliver to nobody
                    if out:
                        return out
                    raise TimeoutError(
                        f"no answer to a pull of {self.stream}/{self.name} "
                        f"within {wait + ANSWER_SLACK:g} s"
                    ) from None
                status = JetStreamContext.is_status_msg(msg)
                if status == HEARTBEAT:
                    continue
                if status in ENDED:
                    break
                if status:
                    raise APIError.from_msg(msg)  # e.g. 409 consumer deleted
                self._take(msg)
                out.append(msg)
        finally:
            with contextlib.suppress(Exception):  # closed: the inbox went with it
                await sub.unsubscribe()
        return out

    def _take(self, msg: Msg) -> None:
        dseq = int(msg.metadata.sequence.consumer)
        if dseq > self._dseq + 1:
            raise MissedDelivery(
                f"{self.stream}/{self.name}: delivery {self._dseq + 1} went astray "
                f"(got {dseq}); resubscribing"
            )
        self._dseq = max(self._dseq, dseq)
