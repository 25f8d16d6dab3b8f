"""The shared rating log on NATS JetStream (docs/fleet.md says why this engine).

URL: ``nats://HOST:PORT/STREAM[?replicas=N]``. Ratings are published to the
subject ``STREAM.ratings`` of a file-storage stream; ``append`` returns the
stream sequence from the server's PubAck, which JetStream sends only after
the message is stored (with N replicas: on a quorum of them). Offsets are
stream sequences (the first rating is 1).

Every replica follows the stream with its own ephemeral pull consumer from
sequence 1 (bookrec/ratinglog/pull.py: one message per lingering pull when idle,
so a rating is handed on the moment it is stored; batches while a backlog waits)
and folds each rating in; after a disconnect or an engine restart the consumer
is made again from the last sequence it delivered, so nothing is skipped or
delivered twice to the sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

from nats.js import api
from nats.js.errors import BadRequestError

from bookrec.log import kv
from bookrec.ratinglog.natslink import NatsLink, servers_of
from bookrec.ratinglog.pull import PullConsumer
from bookrec.ratinglog.record import (
    DEDUP_SECONDS,
    BadRecord,
    LogUnavailable,
    Rating,
    Sink,
    Stored,
)

log = logging.getLogger("bookrec.ratinglog.jetstream")

ACK_TIMEOUT = 2.0  # seconds RateBook waits for the engine before UNAVAILABLE
FETCH_BATCH = 512
FETCH_WAIT = 2.0  # one idle pull's life; its 408 shows the consumer is still there


def parse_url(url: str) -> tuple[str, str, int]:
    """(servers, stream, replicas) from ``nats://host:port/stream?replicas=N``."""
    parts = urlsplit(url)
    stream = parts.path.strip("/")
    if not parts.netloc or not stream or "/" in stream or "." in stream:
        raise ValueError(
            f"rating log URL {url!r}: expected nats://HOST:PORT/STREAM "
            "(a stream name without dots or slashes), e.g. nats://127.0.0.1:4222/bookrec-ratings"
        )
    replicas = int(parse_qs(parts.query).get("replicas", ["1"])[0])
    return servers_of(url), stream, replicas


