"""The one server interceptor that authenticates every call (but health and
reflection), checks its scope, its user binding and its key's rate limit, and
hides admin-only reply fields from other callers.

Missing or unknown key: UNAUTHENTICATED. A key without the scope, or a write key
rating for a user it is not bound to: PERMISSION_DENIED. Over the key's rate:
RESOURCE_EXHAUSTED with ``retry-after-ms`` in the trailers. Messages never echo
what the caller sent, and no key is ever logged.

With no key configured the server is open (read and write calls need no key,
and a warning says so at startup); AdminService's changes still need an admin
key, and are off when there is none. Install it before admission control, so
a refused call never takes a place in the queue.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc

from server import policy
from server.config import ServerConfig
from server.keys import BadKeys, KeyEntry, KeyStore
from server.ratelimit import RateLimiter

log = logging.getLogger("server.auth")

Req = TypeVar("Req")
Resp = TypeVar("Resp")

# Scopes an anonymous caller has on an open server.
OPEN_SCOPES = frozenset({"read", "write"})
RETRY_AFTER = "retry-after-ms"


@dataclass(frozen=True)
class Caller:
    """Who is calling, as the handlers may ask (``current_caller()``)."""

    key_id: str  # "" for an anonymous caller of an open server
    scopes: frozenset[str]
    users: frozenset[str] = frozenset()
    # Whether admin-only reply fields are shown: admin keys, and anyone when open.
    sees_detail: bool = False
    rate: float = 0.0
    burst: float = 0.0

    @property
    def label(self) -> str:
        return f"key {self.key_id}" if self.key_id else "anonymous"


ANONYMOUS = Caller("", OPEN_SCOPES, sees_detail=True)
_CALLER: ContextVar[Caller | None] = ContextVar("bookrec_caller", default=None)


def current_caller() -> Caller | None:
    """The caller of the call being handled (None outside an authenticated call)."""
    return _CALLER.get()


class Refused(Exception):
    def __init__(
        self, code: grpc.StatusCode, message: str, trailers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.trailers = code, message, trailers


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        keys: KeyStore,
        rate: float = 0.0,
        burst: float = 0.0,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.keys = keys
        self.rate, self.burst = rate, burst
        self.limiter = limiter or RateLimiter()

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Req, Resp] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Req, Resp] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or policy.exempt(method):
            return handler
        if handler.unary_unary is None:
            # Every bookrec RPC is unary; a streaming one would need its own check here,
            # so until then it is not served rather than served unchecked.
            return None
        return grpc.unary_unary_rpc_method_handler(
            self._checked(handler.unary_unary, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _checked(
        self, behaviour: Callable[[Any, Any], Any], method: str
    ) -> Callable[[Any, Any], Awaitable[Any]]:
        async def checked(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                caller = self.authorise(method, context.invocation_metadata() or (), request)
            except Refused as e:
                await context.abort(e.code, e.message, e.trailers)
                raise  # unreachable: abort raises
            token = _CALLER.set(caller)
            try:
                reply = behaviour(request, context)
                reply = (await reply) if inspect.isawaitable(reply) else reply
            finally:
                _CALLER.reset(token)
            return reply if caller.sees_detail else policy.redact(method, reply)

        return checked

    def authorise(self, method: str, metadata: Any, request: Any) -> Caller:
        """The caller, or Refused with the status to answer."""
        needed = policy.required_scopes(method)
        caller = self._identify(metadata, needed)
        if not needed & caller.scopes:
            raise Refused(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{caller.label} lacks the scope this call needs ({' or '.join(sorted(needed))})",
            )
        user = policy.acts_for(method, request)
        if user is not None and caller.users and user not in caller.users:
            raise Refused(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{caller.label} may not act for this user_id",
            )
        wait = self.limiter.check(caller.key_id, caller.rate, caller.burst) if caller.key_id else 0
        if wait > 0:
            ms = max(1, math.ceil(wait * 1000))
            raise Refused(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"rate limit of {caller.label} ({caller.rate:g} calls/s) reached; "
                f"retry after {ms} ms",
                ((RETRY_AFTER, str(ms)),),
            )
        return caller

    def _identify(self, metadata: Any, needed: frozenset[str]) -> Caller:
        given = [v for k, v in metadata if k == "authorization"]
        if len(given) > 1:
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, "more than one authorization header")
        if given:
            value = given[0].decode(errors="replace") if isinstance(given[0], bytes) else given[0]
            scheme, _, key = str(value).partition(" ")
            if scheme.lower() != "bearer" or not key.strip():
                raise Refused(
                    grpc.StatusCode.UNAUTHENTICATED, "authorization must be 'Bearer <API key>'"
                )
            entry = self.keys.identify(key.strip())
            if entry is None:
                raise Refused(grpc.StatusCode.UNAUTHENTICATED, "unknown or revoked API key")
            return self._caller(entry)
        if self.keys.enforced:
            raise Refused(
                grpc.StatusCode.UNAUTHENTICATED,
                "this call needs metadata 'authorization: Bearer <API key>'",
            )
        if needed & OPEN_SCOPES:
            return ANONYMOUS
        if self.keys.has_admin:
            raise Refused(
                grpc.StatusCode.UNAUTHENTICATED,
                "admin calls need metadata 'authorization: Bearer <admin key>'",
            )
        raise Refused(
            grpc.StatusCode.PERMISSION_DENIED,
            "admin commands are off: start the server with a key that has the admin scope "
            "(python -m server keys create --scopes admin)",
        )

    def _caller(self, entry: KeyEntry) -> Caller:
        """On an open server a key only adds to what anyone may do."""
        is_open = not self.keys.enforced
        return Caller(
            key_id=entry.id,
            scopes=entry.scopes | OPEN_SCOPES if is_open else entry.scopes,
            users=entry.users,
            sees_detail=is_open or "admin" in entry.scopes,
            rate=self.rate if entry.rate is None else entry.rate,
            burst=self.burst if entry.burst is None else entry.burst,
        )


def key_store(cfg: ServerConfig) -> KeyStore:
    try:
        return KeyStore.build(
            Path(cfg.keys_file) if cfg.keys_file else None, cfg.api_keys, cfg.admin_token
        )
    except (BadKeys, OSError) as e:
        raise SystemExit(f"API keys: {e}") from e


def auth_interceptors(cfg: ServerConfig) -> list[grpc.aio.ServerInterceptor]:
    """The auth interceptor for this config, after a loud warning when it leaves the
    server open."""
    keys = key_store(cfg)
    if not keys.enforced:
        log.warning(
            "AUTHENTICATION IS OFF: no API key is configured, so anyone who can reach "
            "this port can read and write. Create a key (python -m server keys create "
            "--keys-file data/keys.jsonl --scopes read,write,admin) and start with "
            "--keys-file data/keys.jsonl."
        )
    else:
        log.info("authentication on", extra={"fields": {"keys": len(keys.entries())}})
    return [AuthInterceptor(keys, cfg.rate_limit, cfg.rate_burst)]
