"""Server TLS credentials from the config: TLS with a certificate and key, mutual TLS
(client certificates required and checked against a CA) when a client CA is set."""

from __future__ import annotations

from pathlib import Path

import grpc

from server.config import ServerConfig


def _read(name: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise SystemExit(f"--{name.replace('_', '-')} {path}: {e.strerror}") from e


def server_credentials(cfg: ServerConfig) -> grpc.ServerCredentials | None:
    """None for plaintext. A half-configured TLS setup is an error, not plaintext:
    a server asked for TLS must not quietly listen without it."""
    if not (cfg.tls_cert or cfg.tls_key or cfg.tls_client_ca):
        return None
    if not (cfg.tls_cert and cfg.tls_key):
        raise SystemExit("TLS needs both --tls-cert and --tls-key (BOOKREC_TLS_CERT/_KEY)")
    pair = (_read("tls_key", cfg.tls_key), _read("tls_cert", cfg.tls_cert))
    client_ca = _read("tls_client_ca", cfg.tls_client_ca) if cfg.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def describe(cfg: ServerConfig) -> str:
    if not cfg.tls_cert:
        return "plaintext"
    return "mutual TLS" if cfg.tls_client_ca else "TLS"
