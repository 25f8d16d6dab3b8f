"""A JetStream pull consumer that never lets a pull hold a rating back.

Why not nats-py's ``PullSubscription.fetch(512)``: its pulls share one inbox and it
ends a pull on the first status it reads there, so the late ``408 Request Timeout``
of a pull the client had given up on is taken for the answer to the next one;
``fetch`` then sends a second, lingering pull for 512 messages, the engine serves
the next rating to that orphan, and the fetch that receives it waits for the
orphan's batch to fill or expire: the rating reaches the sink up to 2 s late (3 of
~1,800 ratings across hosts, issue 20 item 18). Here:

- ``next(wait)``: a pull for ONE message (batch 1, expiring after ``wait`` s). It
  returns the moment a rating arrives; a pull can hold nothing back, as it is done
  with its first message. Status messages do not end it (a 408 on the inbox may be
  an older pull's); the client's own clock does, ``MARGIN`` after the expiry. So
  a pull the engine let expire without a word (nats-server 2.9 does, now and then,
  when a rating is stored as the pull expires; it stays pending) delays nothing
  beyond ``MARGIN``: the next pull gets it.
- ``available(batch)``: up to ``batch`` messages stored now (``no_wait``), which
  the engine ends with a 404 or 408 at once. Used while ``num_pending`` says more
  wait. Ended early by an older pull's 408, it leaves the rest on the inbox, where
  the next call takes them first.

Every pull answers on one inbox that lives as long as the consumer, so a message
sent for a pull the client stopped waiting for is still read, in order. The
consumer sequence of every delivery is checked all the same (a reconnect can lose
messages in flight): a gap raises ``MissedDelivery`` and the caller makes a new
consumer from the last stream sequence it handled. Idle pulls that see no answer
at all, three in a row, ask the engine for the consumer, which raises when an
engine restart lost it. ``stale()`` turning true (the connection was replaced)
ends a pull at once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import TimeoutError as NatsTimeout
from nats.js import api
from nats.js.client import JetStreamContext
from nats.js.errors import APIError

# Seconds past a pull's expiry before the client starts the next one.
MARGIN = 0.01
# Seconds a no_wait pull may take to answer (a busy machine reads late).
NO_WAIT_LIMIT = 5.0
STEP = 0.25  # the longest single wait: each step also looks at ``stale()``
SILENT_PULLS = 3  # idle pulls without any answer before the consumer is checked
HEARTBEAT = "100"
ENDED = ("404", "408")  # no messages now / the request expired


class MissedDelivery(Exception):
    """A delivery of this consumer never reached the inbox (see the module)."""


class PullConsumer:
    """An ephemeral pull consumer of ``stream`` from ``start``, AckAll, never paused."""

    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        stream: str,
        name: str,
        sub: Subscription,
        stale: Callable[[], bool],
    ) -> None:
        self.nc, self.js, self.stream, self.name, self.sub = nc, js, stream, name, sub
        self.stale = stale  # true once the connection was replaced: pulls end at once
        self._next_subject = f"{js._prefix}.CONSUMER.MSG.NEXT.{stream}.{name}"
        self._dseq = 0  # consumer sequence of the last delivery taken
        self._silent = 0  # idle pulls in a row that saw no answer at all

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
        sub = await nc.subscribe(nc.new_inbox())
        return cls(nc, js, stream, info.name, sub, stale)

    async def next(self, wait: float) -> list[Msg]:
        """The next message, or none when ``wait`` s passed without one."""
        out = await self._queued(1)  # an earlier pull's, delivered after it ended
        if out:
            return out
        await self._request({"batch": 1, "expires": int(wait * 1e9)})
        out, answered = await self._read(1, wait + MARGIN, stop_on_status=False)
        self._silent = 0 if answered else self._silent + 1
        if self._silent >= SILENT_PULLS:
            self._silent = 0
            await self.js.consumer_info(self.stream, self.name)  # gone? raises
        return out

    async def available(self, batch: int) -> list[Msg]:
        """Up to ``batch`` messages stored now, without waiting for more."""
        await self._request({"batch": batch, "no_wait": True})
        out, _ = await self._read(batch, NO_WAIT_LIMIT, stop_on_status=True)
        return out

    async def delete(self) -> None:
        try:
            await self.sub.unsubscribe()
        finally:
            await self.js.delete_consumer(self.stream, self.name)

    async def _request(self, request: dict[str, Any]) -> None:
        payload = json.dumps(request).encode()
        await self.nc.publish(self._next_subject, payload, reply=self.sub.subject)

    async def _queued(self, limit: int) -> list[Msg]:
        """Up to ``limit`` messages already on the inbox, without waiting for more."""
        out: list[Msg] = []
        while self.sub.pending_msgs and len(out) < limit:
            try:
                msg = await self.sub.next_msg(timeout=STEP)
            except NatsTimeout:
                break
            if self._is_rating(msg):
                out.append(msg)
        return out

    async def _read(
        self, limit: int, seconds: float, stop_on_status: bool
    ) -> tuple[list[Msg], bool]:
        """Up to ``limit`` messages within ``seconds``; and whether anything answered."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        out: list[Msg] = []
        answered = False
        while len(out) < limit and not self.stale():
            left = end - loop.time()
            if left <= 0:
                break
            try:
                msg = await self.sub.next_msg(timeout=min(STEP, left))
            except NatsTimeout:
                continue
            answered = True
            if self._is_rating(msg):
                out.append(msg)
            elif stop_on_status and JetStreamContext.is_status_msg(msg) in ENDED:
                break
        return out, answered

    def _is_rating(self, msg: Msg) -> bool:
        """True for a stored message (its delivery checked); False for a 404, 408 or
        heartbeat; raises for any other status (e.g. 409 consumer deleted)."""
        status = JetStreamContext.is_status_msg(msg)
        if status in (*ENDED, HEARTBEAT):
            return False
        if status:
            raise APIError.from_msg(msg)
        dseq = int(msg.metadata.sequence.consumer)
        if dseq > self._dseq + 1:
            raise MissedDelivery(
                f"{self.stream}/{self.name}: delivery {self._dseq + 1} never arrived "
                f"(got {dseq}); resubscribing"
            )
        self._dseq = max(self._dseq, dseq)
        return True
