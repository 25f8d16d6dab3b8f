"""h2load (nghttp2's C load generator) sending raw gRPC, to size the Python client's overhead.

A unary gRPC request is an HTTP/2 POST whose body is one length-prefixed
message: a 0 byte (not compressed), the 4-byte big-endian length, the
serialized protobuf. h2load replays that body with the gRPC headers; its
per-request log gives latencies that go through the same percentile code as
the Python harness. h2load cannot read gRPC trailers, so a reply counts as
good when HTTP says 200 and the reply carried a message body.

Install: ``apt-get install nghttp2-client``. Without it the cross-check says so
and is skipped.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stats import summarize


def available() -> str | None:
    """Path of the h2load binary, or None."""
    return shutil.which("h2load")


def grpc_frame(message: bytes) -> bytes:
    """The gRPC length-prefixed message: flag 0, big-endian uint32 length, payload."""
    return b"\x00" + struct.pack(">I", len(message)) + message


@dataclass(frozen=True)
class H2loadResult:
    requests: int
    succeeded: int
    failed: int
    rps: float
    seconds: float
    body_bytes: int  # DATA bytes received: >0 per request means replies carried messages
    latency: dict[str, Any]
    status_codes: str


def _parse(stdout: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", stdout)
    if m:
        value = float(m.group(1))
        out["seconds"] = value / 1000.0 if m.group(2) == "ms" else value
        out["rps"] = float(m.group(3))
    m = re.search(
        r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", stdout
    )
    if m:
        out["done"], out["succeeded"], out["failed"] = (int(m.group(i)) for i in (2, 3, 4))
    m = re.search(r"traffic: .*?\((\d+)\) total, .*?\((\d+)\) headers.*?\((\d+)\) data", stdout)
    if m:
        out["data"] = int(m.group(3))
    m = re.search(r"status codes: (.*)", stdout)
    out["status"] = m.group(1).strip() if m else ""
    return out


# The headers of a gRPC request over HTTP/2.
GRPC_HEADERS: tuple[str, ...] = ("-H", "content-type: application/grpc", "-H", "te: trailers")


def invoke(
    url: str, message: bytes, options: Sequence[str], headers: Sequence[str] = GRPC_HEADERS
) -> tuple[dict[str, Any], list[float]]:
    """h2load ``options`` on ``url``, every request's body the gRPC frame of ``message``:
    the figures it printed (``_parse``) and the latencies (s) of HTTP 200 replies."""
    binary = available()
    if binary is None:
        raise FileNotFoundError("h2load not found (apt-get install nghttp2-client)")
    with tempfile.TemporaryDirectory(prefix="bench-h2load-") as tmp:
        body = Path(tmp) / "body.bin"
        body.write_bytes(grpc_frame(message))
        log = Path(tmp) / "requests.tsv"
        cmd = [binary, *options, *headers, "-d", str(body), f"--log-file={log}", url]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"h2load failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        latencies = []
        for line in log.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[1] == "200":
                latencies.append(int(parts[2]) / 1e6)
    return _parse(proc.stdout), latencies


def run(
    target: str,
    path: str,
    message: bytes,
    connections: int,
    streams: int,
    duration: float,
    warmup: float = 1.0,
    rps: float | None = None,
) -> H2loadResult:
    """``connections`` x ``streams`` concurrent requests for ``duration`` seconds.

    ``warmup`` 0: no warm-up inside this run (the caller ran its own). ``rps``: open
    loop at that total rate (h2load's --rps is per connection, so it is divided)."""
    options = [
        "-c",
        str(connections),
        "-m",
        str(streams),
        "-t",
        "1",
        "-D",
        str(max(round(duration), 1)),
        *(["--warm-up-time", f"{max(round(warmup), 1)}"] if warmup > 0 else []),
        *([f"--rps={rps / connections:.3f}"] if rps else []),
    ]
    figures, latencies = invoke(f"http://{target}{path}", message, options)
    return H2loadResult(
        requests=int(figures.get("done", 0)),
        succeeded=int(figures.get("succeeded", 0)),
        failed=int(figures.get("failed", 0)),
        rps=float(figures.get("rps", 0.0)),
        seconds=float(figures.get("seconds", 0.0)),
        body_bytes=int(figures.get("data", 0)),
        latency=summarize(latencies).as_dict(),
        status_codes=str(figures.get("status", "")),
    )
