"""Requests whose bytes are not the method's message: INVALID_ARGUMENT, not UNKNOWN.

grpc.aio decodes a request after the interceptors chose its handler and before
the handler runs; a DecodeError there escapes to grpc's catch-all, which answers
UNKNOWN ("Unexpected <class 'google.protobuf.message.DecodeError'>") and logs a
traceback, once per such call. This interceptor gives each unary handler a
decoder that returns ``UNDECODABLE`` instead of raising, and a behaviour that
answers that marker with INVALID_ARGUMENT before any inner layer sees it (the
authorisation policy reads fields of the request). Put it right after the access
log's interceptor, so the call is logged as one line like any refused call.
Streaming calls (reflection) pass as they are.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import grpc
from google.protobuf.message import DecodeError

Req = TypeVar("Req")
Resp = TypeVar("Resp")


class _Undecodable:
    """The request of a call whose bytes did not decode."""

    __slots__ = ()


UNDECODABLE: Final = _Undecodable()


Decode = Callable[[bytes], Any]
# One tolerant decoder per message type's decoder, made once: a call's handler is
# made anew for each call, its decoder is the generated ``FromString`` every time.
_TOLERANT: dict[Decode, Decode] = {}


def _tolerant(decode: Decode | None) -> Decode | None:
    if decode is None:  # raw bytes: nothing to decode
        return None
    tolerant = _TOLERANT.get(decode)
    if tolerant is None:

        def tolerant(raw: bytes) -> Any:
            try:
                return decode(raw)
            except DecodeError:
                return UNDECODABLE

        _TOLERANT[decode] = tolerant
    return tolerant


def _checked(
    behaviour: Callable[[Any, Any], Any], method: str
) -> Callable[[Any, Any], Awaitable[Any]]:
    async def checked(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if request is UNDECODABLE:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request is not a valid {method.lstrip('/')} request message: send the "
                f"message its proto defines, serialized",
            )
        reply = behaviour(request, context)
        return (await reply) if inspect.isawaitable(reply) else reply

    return checked


class DecodeInterceptor(grpc.aio.ServerInterceptor):
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
            _checked(handler.unary_unary, handler_call_details.method),
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
