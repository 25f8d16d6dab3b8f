"""The errors both clients raise: one ``BookrecError`` per failed call, keeping the
status code, the server's message and the structured field violations.

The server puts a ``google.rpc.Status`` holding a ``google.rpc.BadRequest`` in the
``grpc-status-details-bin`` trailer when one request field is at fault
(server/handlers/common.py); callers should not have to decode it themselves.

``BookrecError`` is a ``grpc.RpcError`` and keeps ``code()`` / ``details()``, so code
written against the raw stubs (``except grpc.RpcError``) still works; ``status`` is
the same code as an attribute. Each common code has a subclass
(``except NotFound``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import grpc
from google.rpc.error_details_pb2 import BadRequest
from google.rpc.status_pb2 import Status

DETAILS_KEY = "grpc-status-details-bin"


class FieldViolation(NamedTuple):
    """One request field the server refused, and why."""

    field: str
    description: str


class BookrecError(grpc.RpcError):
    """A call that failed: ``status`` (a ``grpc.StatusCode``), ``message`` (what the
    server said, with what to do next) and ``field_violations`` (the fields at fault)."""

    def __init__(
        self,
        status: grpc.StatusCode,
        message: str,
        field_violations: Sequence[FieldViolation] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field_violations = list(field_violations)

    def code(self) -> grpc.StatusCode:
        """The status code (``grpc.RpcError``'s spelling of ``status``)."""
        return self.status

    def details(self) -> str:
        """The server's message (``grpc.RpcError``'s spelling of ``message``)."""
        return self.message

    @property
    def field(self) -> str:
        """The first field at fault, or "" when the error names none."""
        return self.field_violations[0].field if self.field_violations else ""

    def __str__(self) -> str:
        """One readable line: ``INVALID_ARGUMENT (k): k must be in 1..100 ...``."""
        fields = ", ".join(dict.fromkeys(v.field for v in self.field_violations))
        where = f" ({fields})" if fields else ""
        return f"{self.status.name}{where}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.status.name}, {self.message!r}, "
            f"field_violations={self.field_violations!r})"
        )


class InvalidArgument(BookrecError):
    """A field is out of range or malformed; ``field_violations`` names it."""


class NotFound(BookrecError):
    """An id the served model does not know."""


class FailedPrecondition(BookrecError):
    """The request no longer fits the server's state, e.g. a page token made by a
    model that has since been replaced: start again without the token."""


class Unavailable(BookrecError):
    """No model loaded yet, or the server is down or draining (retried by the clients)."""


class Unauthenticated(BookrecError):
    """No API key, or a wrong one."""


class PermissionDenied(BookrecError):
    """The key lacks the scope the call needs."""


class ResourceExhausted(BookrecError):
    """The server is shedding load or the key is over its rate limit: back off."""


class DeadlineExceeded(BookrecError):
    """The call took longer than its deadline (``timeout``)."""


_BY_CODE: dict[grpc.StatusCode, type[BookrecError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def _violations(trailers: object) -> list[FieldViolation]:
    """The BadRequest field violations in ``grpc-status-details-bin``, if any."""
    found: list[FieldViolation] = []
    for key, value in trailers if isinstance(trailers, Sequence) else ():
        if key != DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = Status.FromString(value)
        for detail in status.details:
            bad = BadRequest()
            if detail.Unpack(bad):
                found += [FieldViolation(v.field, v.description) for v in bad.field_violations]
    return found


def from_rpc_error(error: grpc.RpcError) -> BookrecError:
    """``error`` (as the sync or asyncio stubs raise it) as a ``BookrecError``."""
    if isinstance(error, BookrecError):
        return error
    code_of = getattr(error, "code", None)
    status = code_of() if callable(code_of) else grpc.StatusCode.UNKNOWN
    details_of = getattr(error, "details", None)
    message = (details_of() if callable(details_of) else None) or str(error)
    trailers_of = getattr(error, "trailing_metadata", None)
    trailers = trailers_of() if callable(trailers_of) else ()
    try:
        violations = _violations(tuple(trailers or ()))
    except Exception:  # a malformed trailer must not hide the status itself
        violations = []
    cls = _BY_CODE.get(status, BookrecError)
    return cls(status, message, violations)
