"""Page tokens: opaque to clients, tied to the model version and the query.

A token comes back from the client, so it is hostile input: anything but a token
this module made is INVALID_ARGUMENT with a short message. Before this was strict,
``{"o": Infinity}`` (OverflowError) or 100k nested ``[`` (RecursionError) escaped
as INTERNAL with a traceback on every call.

A model swap ends every list: a token made by another model version is
``StalePageToken`` (FAILED_PRECONDITION), never the new model's list continued at the
old offset, which would repeat and skip books. The client starts again without a
token. (Keeping the old order alive would mean keeping the old bundle mapped for as
long as any token might come back.)
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
from typing import NoReturn

from server.engine.errors import EngineError, InvalidArgument, echo

FIELD = "page_token"
# Far above any token made here (~100 characters), far below anything that costs to parse
# (it also bounds how deeply JSON can nest: ~380 levels, well inside the recursion limit).
MAX_TOKEN_CHARS = 512
# An offset past this is not a page anyone reached by paging (k <= 100 per page).
MAX_OFFSET = 10_000_000
_MALFORMED = "page_token is malformed; start again without one"


class StalePageToken(EngineError):
    """A well-formed token made by a model version no longer served: the list it
    paged through is gone (the handlers send FAILED_PRECONDITION)."""


def _digest(query_key: str) -> str:
    return hashlib.sha256(query_key.encode()).hexdigest()[:16]


def make_token(model_version: str, query_key: str, offset: int) -> str:
    """The token for ``offset`` of this query's list under this model version.

    The very text of ``json.dumps({"v": ..., "q": ..., "o": ...})`` (tests compare it
    with ``make_token_reference``), written directly: json.dumps of a small dict took
    most of the ~17 us this cost on every Recommend page that has a next one. The
    digest is hex and the offset an int, so only the version needs JSON escaping,
    done once per version."""
    doc = f'{{"v": {_json_string(model_version)}, "q": "{_digest(query_key)}", "o": {int(offset)}}}'
    return base64.urlsafe_b64encode(doc.encode()).decode()


def make_token_reference(model_version: str, query_key: str, offset: int) -> str:
    """The straightforward token (json.dumps of the fields): what ``make_token`` must equal."""
    doc = {"v": model_version, "q": _digest(query_key), "o": offset}
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


@functools.lru_cache(maxsize=64)
def _json_string(text: str) -> str:
    return json.dumps(text)


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"JSON constant {name} in a page token")


def _decode(token: str) -> tuple[str, str, int]:
    """(version, digest, offset) of a well-formed token; ValueError for anything else."""
    if len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise ValueError("not a token made by this server")
    raw = base64.urlsafe_b64decode(token.encode("ascii"))
    doc = json.loads(raw, parse_constant=_no_constants)
    if not isinstance(doc, dict) or set(doc) != {"v", "q", "o"}:
        raise ValueError("page token fields")
    version, digest, offset = doc["v"], doc["q"], doc["o"]
    if not isinstance(version, str) or not isinstance(digest, str):
        raise ValueError("page token field types")
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise ValueError("page token offset type")
    return version, digest, offset


def read_token(token: str, model_version: str, query_key: str) -> int:
    """The offset a token points at; 0 for an empty token."""
    if not token:
        return 0
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidArgument(
            f"page_token is longer than {MAX_TOKEN_CHARS} characters (not one this server "
            "made); start again without one",
            FIELD,
        )
    try:
        version, digest, offset = _decode(token)
    except (ValueError, binascii.Error, RecursionError) as e:
        # UnicodeDecodeError and json.JSONDecodeError are ValueErrors too.
        raise InvalidArgument(_MALFORMED, FIELD) from e
    if digest != _digest(query_key) or not 0 <= offset <= MAX_OFFSET:
        raise InvalidArgument(
            "page_token was made for another query; start again without one", FIELD
        )
    # Checked after the query: only a token this server made for this very query can say
    # the model changed (a forged or mistyped one stays INVALID_ARGUMENT).
    if version != model_version:
        raise StalePageToken(
            f"the model changed since this page token (made by {echo(version)}, now "
            f"serving {model_version}); the list changed: start again without a page_token",
            FIELD,
        )
    return offset