class JetStreamRatingLog:
    def __init__(self, url: str, link: NatsLink | None = None) -> None:
        self.servers, self.stream, self.replicas = parse_url(url)
        self.subject = f"{self.stream}.ratings"
        self.describe = f"nats {self.servers} stream {self.stream}"
        self.link = link or NatsLink.shared(self.servers)
        self.link.on_connect.append(self._ensure_stream)
        if self.link.connected:  # a link another user already connected
            self.link.call(self._ensure_stream(), 5)
        self._sink: Sink | None = None
        self._caught_up = threading.Event()
        self._resubscribe = False
        self.delivered = 0  # last stream sequence handed to the sink
        self._closed = False

    async def _ensure_stream(self) -> None:
        config = api.StreamConfig(
            name=self.stream,
            subjects=[self.subject],
            storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS,
            num_replicas=self.replicas,
            duplicate_window=DEDUP_SECONDS,
        )
        try:
            await self.link.js.add_stream(config)
        except BadRequestError:  # exists with other settings: use it as it is
            await self.link.js.stream_info(self.stream)
        self._resubscribe = True

    def append(self, rating: Rating) -> Stored:
        """Publish with the rating's dedup key as Nats-Msg-Id: JetStream stores a key
        once within its duplicate window and acknowledges a repeat with the first
        message's sequence, whose record is then read back for the answer."""
        if not self.link.connected:
            raise LogUnavailable(
                f"rating log {self.describe} is unreachable: the rating was not stored; "
                "retry when the engine is back"
            )
        key = rating.dedup_key()
        try:
            ack = self.link.call(
                self.link.js.publish(
                    self.subject,
                    rating.to_json(),
                    timeout=ACK_TIMEOUT,
                    stream=self.stream,
                    headers={"Nats-Msg-Id": key} if key else None,
                ),
                ACK_TIMEOUT + 1,
            )
        except Exception as e:
            raise LogUnavailable(
                f"rating log {self.describe} did not acknowledge ({type(e).__name__}: {e}): "
                "the rating may not be stored; retry"
            ) from e
        if not ack.duplicate:
            return Stored(int(ack.seq), rating)
        return Stored(int(ack.seq), self._first(int(ack.seq), rating), repeat=True)

    def _first(self, seq: int, retry: Rating) -> Rating:
        """The record stored at ``seq`` (a repeat's first call); ``retry`` if unreadable."""
        try:
            msg = self.link.call(self.link.js.get_msg(self.stream, seq), ACK_TIMEOUT + 1)
            return Rating.from_json(msg.data or b"")
        except Exception as e:  # the repeat is still not stored twice: answer with ours
            log.warning(
                "cannot read the first record of a repeated rating",
                extra=kv(stream=self.stream, seq=seq, error=str(e) or type(e).__name__),
            )
            return retry

    def read_from(self, offset: int = 0) -> Iterator[tuple[int, Rating]]:
        if not self.link.wait_connected(10):
            raise LogUnavailable(f"rating log {self.describe} is unreachable")
        rows = self.link.call(self._read_all(max(1, offset)), 600)
        yield from rows

    async def _read_all(self, start: int) -> list[tuple[int, Rating]]:
        info = await self.link.js.stream_info(self.stream)
        last = int(info.state.last_seq)
        out: list[tuple[int, Rating]] = []
        if last < start:
            return out
        consumer = await PullConsumer.create(self.link.nc, self.link.js, self.stream, start)
        try:
            seq, empty = start - 1, 0
            while seq < last and empty < 3:
                msgs = await consumer.available(FETCH_BATCH)
                if not msgs:
                    empty += 1  # three in a row: the rest was deleted from the stream
                    continue
                empty = 0
                for m in msgs:
                    seq = int(m.metadata.sequence.stream)
                    if seq <= last:
                        out.append((seq, Rating.from_json(m.data)))
                await msgs[-1].ack()
        finally:
            await _quietly_delete(consumer)
        return out

    def follow(self, sink: Sink, reset: Sink | None = None) -> None:
        self._sink = sink
        self.link.spawn(self._tail())

    def poll(self) -> None:
        pass  # the tail pushes

    def caught_up(self) -> bool:
        return self._caught_up.is_set()

    def connected(self) -> bool:
        return self.link.connected

    async def _tail(self) -> None:
        consumer: PullConsumer | None = None
        backlog = True  # more may be stored than one message: pull a batch
        while not self._closed:
            if not self.link.connected:
                await asyncio.sleep(0.1)
                continue
            try:
                if consumer is None or self._resubscribe:
                    self._resubscribe = False
                    if consumer is not None:
                        await _quietly_delete(consumer)
                    consumer = await PullConsumer.create(
                        self.link.nc,
                        self.link.js,
                        self.stream,
                        self.delivered + 1,
                        lambda: self._resubscribe,
                    )
                    backlog = True
                if backlog:
                    msgs = await consumer.available(FETCH_BATCH)
                else:  # an idle pull (a lost consumer raises after three silent ones)
                    msgs = await consumer.next(FETCH_WAIT)
                for m in msgs:
                    self._deliver(int(m.metadata.sequence.stream), m.data)
                backlog = bool(msgs) and msgs[-1].metadata.num_pending > 0
                if msgs:
                    await msgs[-1].ack()  # AckAll: one ack per batch
                if not backlog:  # nothing stored is left undelivered
                    self._caught_up.set()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning(
                    "rating tail interrupted; resubscribing",
                    extra=kv(
                        stream=self.stream,
                        after=self.delivered,
                        error=str(e) or type(e).__name__,
                    ),
                )
                if consumer is not None:
                    await _quietly_delete(consumer)
                consumer = None
                await asyncio.sleep(0.5)

    def _deliver(self, seq: int, data: bytes) -> None:
        if seq <= self.delivered:
            return  # redelivered after a resubscribe
        self.delivered = seq
        sink = self._sink
        if sink is None:
            return
        try:
            sink(seq, Rating.from_json(data))
        except BadRecord as e:
            log.warning("skipping bad rating record", extra=kv(seq=seq, error=str(e)))

    def close(self) -> None:
        self._closed = True


async def _quietly_delete(consumer: PullConsumer) -> None:
    with contextlib.suppress(Exception):  # the engine may have forgotten it already
        await consumer.delete()
