"""Page tokens: opaque to clients, tied to the model version and the query."""

from __future__ import annotations

import base64
import hashlib
import json

from server.engine.errors import InvalidArgument


def _digest(query_key: str) -> str:
    return hashlib.sha256(query_key.encode()).hexdigest()[:16]


def make_token(model_version: str, query_key: str, offset: int) -> str:
    doc = {"v": model_version, "q": _digest(query_key), "o": offset}
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


def read_token(token: str, model_version: str, query_key: str) -> int:
    """The offset a token points at; 0 for an empty token."""
    if not token:
        return 0
    try:
        doc = json.loads(base64.urlsafe_b64decode(token.encode()))
        version, digest, offset = str(doc["v"]), str(doc["q"]), int(doc["o"])
    except (ValueError, KeyError, TypeError) as e:
        raise InvalidArgument("page_token is malformed; start again without one") from e
    if version != model_version:
        raise InvalidArgument(
            f"page_token belongs to model {version}, now serving {model_version}; "
            "start again without a page_token"
        )
    if digest != _digest(query_key) or offset < 0:
        raise InvalidArgument("page_token was made for another query; start again without one")
    return offset
