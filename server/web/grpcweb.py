"""The gRPC-Web wire format (binary ``application/grpc-web+proto``), as pure functions.

A gRPC-Web body is a sequence of frames: one flag byte (0x00 data, 0x80 trailers;
bit 0x01 = compressed), a 4-byte big-endian length, then the payload. A unary
request is exactly one uncompressed data frame; a reply is at most one data frame
and always one trailer frame whose payload is HTTP/1-style header lines
(``grpc-status``, ``grpc-message`` and the call's trailing metadata).
Spec: https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md
"""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Iterable

DATA = 0x00
TRAILERS = 0x80
COMPRESSED = 0x01
HEADER = struct.Struct(">BI")
CONTENT_TYPES = ("application/grpc-web", "application/grpc-web+proto")
# Metadata a caller may send through the page; everything else in the HTTP request
# (cookies, browser headers) stays out of the gRPC call.
FORWARDED = ("authorization", "x-request-id")
# Trailing metadata never copied into the trailer frame (the gateway writes these).
_RESERVED = frozenset({"grpc-status", "grpc-message", "content-type", "content-length"})
_TIMEOUT = re.compile(r"([0-9]{1,8})([HMSmun])")
_UNIT_SECONDS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


class BadFrame(ValueError):
    """The request body is not one uncompressed gRPC-Web data frame."""


def frame(flag: int, payload: bytes) -> bytes:
    """One frame: flag, length, payload."""
    return HEADER.pack(flag, len(payload)) + payload


def unary_request(body: bytes) -> bytes:
    """The message of a unary request body, or BadFrame saying what is wrong."""
    if len(body) < HEADER.size:
        raise BadFrame("the body is shorter than one gRPC-Web frame header")
    flag, length = HEADER.unpack_from(body)
    if flag & COMPRESSED:
        raise BadFrame("compressed messages are not supported: send them uncompressed")
    if flag != DATA:
        raise BadFrame(f"the first frame must be a data frame, not flag {flag:#x}")
    if len(body) != HEADER.size + length:
        raise BadFrame("a unary call carries exactly one message frame")
    return body[HEADER.size :]


def percent_encode(message: str) -> str:
    """grpc-message encoding: printable ASCII but '%' as is, every other byte %XX."""
    out = []
    for byte in message.encode("utf-8"):
        ch = chr(byte)
        out.append(ch if 0x20 <= byte <= 0x7E and ch != "%" else f"%{byte:02X}")
    return "".join(out)


def trailer_frame(code: int, message: str, metadata: Iterable[tuple[str, str | bytes]]) -> bytes:
    """The closing frame: status, percent-encoded message, then the call's trailing
    metadata (binary ``-bin`` values base64, as in HTTP/2 gRPC)."""
    lines = [f"grpc-status: {code}"]
    if message:
        lines.append(f"grpc-message: {percent_encode(message)}")
    for key, value in metadata:
        name = key.lower()
        if name in _RESERVED or not re.fullmatch(r"[0-9a-z_.-]+", name):
            continue
        if isinstance(value, bytes):
            text = base64.b64encode(value).decode("ascii").rstrip("=")
        else:
            text = value.replace("\r", " ").replace("\n", " ")
        lines.append(f"{name}: {text}")
    return frame(TRAILERS, ("\r\n".join(lines) + "\r\n").encode("utf-8"))


def timeout_seconds(header: str | None, cap: float) -> float:
    """The call's deadline from ``grpc-timeout`` (e.g. ``5S``, ``250m``), at most ``cap``."""
    if header:
        m = _TIMEOUT.fullmatch(header.strip())
        if m:
            return min(cap, int(m.group(1)) * _UNIT_SECONDS[m.group(2)])
    return cap
