"""The server interceptor that puts every unary call through admission (admission.py).

Health checks are exempt: a load balancer asking during overload must hear SERVING
from a worker that is busy but well, not be refused and take it out of rotation.
So are operator commands (AdminService): a pin or a rollback during overload is
what the operator needs most, and a pin holds its call for seconds while it loads.
Streaming calls (reflection) pass as they are. Put this interceptor after any that
authenticate, so a refused key never takes a place in the queue.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc

from server import metrics
from server.admission import Admission, Shed
from server.auth import RETRY_AFTER  # the rate limiter's hint: the same trailer
from server.config import ServerConfig
from server.intake import INTAKE

EXEMPT_PREFIXES = ("/grpc.health.v1.Health/", "/bookrec.v1.AdminService/")

Req = TypeVar("Req")
Resp = TypeVar("Resp")


class IntakeInterceptor(grpc.aio.ServerInterceptor):
    """Counts every call this process takes in (server/intake.py), so that the waits
    in core of the calls admission sees are right: the one installed where admission
    is off, and the base of the admission interceptor."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Req, Resp] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Req, Resp] | None:
        INTAKE.take()
        return await continuation(handler_call_details)


class AdmissionInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, admission: Admission, exempt: tuple[str, ...] = EXEMPT_PREFIXES) -> None:
        self.admission = admission
        self.exempt = exempt

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Req, Resp] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Req, Resp] | None:
        # Every call, exempt ones too: server/intake.py counts them all. Before the
        # continuation, so the wait ends where the call was taken in.
        waited = INTAKE.take()
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or handler.unary_unary is None or method.startswith(self.exempt):
            return handler
        # Not cached per method: an interceptor before this one may hand a different
        # handler per call (one that refuses a bad key, say).
        return grpc.unary_unary_rpc_method_handler(
            _admitted(self.admission, handler.unary_unary, method, waited),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _admitted(
    admission: Admission, behaviour: Callable[[Any, Any], Any], method: str, waited: float
) -> Callable[[Any, Any], Awaitable[Any]]:
    async def admitted(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            async with admission.turn(context.time_remaining, method, waited):
                reply = behaviour(request, context)
                return (await reply) if inspect.isawaitable(reply) else reply
        except Shed as e:
            reason = "deadline" if e.expired else "overloaded"
            metrics.SHED.labels(method=method.lstrip("/"), reason=reason).inc()
            code = (
                grpc.StatusCode.DEADLINE_EXCEEDED
                if e.expired
                else grpc.StatusCode.RESOURCE_EXHAUSTED
            )
            await context.abort(code, e.message, _retry_hint(e))

    return admitted


def _retry_hint(e: Shed) -> tuple[tuple[str, str], ...]:
    """``retry-after-ms`` for an overloaded refusal (at least 1 ms); none for an expired
    call, whose caller has already given up."""
    if e.expired:
        return ()
    return ((RETRY_AFTER, str(max(round(e.retry_after * 1000), 1))),)


def admission_interceptors(cfg: ServerConfig) -> list[grpc.aio.ServerInterceptor]:
    """The interceptor a worker's config asks for (none when admission is off)."""
    if cfg.max_concurrent_rpcs <= 0:
        return [IntakeInterceptor()]
    admission = Admission(
        slots=cfg.max_concurrent_rpcs,
        max_queue=cfg.max_queued_rpcs,
        max_wait=cfg.max_queue_wait_ms / 1000,
    )
    return [AdmissionInterceptor(admission)]


def core_options(cfg: ServerConfig) -> list[tuple[str, int]]:
    """gRPC core settings that keep a burst in admission's sight instead of dropping it.

    grpc.aio asks core for one call at a time, so a burst waits in core's list of calls
    the application has not taken yet. Past ``grpc.server.max_pending_requests`` (core's
    default 1,000) core drops new ones at random, past the hard limit (3,000) all of them:
    the call is cancelled (CANCELLED, no detail, no access line). So both limits are
    ``max_core_backlog``; and a connection may hold at most ``max_streams_per_connection``
    streams open (its client waits for a free one, within its deadline), so that bound
    holds while connections x streams stays within the backlog. Core's "overload
    protection" is off: it also counts streams already answered but not yet freed, and
    refuses new ones over the limit (REFUSED_STREAM, UNAVAILABLE at the client) that the
    client had rightly sent; without it core refuses only streams over HTTP/2's count."""
    return [
        ("grpc.server.max_pending_requests", cfg.max_core_backlog),
        ("grpc.server.max_pending_requests_hard_limit", cfg.max_core_backlog),
        ("grpc.max_concurrent_streams", cfg.max_streams_per_connection),
        ("grpc.http.overload_protection", 0),
    ]


def _admissions(interceptors: Sequence[grpc.aio.ServerInterceptor]) -> list[Admission]:
    return [i.admission for i in interceptors if isinstance(i, AdmissionInterceptor)]


async def take_in(interceptors: Sequence[grpc.aio.ServerInterceptor]) -> int:
    """Shutdown, before gRPC core stops: bring the calls core holds into admission's
    queue (``Admission.take_in``), so core has none to cancel. Calls taken in."""
    return sum([await a.take_in() for a in _admissions(interceptors)])


async def drain(interceptors: Sequence[grpc.aio.ServerInterceptor], grace: float) -> bool:
    """Shutdown, once core stops: wait up to ``grace`` s for the calls admission took
    in. True when they all finished (also when admission is off: nothing to wait for)."""
    done = True
    for admission in _admissions(interceptors):
        done = await admission.drain(grace) and done
    return done
