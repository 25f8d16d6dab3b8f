"""What each RPC asks of its caller: the scopes that let it in, the user a write
is bound to, and the parts of a reply only an admin may see.

Deny by default: a method not named here (a service added later) needs ``admin``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bookrec.v1 import admin_pb2, catalog_pb2, feedback_pb2, recommender_pb2

# Open to anyone, key or not: a load balancer's probe and tooling's schema lookup.
EXEMPT_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


def _service(module: Any, name: str) -> str:
    return f"/{module.DESCRIPTOR.services_by_name[name].full_name}/"


_RECOMMENDER = _service(recommender_pb2, "RecommenderService")
_CATALOG = _service(catalog_pb2, "CatalogService")
_FEEDBACK = _service(feedback_pb2, "FeedbackService")
_ADMIN = _service(admin_pb2, "AdminService")
GET_STATUS = _ADMIN + "GetStatus"
RATE_BOOK = _FEEDBACK + "RateBook"

# Any one of these scopes lets a call in.
_BY_SERVICE = {
    _RECOMMENDER: frozenset({"read"}),
    _CATALOG: frozenset({"read"}),
    _FEEDBACK: frozenset({"write"}),
    _ADMIN: frozenset({"admin"}),
}
_BY_METHOD = {GET_STATUS: frozenset({"read", "admin"})}
ADMIN_ONLY = frozenset({"admin"})


def exempt(method: str) -> bool:
    return method.startswith(EXEMPT_PREFIXES)


def required_scopes(method: str) -> frozenset[str]:
    if method in _BY_METHOD:
        return _BY_METHOD[method]
    service = method[: method.rfind("/") + 1]
    return _BY_SERVICE.get(service, ADMIN_ONLY)


# The user id a call acts for, where a write key's ``users`` binding applies.
_ACTS_FOR: dict[str, Callable[[Any], str]] = {
    RATE_BOOK: lambda request: str(request.user_id),
}


def acts_for(method: str, request: Any) -> str | None:
    get = _ACTS_FOR.get(method)
    return None if get is None else get(request)


def redact_status(reply: admin_pb2.GetStatusResponse) -> admin_pb2.GetStatusResponse:
    """GetStatus for a caller without ``admin``: versions and states, but no worker
    PID, no load errors (they name artifact paths) and no decision text."""
    out = admin_pb2.GetStatusResponse()
    out.CopyFrom(reply)
    out.ClearField("worker_pid")
    out.ClearField("decision")
    for v in out.versions:
        v.ClearField("error")
    for r in out.fleet:
        r.ClearField("worker_pid")
    return out


_REDACT: dict[str, Callable[[Any], Any]] = {GET_STATUS: redact_status}


def redact(method: str, reply: Any) -> Any:
    """The reply as a caller without ``admin`` may see it."""
    fn = _REDACT.get(method)
    return reply if fn is None else fn(reply)
