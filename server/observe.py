"""The outermost server interceptor: every unary call's metrics and access log line.

Installed before authentication and admission, so it sees every status they
answer (UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED) as well as the
handlers'. Each call gets a request id, the caller's ``x-request-id`` when it sent
a sane one, else a new one, echoed in the trailing metadata whatever the status
(also when an inner layer sets trailers of its own, so the context is wrapped).
Health checks are counted but not logged: a load balancer probing every second
would drown the log. Streaming calls (reflection) pass as they are.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import grpc

from bookrec import log as logsetup
from bookrec.log import kv
from server import metrics

log = logging.getLogger("server.access")

REQUEST_ID = "x-request-id"
QUIET_PREFIXES = ("/grpc.health.v1.Health/",)
# A caller's id is logged as sent only when it is short and plain; otherwise replaced.
_SANE_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Metadata = Sequence[tuple[str, str | bytes]]


def request_id(metadata: Iterable[tuple[str, Any]] | None) -> str:
    """The caller's ``x-request-id`` if it is one we may log and echo, else a new one."""
    for key, value in metadata or ():
        if key == REQUEST_ID and isinstance(value, str) and _SANE_ID.fullmatch(value):
            return value
    # 32 random hex digits, as uuid4().hex was, at a fifth of its cost (no UUID object).
    return os.urandom(16).hex()


def access_line(fields: dict[str, Any], created: float) -> str:
    """The JSON line bookrec/log.py's formatter writes for ``log.info("rpc", extra=kv(
    **fields))`` logged at ``created`` (tests compare the two), without a LogRecord."""
    msecs = int((created - int(created)) * 1000)
    return logsetup.json_line(created, msecs, "info", log.name, "rpc", fields)


def _direct_handler() -> logging.StreamHandler[Any] | None:
    """The handler to write the access line to directly: only when logging is as
    bookrec.log.configure leaves it (one StreamHandler on the root with its JSON
    formatter, no filters or handlers of its own on the way, INFO on). Otherwise
    (pytest's caplog, an operator's own handler) None: the line goes through logging."""
    if not log.isEnabledFor(logging.INFO):
        return None
    node: Any = log
    while node.parent is not None:  # server.access, server: propagate, no handlers
        if node.handlers or node.filters or not node.propagate:
            return None
        node = node.parent
    handlers = node.handlers
    if len(handlers) != 1 or node.filters:
        return None
    handler = handlers[0]
    if (
        type(handler) is not logging.StreamHandler
        or type(handler.formatter) is not logsetup._JsonFormatter
        or handler.filters
        or handler.level > logging.INFO
    ):
        return None
    return handler


def access_log(fields: dict[str, Any]) -> None:
    """One access line: written straight to the JSON handler's stream when logging is
    set up as the server sets it up, else through ``log.info``. A LogRecord, its
    handler chain and formatter took ~11 of the ~29 us the observe wrapper cost a call."""
    handler = _direct_handler()
    if handler is None:
        if log.isEnabledFor(logging.INFO):
            log.info("rpc", extra=kv(**fields))
        return
    line = access_line(fields, time.time())
    with handler.lock:  # type: ignore[union-attr]  # created with the handler
        try:
            handler.stream.write(line + handler.terminator)
            handler.stream.flush()
        except Exception:  # as StreamHandler.emit: a broken stderr must not fail the call
            log.info("rpc", extra=kv(**fields))


def lean_log_records() -> None:
    """Skip what every LogRecord gathers and the JSON lines never show (bookrec/log.py
    writes time, level, logger, event, fields, exc): the caller's file and line (a walk
    up the stack), the thread, the process and its multiprocessing name. The access log
    writes a record per call: this takes ~4 of its ~15 us. Process-wide; the server's."""
    logging._srcfile = None  # documented in logging's source as the way to skip findCaller
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


class _Tagged:
    """The call's context, but every trailer set through it carries the request id."""

    def __init__(self, context: Any, trailer: tuple[str, str]) -> None:
        self._context = context
        self._trailer = trailer
        self._trailers: tuple[tuple[str, str | bytes], ...] = (trailer,)
        context.set_trailing_metadata(self._trailers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def set_trailing_metadata(self, trailing_metadata: Metadata) -> None:
        self._trailers = (*trailing_metadata, self._trailer)
        self._context.set_trailing_metadata(self._trailers)

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Metadata = ()
    ) -> Any:
        if trailing_metadata:
            self._trailers = (*trailing_metadata, self._trailer)
        return await self._context.abort(code, details, self._trailers)


class ObserveInterceptor(grpc.aio.ServerInterceptor):
    """``version`` names the model serving (None before one is loaded)."""

    def __init__(self, version: Callable[[], str | None]) -> None:
        self.version = version

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Req, Resp] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Req, Resp] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            self._observed(handler.unary_unary, handler_call_details.method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _observed(
        self, behaviour: Callable[[Any, Any], Any], method: str
    ) -> Callable[[Any, Any], Awaitable[Any]]:
        name = method.lstrip("/")
        quiet = method.startswith(QUIET_PREFIXES)

        async def observed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            start = time.perf_counter()
            rid = request_id(context.invocation_metadata())
            version = self.version()
            code = grpc.StatusCode.UNKNOWN  # an exception other than abort's
            try:
                reply = behaviour(request, _Tagged(context, (REQUEST_ID, rid)))
                reply = (await reply) if inspect.isawaitable(reply) else reply
                code = context.code() or grpc.StatusCode.OK
                return reply
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            finally:
                seconds = time.perf_counter() - start
                handled, duration = metrics.rpc_children(name, code.name)
                handled.inc()
                duration.observe(seconds)
                if not quiet:
                    access_log(
                        {
                            "request_id": rid,
                            "method": name,
                            "code": code.name,
                            "duration_ms": round(seconds * 1000, 3),
                            "model_version": version,
                        }
                    )

        return observed
