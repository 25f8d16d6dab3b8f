"""Operator state and the fleet view in JetStream key-value buckets.

Two buckets beside the rating stream ``STREAM`` (the same engine, so a fleet
depends on one service): ``STREAM-control`` holds the key ``pin`` (file
storage, history 10: the last decisions and who made them), and
``STREAM-replicas`` one key per replica, rewritten every second and dropped
by the bucket's TTL when the replica stops beating. Each replica reads both
every ``POLL`` seconds on the link's loop, so reads never wait for the engine
and an unreachable engine leaves the last known pin in force; so does a
malformed pin document (logged as a warning: PinVersion or Unpin writes a good
one). Each step of a round (open the buckets, read the pin, beat, read the
fleet) fails alone: it is logged and counted (server/polls.py) and the others
go on, so a bad pin document never stops the heartbeat.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict

from nats.js import api
from nats.js.errors import BadRequestError, KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue

from bookrec.log import kv
from bookrec.ratinglog.jetstream import parse_url
from bookrec.ratinglog.natslink import NatsLink
from server.engine.control import BEAT_TTL, ControlUnavailable, ReplicaStatus, beat_key
from server.polls import PollGuard

log = logging.getLogger("server.fleet")

POLL = 0.5  # seconds between reads of the pin and the fleet
PIN_KEY = "pin"


def parse_pin(value: bytes | None) -> str | None:
    """The version a pin document names (None: unpinned); ValueError when it is not
    a JSON object whose ``pin`` is a version name or empty."""
    doc = json.loads(value or b"{}")
    if not isinstance(doc, dict):
        raise ValueError(f"not a JSON object: {value[:80]!r}" if value else "not a JSON object")
    pin = doc.get("pin")
    if pin is not None and not isinstance(pin, str):
        raise ValueError(f"'pin' is {type(pin).__name__}, not a version name or null")
    return pin or None


class NatsControl:
    def __init__(self, url: str, first_read_timeout: float = 5.0) -> None:
        servers, stream, self.replicas = parse_url(url)
        self.control_bucket = f"{stream}-control"
        self.replica_bucket = f"{stream}-replicas"
        self.describe = f"nats {servers} buckets {self.control_bucket}, {self.replica_bucket}"
        self.link = NatsLink.shared(servers)
        self._control: KeyValue | None = None
        self._replicas: KeyValue | None = None
        self._pin: str | None = None
        self._read_once = threading.Event()
        self._beat: ReplicaStatus | None = None
        self._fleet: list[ReplicaStatus] = []
        self._callbacks: list[Callable[[], None]] = []
        self._closed = False
        self._guards = {
            step: PollGuard(f"fleet_{step}", logger=log)
            for step in ("control", "pin", "heartbeat", "view")
        }
        self.link.on_connect.append(self._buckets)
        self.link.spawn(self._loop())
        self._read_once.wait(first_read_timeout)  # honour a pin before the first load

    async def _buckets(self) -> None:
        js = self.link.js
        for name, cfg in (
            (self.control_bucket, {"history": 10}),
            (self.replica_bucket, {"history": 1, "ttl": BEAT_TTL}),
        ):
            try:
                bucket = await js.create_key_value(
                    api.KeyValueConfig(
                        bucket=name,
                        storage=api.StorageType.FILE,
                        replicas=self.replicas,
                        **cfg,
                    )
                )
            except BadRequestError:  # exists with other settings
                bucket = await js.key_value(name)
            if name == self.control_bucket:
                self._control = bucket
            else:
                self._replicas = bucket

    async def _loop(self) -> None:
        while not self._closed:
            if self.link.connected:
                await self._round()
            await asyncio.sleep(POLL)

    async def _round(self) -> None:
        """Each step on its own: one that fails is logged and counted, the next runs."""
        # The link may have connected before our on_connect hook was added (it is
        # shared): open the buckets here too.
        unopened = self._control is None or self._replicas is None
        if unopened and not await self._step("control", self._buckets, "no pin, no fleet"):
            return
        await self._step("pin", self._sync_pin, "the last pin read stays in force")
        self._read_once.set()  # read or not: the first load waits no longer
        await self._step("heartbeat", self._send_beat, "the fleet view ages this replica")
        await self._step("view", self._read_fleet, "the fleet view as last read")

    async def _step(self, name: str, step: Callable[[], Awaitable[None]], what: str) -> bool:
        guard = self._guards[name]
        try:
            await step()
        except Exception as e:  # the engine went away mid-round, a bad document: go on
            guard.failed(e, what)
            return False
        guard.succeeded()
        return True

    async def _sync_pin(self) -> None:
        assert self._control is not None
        try:
            entry = await self._control.get(PIN_KEY)
        except KeyNotFoundError:
            self._set_pin(None)
            return
        try:
            pin = parse_pin(entry.value)
        except ValueError as e:
            raise ValueError(
                f"malformed pin document (bucket {self.control_bucket}, key {PIN_KEY}, "
                f"revision {entry.revision}): {e}; write a good one with PinVersion or Unpin"
            ) from e
        self._set_pin(pin)

    async def _send_beat(self) -> None:
        assert self._replicas is not None
        beat = self._beat
        if beat is not None:
            doc = asdict(beat) | {"at": time.time()}
            await self._replicas.put(beat_key(beat), json.dumps(doc).encode())

    async def _read_fleet(self) -> None:
        assert self._replicas is not None
        fleet = []
        try:
            keys = await self._replicas.keys()
        except NoKeysError:
            keys = []
        for k in keys:
            try:
                e = await self._replicas.get(k)
                fleet.append(ReplicaStatus(**json.loads(e.value or b"{}")))
            except (KeyNotFoundError, TypeError, ValueError):
                continue  # gone since the listing, or another build's document
        self._fleet = sorted(fleet, key=lambda s: (s.replica_id, s.worker_pid))

    def _set_pin(self, pin: str | None) -> None:
        if pin == self._pin:
            return
        log.info("shared pin changed", extra=kv(pin=pin or "", was=self._pin or ""))
        self._pin = pin
        for cb in list(self._callbacks):
            cb()

    def read_pin(self) -> str | None:
        return self._pin

    def write_pin(self, version: str | None, by: str) -> None:
        if not self.link.connected or self._control is None:
            raise ControlUnavailable(
                f"control store {self.describe} is unreachable: the change was not made; "
                "retry when the engine is back"
            )
        doc = json.dumps({"pin": version, "by": by, "at": time.time()}).encode()
        control = self._control
        try:
            self.link.call(control.put(PIN_KEY, doc), 5)
        except Exception as e:
            raise ControlUnavailable(
                f"control store {self.describe} did not take the change ({e}); retry"
            ) from e
        self._set_pin(version)

    def heartbeat(self, status: ReplicaStatus) -> None:
        self._beat = status

    def fleet(self) -> list[ReplicaStatus]:
        return list(self._fleet)

    def on_change(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def close(self) -> None:
        self._closed = True
        beat, replicas = self._beat, self._replicas
        if beat is not None and replicas is not None and self.link.connected:
            try:  # leave the fleet view now rather than at the TTL
                self.link.call(replicas.delete(beat_key(beat)), 2)
            except Exception as e:  # it leaves at the TTL instead
                log.warning("could not remove heartbeat", extra=kv(error=str(e)))
