"""Typed Python clients for bookrec: ``BookrecClient`` (blocking, clients/sync.py) and
``AsyncBookrecClient`` (asyncio, clients/aio.py), one body between them: sync.py is
generated from aio.py (``python -m clients.unasync``). Both return the generated
reply messages and raise ``clients.errors.BookrecError`` (a ``grpc.RpcError``) with
the status code, message and field violations.

Both take an API key and TLS settings (``clients.connect.Connection``; by default
from ``BOOKREC_API_KEY`` and ``BOOKREC_TLS_*``) and send the key on every call."""

from __future__ import annotations

from clients.aio import AsyncBookrecClient
from clients.common import (
    DEFAULT_TARGET,
    DEFAULT_TIMEOUT,
    SIMILAR_MODES,
    describe,
    make_filters,
)
from clients.errors import (
    BookrecError,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from clients.retry import NO_RETRY, RetryPolicy
from clients.sync import BookrecClient

__all__ = [
    "DEFAULT_TARGET",
    "DEFAULT_TIMEOUT",
    "NO_RETRY",
    "SIMILAR_MODES",
    "AsyncBookrecClient",
    "BookrecClient",
    "BookrecError",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "RetryPolicy",
    "Unauthenticated",
    "Unavailable",
    "describe",
    "make_filters",
]
