"""How a client reaches a server: the API key it sends and the TLS it speaks.

``Connection.from_env()`` reads ``BOOKREC_API_KEY``, ``BOOKREC_TLS_CA``,
``BOOKREC_TLS_CERT`` and ``BOOKREC_TLS_KEY``; explicit arguments win. The key goes
out as ``authorization: Bearer <key>`` on every call.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc

Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Connection:
    api_key: str = ""
    # TLS: on with ``tls`` (system roots) or any of the files below.
    tls: bool = False
    tls_ca: str = ""  # PEM of the CA that signed the server's certificate
    tls_cert: str = ""  # client certificate (mutual TLS)
    tls_key: str = ""  # its private key
    # Name to check the server's certificate against, when it differs from the target.
    server_name: str = ""

    @staticmethod
    def from_env(**overrides: Any) -> Connection:
        """The environment's settings; keyword arguments that are not None win."""
        env = os.environ
        base = Connection(
            api_key=env.get("BOOKREC_API_KEY", ""),
            tls_ca=env.get("BOOKREC_TLS_CA", ""),
            tls_cert=env.get("BOOKREC_TLS_CERT", ""),
            tls_key=env.get("BOOKREC_TLS_KEY", ""),
        )
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def secure(self) -> bool:
        return bool(self.tls or self.tls_ca or self.tls_cert)

    def metadata(self) -> Metadata:
        return (("authorization", f"Bearer {self.api_key}"),) if self.api_key else ()

    def credentials(self) -> grpc.ChannelCredentials:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("a client certificate needs its key (tls_cert and tls_key)")

        def read(path: str) -> bytes | None:
            return Path(path).read_bytes() if path else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.tls_ca),
            private_key=read(self.tls_key),
            certificate_chain=read(self.tls_cert),
        )

    def options(self, extra: Sequence[tuple[str, Any]] = ()) -> list[tuple[str, Any]]:
        """Channel arguments: the TLS name override, if any, then ``extra``."""
        name = [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []
        return [*name, *extra]

    def channel(self, target: str, extra: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
        if self.secure:
            return grpc.secure_channel(target, self.credentials(), self.options(extra))
        return grpc.insecure_channel(target, self.options(extra))

    def aio_channel(self, target: str, extra: Sequence[tuple[str, Any]] = ()) -> grpc.aio.Channel:
        if self.secure:
            return grpc.aio.secure_channel(target, self.credentials(), self.options(extra))
        return grpc.aio.insecure_channel(target, self.options(extra))
