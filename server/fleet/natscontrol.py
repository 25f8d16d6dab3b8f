"""Operator state and the fleet view in JetStream key-value buckets.

Two buckets beside the rating stream ``STREAM`` (the same engine, so a fleet
depends on one service): ``STREAM-control`` holds the key ``pin`` (file
storage, history 10: the last decisions and who made them), and
``STREAM-replicas`` one key per replica, rewritten every second and dropped
by the bucket's TTL when the replica stops beating. Each replica reads both
every ``POLL`` seconds on the link's loop, so reads never wait for the engine
and an unreachable engine leaves the last known pin in force.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict

from nats.js import api
from nats.js.errors import BadRequestError, KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue

from bookrec.log import kv
from bookrec.ratinglog.jetstream import parse_url
from bookrec.ratinglog.natslink import NatsLink
from server.engine.control import ControlUnavailable, ReplicaStatus

log = logging.getLogger("server.fleet")

POLL = 0.5  # seconds between reads of the pin and the fleet
BEAT_TTL = 10.0  # a replica silent this long leaves the fleet view
PIN_KEY = "pin"


def _key(replica_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_=-]", "_", replica_id)


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
                try:
                    # The link may have connected before our on_connect hook was added
                    # (it is shared): open the buckets here too.
                    if self._control is None or self._replicas is None:
                        await self._buckets()
                    await self._tick()
                except Exception as e:  # the engine went away mid-tick: try again
                    log.debug("control poll failed", extra=kv(error=str(e) or type(e).__name__))
            await asyncio.sleep(POLL)

    async def _tick(self) -> None:
        assert self._control is not None and self._replicas is not None
        try:
            entry = await self._control.get(PIN_KEY)
            doc = json.loads(entry.value or b"{}")
            pin = str(doc["pin"]) if isinstance(doc, dict) and doc.get("pin") else None
        except KeyNotFoundError:
            pin = None
        self._set_pin(pin)
        self._read_once.set()
        beat = self._beat
        if beat is not None:
            doc = asdict(beat) | {"at": time.time()}
            await self._replicas.put(_key(beat.replica_id), json.dumps(doc).encode())
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
                continue
        self._fleet = sorted(fleet, key=lambda s: s.replica_id)

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
                self.link.call(replicas.delete(_key(beat.replica_id)), 2)
            except Exception as e:
                log.debug("could not remove heartbeat", extra=kv(error=str(e)))
