"""The web port's HTTP connections: a request aiohttp cannot parse is refused quietly.

aiohttp answers a request it cannot parse (a header or line over its limit, bad
framing, a bad method) with 400 and a body quoting the first 100 bytes of the
offending line, and logs it as an error with a traceback. That line may be an
``authorization`` header, so its API key would reach the log and the client (a
proxy's error page, say). Here the reply is a fixed text naming the kind of fault
and the log one warning line naming the client and the error's class, never the
bytes. Anything else (a bug in a handler: 500) is aiohttp's as before.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from bookrec.log import kv

log = logging.getLogger("server.web")


def reason(exc: HttpProcessingError) -> str:
    """What was wrong, in words that quote nothing the client sent."""
    if isinstance(exc, LineTooLong):
        return f"a request line or header is longer than this server accepts ({exc.args[1]} bytes)"
    return "the request is not valid HTTP/1.1"


class QuietProtocol(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        why = reason(exc)
        log.warning(
            "bad http request refused",
            extra=kv(remote=request.remote, status=status, error=type(exc).__name__, why=why),
        )
        if request.writer.output_size > 0:  # as aiohttp: a reply already began
            raise ConnectionError("a reply was already sent; closing the connection")
        response = web.Response(status=status, text=f"{status} Bad Request: {why}\n")
        response.force_close()
        return response


class QuietServer(web.Server):
    """aiohttp's server, making a QuietProtocol per connection (aiohttp has no setting
    for the class; ``use`` puts a runner's server on it)."""

    def __call__(self) -> RequestHandler:
        return QuietProtocol(self, loop=self._loop, **self._kwargs)

    @staticmethod
    def use(runner: web.BaseRunner) -> None:
        """After ``runner.setup()``, before any site starts."""
        server = runner.server
        assert server is not None, "call after runner.setup()"
        server.__class__ = QuietServer
