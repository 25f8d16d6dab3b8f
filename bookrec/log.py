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


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        try:  # orjson: a log line per call (the access log) must cost little
            return orjson.dumps(doc, default=str, option=_ORJSON).decode()
        except TypeError:  # nesting too deep, an int too large: the slow, lenient way
            return json.dumps(doc, default=str)


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
