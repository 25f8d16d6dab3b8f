"""Engine errors; the handlers map each to one gRPC status code.

Every message is bounded (``MESSAGE_LIMIT`` ASCII characters) at construction: a
message travels in the call's trailers, and a request that made it echo a 1 MB
field overflowed them (the client saw RESOURCE_EXHAUSTED or hung). Values taken
from a request go through ``echo``, which clips them with an ellipsis.
"""

from __future__ import annotations

# Characters a whole message may have; gRPC's trailers hold 8 KiB by default and also
# carry the structured details (the message again, per field violation).
MESSAGE_LIMIT = 512
# Characters of one request value an error message may quote.
ECHO_LIMIT = 64
ELLIPSIS = "..."


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, the cut marked with an ellipsis."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(ELLIPSIS))] + ELLIPSIS


def echo(value: object, limit: int = ECHO_LIMIT) -> str:
    """A request value as an error message may quote it: ASCII repr, clipped."""
    text = value if isinstance(value, str) else str(value)
    # Clip before repr: repr of a 1 MB string would cost as much as the string.
    return ascii(clip(text, limit))


def bounded(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """``message`` made safe for trailers: ASCII (non-ASCII escaped) and at most ``limit``."""
    head = message[: limit * 2]  # escaping only lengthens; never scan a huge message whole
    return clip(head.encode("ascii", "backslashreplace").decode("ascii"), limit)


class EngineError(Exception):
    """Base class: a request the engine cannot answer.

    ``field`` names the request field at fault (a path like ``filters.min_year`` or
    ``favourite_subjects[2]``) when there is one; the handlers send it to the client
    as a structured ``google.rpc.BadRequest`` field violation."""

    def __init__(self, message: str = "", field: str = "") -> None:
        super().__init__(bounded(message))
        self.field = bounded(field, ECHO_LIMIT * 2)

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidArgument(EngineError):
    """A field is out of range or malformed."""


class NotFound(EngineError):
    """An id the served model does not know."""


class NoModel(EngineError):
    """No bundle is loaded yet."""
