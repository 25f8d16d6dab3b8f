"""Structured logs (one JSON object per line) for the trainer and the server."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

import orjson

# Numpy values and non-string keys as they are; anything else orjson lacks as str().
_ORJSON = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
# The last whole second formatted, and its text: one tuple, swapped whole, so a thread
# never reads one second's number with another's text.
_second: list[tuple[int, str]] = [(-1, "")]


def json_line(
    created: float,
    msecs: int,
    level: str,
    logger: str,
    event: str,
    fields: dict[str, Any] | None = None,
    exc: str | None = None,
) -> str:
    """One log line: the formatter's, and the server's access line written without a
    LogRecord (server/observe.py), so the two cannot drift apart."""
    whole = int(created)
    second = _second[0]
    if second[0] != whole:  # strftime once a second, not once a line
        second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
        _second[0] = second
    doc: dict[str, Any] = {
        "ts": f"{second[1]}.{msecs:03d}Z",
        "level": level,
        "logger": logger,
        "event": event,
    }
    if fields:
        doc.update(fields)
    if exc:
        doc["exc"] = exc
    try:  # orjson: a log line per call (the access log) must cost little
        return orjson.dumps(doc, default=str, option=_ORJSON).decode()
    except TypeError:  # nesting too deep, an int too large: the slow, lenient way
        return json.dumps(doc, default=str)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        return json_line(
            record.created,
            int(record.msecs),
            record.levelname.lower(),
            record.name,
            record.getMessage(),
            fields if isinstance(fields, dict) else None,
            self.formatException(record.exc_info) if record.exc_info else None,
        )


def configure(level: str = "INFO") -> None:
    """Route every logger to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # faiss announces which CPU build it loaded at INFO on every import.
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    # gRPC's Python loggers (grpc, grpc._cython.cygrpc, grpc.aio) reach the same handler.
    for name in ("grpc", "grpc._cython"):
        logging.getLogger(name).propagate = True


def kv(**fields: Any) -> dict[str, Any]:
    """``log.info("event", extra=kv(users=3))`` attaches fields to the line."""
    return {"fields": fields}
