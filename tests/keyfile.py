"""Helpers for the security tests: a keys file with known plaintext keys, bearer
metadata, and waiting for a server that may speak TLS."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.keys import KeyEntry, hash_key, new_key, write_keys_file


def make_keys(path: Path, specs: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Write ``path`` with one entry per spec (``scopes``, optional ``users``, ``rate``,
    ``burst``); return each id's plaintext key."""
    keys = {key_id: new_key() for key_id in specs}
    write_keys_file(
        path,
        [
            KeyEntry(
                id=key_id,
                sha256=hash_key(keys[key_id]),
                scopes=frozenset(spec["scopes"]),
                users=frozenset(spec.get("users", ())),
                rate=spec.get("rate"),
                burst=spec.get("burst"),
            )
            for key_id, spec in specs.items()
        ],
    )
    return keys


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def wait_answering(
    target: str, credentials: grpc.ChannelCredentials | None = None, timeout: float = 30.0
) -> None:
    """Until Health/Check answers at all (a server without a model says NOT_SERVING)."""
    deadline = time.monotonic() + timeout
    while True:
        channel = (
            grpc.secure_channel(target, credentials)
            if credentials is not None
            else grpc.insecure_channel(target)
        )
        with channel:
            stub: Any = health_pb2_grpc.HealthStub(channel)
            try:
                stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                return
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
        time.sleep(0.1)
