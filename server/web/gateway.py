"""The web page's gateway: serves the built page and relays its gRPC-Web calls.

Each ``POST /bookrec.v1.<Service>/<Method>`` body is unwrapped to the raw request
message and sent, as bytes, through a grpc.aio channel to this server's own gRPC
port, with the caller's ``authorization`` (and ``x-request-id``) as metadata; the
reply and its status come back as gRPC-Web frames. So every interceptor (access
log, metrics, auth, rate limit, admission) and every handler's validation applies
to a web call exactly as to any other: there is one path, not a second API.
Only the four bookrec services are reachable (not reflection or health).
docs/web.md has the reasons and the measured cost.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from aiohttp import web

from bookrec.log import kv
from bookrec.v1 import admin_pb2, catalog_pb2, feedback_pb2, recommender_pb2
from server.config import ServerConfig
from server.web import grpcweb
from server.web.protocol import QuietServer

log = logging.getLogger("server.web")

DIST = Path(__file__).resolve().parents[2] / "clients" / "web" / "dist"
# A web call's deadline when the page sends none (and the most it may ask for).
MAX_TIMEOUT_S = 30.0
MAX_BODY = 4 * 1024 * 1024  # gRPC's default largest message
_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'"


def _methods() -> frozenset[str]:
    files = (recommender_pb2, catalog_pb2, feedback_pb2, admin_pb2)
    return frozenset(
        f"/{service.full_name}/{method.name}"
        for module in files
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    )


METHODS = _methods()


def web_port_taken(host: str, port: int, why: object) -> str:
    """The one line a server that cannot bind its web port prints, with the fix."""
    return (
        f"server: cannot listen on {host}:{port} for the web page ({why}): another process "
        f"holds the port; stop it, or choose another with --web-port N or BOOKREC_WEB_PORT=N"
    )


def _grpc_target(host: str, port: int) -> str:
    """Where the gateway reaches this server: loopback when it listens on every address."""
    if host in ("", "0.0.0.0"):
        return f"127.0.0.1:{port}"
    if host == "::":
        return f"[::1]:{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Relay:
    """The POST handler: one gRPC-Web unary call in, the same call over gRPC out."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        ctype = request.content_type
        if ctype not in grpcweb.CONTENT_TYPES:
            return web.Response(
                status=415,
                text=f"expected {grpcweb.CONTENT_TYPES[1]} (binary gRPC-Web), got {ctype}",
            )
        path = request.path
        if path not in METHODS:
            return _reply(None, grpc.StatusCode.UNIMPLEMENTED, f"no method {path} on the web")
        try:
            message = grpcweb.unary_request(await request.read())
        except grpcweb.BadFrame as e:
            return _reply(None, grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except ConnectionError:  # aiohttp's "Connection lost": nobody left to answer
            log.warning("web client left mid-request", extra=kv(remote=request.remote, path=path))
            return web.Response(status=400)
        metadata = tuple(
            (name, request.headers[name]) for name in grpcweb.FORWARDED if name in request.headers
        )
        timeout = grpcweb.timeout_seconds(request.headers.get("grpc-timeout"), MAX_TIMEOUT_S)
        # No serializers: the request and reply pass through as bytes.
        relay: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = self.channel.unary_unary(path)
        call = relay(message, metadata=metadata, timeout=timeout)
        try:
            reply: bytes = await call
        except grpc.aio.AioRpcError as e:
            trailers = tuple(e.trailing_metadata() or ())
            return _reply(None, e.code(), e.details() or "", trailers)
        trailers = tuple(await call.trailing_metadata() or ())
        return _reply(reply, grpc.StatusCode.OK, "", trailers)


def _reply(
    message: bytes | None,
    code: grpc.StatusCode,
    details: str,
    trailers: tuple[tuple[str, str | bytes], ...] = (),
) -> web.Response:
    body = b"" if message is None else grpcweb.frame(grpcweb.DATA, message)
    body += grpcweb.trailer_frame(code.value[0], details, trailers)
    return web.Response(
        body=body,
        headers={"content-type": grpcweb.CONTENT_TYPES[1], "cache-control": "no-store"},
    )


async def _index(_request: web.Request) -> web.StreamResponse:
    page = DIST / "index.html"
    if not page.is_file():
        return web.Response(
            status=503,
            text="The web page is not built: run `make web` (or `npm run build` in clients/web).",
        )
    return web.FileResponse(page, headers={"cache-control": "no-cache"})


@web.middleware
async def _security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("content-security-policy", _CSP)
    response.headers.setdefault("x-content-type-options", "nosniff")
    response.headers.setdefault("referrer-policy", "no-referrer")
    return response


def make_app(channel: grpc.aio.Channel, dist: Path = DIST) -> web.Application:
    """The page at ``/``, its assets, and the relay for every bookrec method."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[_security_headers])
    app.router.add_get("/", _index)
    app.router.add_post("/{service}/{method}", Relay(channel))
    if (dist / "assets").is_dir():
        app.router.add_static("/assets", dist / "assets")
    return app


@dataclass
class Gateway:
    """A running gateway; ``close`` lets calls in flight finish within ``grace``."""

    runner: web.AppRunner
    channel: grpc.aio.Channel
    url: str

    async def close(self) -> None:
        await self.runner.cleanup()
        await self.channel.close()


async def start_gateway(cfg: ServerConfig, grpc_port: int, share: bool = True) -> Gateway:
    """Listen on ``cfg.web_port`` and relay to ``grpc_port`` on this host. ``share``:
    with SO_REUSEPORT, so every worker of a multi-process server serves it too (their
    supervisor claimed the port: server/ports.py); else alone."""
    if cfg.tls_cert:
        raise SystemExit(
            "server: --web-port is not available with TLS yet; serve the page from a "
            "server without --tls-cert, or put a TLS proxy in front of the web port"
        )
    channel = grpc.aio.insecure_channel(_grpc_target(cfg.host, grpc_port))
    runner = web.AppRunner(make_app(channel), access_log=None, shutdown_timeout=cfg.grace_seconds)
    await runner.setup()
    QuietServer.use(runner)  # malformed HTTP: one warning line, never echoed
    site = web.TCPSite(runner, cfg.host, cfg.web_port, reuse_port=share)
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        await channel.close()
        raise SystemExit(web_port_taken(cfg.host, cfg.web_port, e.strerror or e)) from None
    port = runner.addresses[0][1] if runner.addresses else cfg.web_port
    if not (DIST / "index.html").is_file():
        log.warning("web page not built", extra=kv(dist=str(DIST), fix="make web"))
    url = f"http://{cfg.host}:{port}/"
    log.info("web page", extra=kv(url=url, grpc_port=grpc_port))
    return Gateway(runner, channel, url)
