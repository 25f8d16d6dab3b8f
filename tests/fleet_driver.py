"""The client host of the fleet test: gRPC calls to the replicas, on command.

Runs inside the client namespace (``ip netns exec <client> python tests/fleet_driver.py
ADDR1 ADDR2 ADDR3``) so every call it makes crosses the virtual switch. The test
process, on the host side, sends one JSON object per line on stdin and reads one
JSON reply per line on stdout:

    {"op": "rate", "replica": 1, "user": "u", "book": "b", "rating": 8}
    {"op": "recommend", "replica": 3, "user": "u", "k": 100}
    {"op": "load_start", "users": [...], "threads": 3}   then "load_stats" / "load_stop"

``replica`` is 1-based; ``null`` means the fleet channel: all three addresses with
round_robin and gRPC's own retries on UNAVAILABLE, the way a client that knows
every replica fails over. Replies carry ``code`` (a grpc.StatusCode name) and never
raise: the test decides what a failure means.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bookrec.v1 import admin_pb2, feedback_pb2, recommender_pb2
from bookrec.v1.admin_pb2_grpc import AdminServiceStub
from bookrec.v1.feedback_pb2_grpc import FeedbackServiceStub
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub

CALL_TIMEOUT = 10.0


def fleet_service_config(attempts: int = 5) -> str:
    """round_robin over every address, and UNAVAILABLE retried on another one."""
    return json.dumps(
        {
            "loadBalancingConfig": [{"round_robin": {}}],
            "methodConfig": [
                {
                    "name": [{}],
                    "retryPolicy": {
                        "maxAttempts": attempts,
                        "initialBackoff": "0.05s",
                        "maxBackoff": "1s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ],
        }
    )


def fleet_channel(addrs: list[str]) -> grpc.Channel:
    """One channel over all replicas (``ipv4:a:p,b:p,...``)."""
    return grpc.insecure_channel(
        "ipv4:" + ",".join(addrs),
        options=[
            ("grpc.service_config", fleet_service_config()),
            ("grpc.enable_retries", 1),
            ("grpc.use_local_subchannel_pool", 1),
            # Reconnect to a restarted replica quickly, not after minutes of backoff.
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ],
    )


def replica_channel(addr: str) -> grpc.Channel:
    """One replica only, no retries: what that host answers, as it answers it."""
    return grpc.insecure_channel(
        addr,
        options=[
            ("grpc.enable_retries", 0),
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 500),
        ],
    )


@dataclass
class Stubs:
    channel: grpc.Channel
    rec: Any = None
    feedback: Any = None
    admin: Any = None
    health: Any = None

    def __post_init__(self) -> None:
        self.rec = RecommenderServiceStub(self.channel)
        self.feedback = FeedbackServiceStub(self.channel)
        self.admin = AdminServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)


def _call(fn: Callable[[], Any]) -> tuple[str, Any, str]:
    """(code name, reply or None, error details)."""
    try:
        return "OK", fn(), ""
    except grpc.RpcError as e:
        code = e.code() if callable(getattr(e, "code", None)) else None
        detail = e.details() if callable(getattr(e, "details", None)) else str(e)
        return (code.name if code is not None else "UNKNOWN"), None, str(detail)


@dataclass
class Load:
    """Closed-loop clients on the fleet channel: each asks a user's recommendations,
    rates the top book, and records every outcome and every acknowledged rating."""

    stubs: Stubs
    users: list[str]
    threads: int
    rating: int = 8
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    acked: list[list[str]] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)
    last_version: str = ""
    workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for i in range(self.threads):
            mine = self.users[i :: self.threads]
            t = threading.Thread(target=self._run, args=(mine,), daemon=True)
            t.start()
            self.workers.append(t)

    def _note(self, op: str, code: str, detail: str, reply: Any) -> None:
        with self.lock:
            self.calls += 1
            if code != "OK":
                self.failures.append({"op": op, "code": code, "detail": detail[:300]})
            elif reply is not None and reply.model_version:
                self.versions[reply.model_version] = self.versions.get(reply.model_version, 0) + 1
                self.last_version = reply.model_version

    def _run(self, users: list[str]) -> None:
        while not self.stop.is_set():
            for user in users:
                if self.stop.is_set():
                    return
                req = recommender_pb2.RecommendRequest(user_id=user, k=10)
                code, reply, detail = _call(
                    partial(self.stubs.rec.Recommend, req, timeout=CALL_TIMEOUT)
                )
                self._note("Recommend", code, detail, reply)
                if code != "OK" or not reply.items:
                    continue
                book = reply.items[0].book.book_id
                rate = feedback_pb2.RateBookRequest(user_id=user, book_id=book, rating=self.rating)
                code, ack, detail = _call(
                    partial(self.stubs.feedback.RateBook, rate, timeout=CALL_TIMEOUT)
                )
                self._note("RateBook", code, detail, ack)
                if code == "OK" and ack.accepted:
                    with self.lock:
                        self.acked.append([user, book])

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "calls": self.calls,
                "failures": list(self.failures),
                "acked": list(self.acked),
                "versions": dict(self.versions),
                "last_version": self.last_version,
            }

    def finish(self) -> dict[str, Any]:
        self.stop.set()
        for t in self.workers:
            t.join(CALL_TIMEOUT * 6)
        return self.stats()


class Driver:
    def __init__(self, addrs: list[str], admin_token: str) -> None:
        self.replicas = [Stubs(replica_channel(a)) for a in addrs]
        self.fleet = Stubs(fleet_channel(addrs))
        self.auth = (("authorization", f"Bearer {admin_token}"),) if admin_token else ()
        self.load: Load | None = None

    def stubs(self, cmd: dict[str, Any]) -> Stubs:
        n = cmd.get("replica")
        return self.fleet if n is None else self.replicas[int(n) - 1]

    def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd["op"]
        s = self.stubs(cmd)
        timeout = float(cmd.get("timeout", CALL_TIMEOUT))
        if op == "ping":
            return {"code": "OK"}
        if op == "health":
            check = health_pb2.HealthCheckRequest(service=cmd.get("service", ""))
            code, reply, detail = _call(lambda: s.health.Check(check, timeout=timeout))
            status = (
                health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status) if reply else ""
            )
            return {"code": code, "status": status, "detail": detail}
        if op == "rate":
            rate = feedback_pb2.RateBookRequest(
                user_id=cmd["user"], book_id=cmd["book"], rating=int(cmd.get("rating", 8))
            )
            code, reply, detail = _call(lambda: s.feedback.RateBook(rate, timeout=timeout))
            return {
                "code": code,
                "detail": detail,
                "accepted": bool(reply and reply.accepted),
                "version": reply.model_version if reply else "",
            }
        if op == "recommend":
            req = recommender_pb2.RecommendRequest(user_id=cmd["user"], k=int(cmd.get("k", 10)))
            code, reply, detail = _call(lambda: s.rec.Recommend(req, timeout=timeout))
            books = [i.book.book_id for i in reply.items] if reply else []
            return {
                "code": code,
                "detail": detail,
                "books": books,
                "version": reply.model_version if reply else "",
            }
        if op == "status":
            code, reply, detail = _call(
                lambda: s.admin.GetStatus(
                    admin_pb2.GetStatusRequest(), timeout=timeout, metadata=self.auth
                )
            )
            doc = MessageToDict(reply, preserving_proto_field_name=True) if reply else {}
            return {"code": code, "detail": detail, "status": doc}
        if op in ("rollback", "unpin", "pin"):
            calls: dict[str, Callable[[], Any]] = {
                "rollback": lambda: s.admin.Rollback(
                    admin_pb2.RollbackRequest(), timeout=timeout, metadata=self.auth
                ),
                "unpin": lambda: s.admin.Unpin(
                    admin_pb2.UnpinRequest(), timeout=timeout, metadata=self.auth
                ),
                "pin": lambda: s.admin.PinVersion(
                    admin_pb2.PinVersionRequest(version=cmd.get("version", "")),
                    timeout=timeout,
                    metadata=self.auth,
                ),
            }
            code, reply, detail = _call(calls[op])
            pinned = getattr(reply, "pinned_version", "") if reply else ""
            return {"code": code, "detail": detail, "pinned": pinned}
        if op == "load_start":
            if self.load is not None:
                return {"code": "FAILED_PRECONDITION", "detail": "a load is running"}
            self.load = Load(self.fleet, list(cmd["users"]), int(cmd.get("threads", 3)))
            self.load.start()
            return {"code": "OK"}
        if op == "load_stats":
            return {"code": "OK", **(self.load.stats() if self.load else {})}
        if op == "load_stop":
            if self.load is None:
                return {"code": "FAILED_PRECONDITION", "detail": "no load is running"}
            out = self.load.finish()
            self.load = None
            return {"code": "OK", **out}
        return {"code": "INVALID_ARGUMENT", "detail": f"unknown op {op!r}"}


def main(argv: list[str]) -> int:
    addrs = [a for a in argv if not a.startswith("--token=")]
    token = next((a.split("=", 1)[1] for a in argv if a.startswith("--token=")), "")
    driver = Driver(addrs, token)
    print(json.dumps({"code": "OK", "ready": time.time()}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = driver.handle(json.loads(line))
        except Exception as e:  # a bad command is the test's bug: say so, keep serving
            reply = {"code": "DRIVER_ERROR", "detail": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
