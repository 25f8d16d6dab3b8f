"""Engine errors; the handlers map each to one gRPC status code."""

from __future__ import annotations


class EngineError(Exception):
    """Base class: a request the engine cannot answer."""


class InvalidArgument(EngineError):
    """A field is out of range or malformed."""


class NotFound(EngineError):
    """An id the served model does not know."""


class NoModel(EngineError):
    """No bundle is loaded yet."""
