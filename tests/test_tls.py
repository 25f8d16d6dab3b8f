"""TLS and mutual TLS against the real server on loopback, with a throwaway CA.

The servers have no model (an empty artifact root): a call that gets past the
handshake and the key check answers UNAVAILABLE, one refused at the handshake
never reaches the server at all (UNAVAILABLE from the client's side too, so the
handshake cases check Health/Check, which answers whenever a call gets through).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bookrec.v1 import admin_pb2
from bookrec.v1.admin_pb2_grpc import AdminServiceStub
from clients.client import BookrecClient
from clients.connect import Connection
from tests.certs import Pki, make_pki
from tests.fault_table import record_fault
from tests.keyfile import bearer, make_keys, wait_answering
from tests.serverproc import ServerProcess, running_server


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def creds(pki: Pki, cert: Path | None = None, key: Path | None = None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )


def health_answers(target: str, credentials: grpc.ChannelCredentials | None) -> bool:
    channel = (
        grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
    )
    with channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)
        try:
            stub.Check(health_pb2.HealthCheckRequest(), timeout=3)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNAVAILABLE, e
            return False
        return True


@pytest.fixture(scope="module")
def tls_server(
    pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, str]]:
    """TLS (no client certs) and API keys."""
    work = tmp_path_factory.mktemp("tls")
    (work / "artifacts").mkdir()
    keys = make_keys(work / "keys.jsonl", {"reader": {"scopes": ["read"]}})
    args: tuple[str, ...] = ("--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key))
    args += ("--keys-file", str(work / "keys.jsonl"))
    with running_server(work / "artifacts", work, extra_args=args) as srv:
        wait_answering(srv.target, creds(pki))
        yield srv, keys["reader"]


@pytest.fixture(scope="module")
def mtls_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    work = tmp_path_factory.mktemp("mtls")
    (work / "artifacts").mkdir()
    args: tuple[str, ...] = ("--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key))
    args += ("--tls-client-ca", str(pki.ca))
    with running_server(work / "artifacts", work, extra_args=args) as srv:
        wait_answering(srv.target, creds(pki, pki.client_cert, pki.client_key))
        yield srv


def test_a_tls_client_works_and_a_plaintext_one_is_refused(
    pki: Pki, tls_server: tuple[ServerProcess, str]
) -> None:
    srv, key = tls_server
    assert health_answers(srv.target, creds(pki))
    assert not health_answers(srv.target, None)
    with grpc.secure_channel(srv.target, creds(pki)) as ch:
        status = AdminServiceStub(ch).GetStatus(admin_pb2.GetStatusRequest(), metadata=bearer(key))
        assert status.serving_version == ""  # answered, over TLS, with the key checked
    record_fault("plaintext client on a TLS port", "refused at the handshake (UNAVAILABLE)")


def test_a_client_that_does_not_trust_the_server_is_refused(
    pki: Pki, tls_server: tuple[ServerProcess, str]
) -> None:
    other_ca = grpc.ssl_channel_credentials(root_certificates=pki.stranger_cert.read_bytes())
    assert not health_answers(tls_server[0].target, other_ca)


def test_the_python_client_speaks_tls_with_a_key(
    pki: Pki, tls_server: tuple[ServerProcess, str]
) -> None:
    srv, key = tls_server
    for api_key, want in (
        (key, grpc.StatusCode.UNAVAILABLE),
        ("", grpc.StatusCode.UNAUTHENTICATED),
    ):
        conn = Connection(api_key=api_key, tls_ca=str(pki.ca))
        with (
            BookrecClient(srv.target, connection=conn) as client,
            pytest.raises(grpc.RpcError) as e,
        ):
            client.list_subjects()
        # With the key: past auth, and no model is loaded. Without: refused by auth.
        assert e.value.code() == want


def test_mutual_tls_needs_a_client_cert_from_the_ca(pki: Pki, mtls_server: ServerProcess) -> None:
    target = mtls_server.target
    assert health_answers(target, creds(pki, pki.client_cert, pki.client_key))
    assert not health_answers(target, creds(pki))
    assert not health_answers(target, creds(pki, pki.stranger_cert, pki.stranger_key))
    assert not health_answers(target, None)
    conn = Connection(
        tls_ca=str(pki.ca), tls_cert=str(pki.client_cert), tls_key=str(pki.client_key)
    )
    with BookrecClient(target, connection=conn) as client, pytest.raises(grpc.RpcError) as e:
        client.list_subjects()
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE  # through: no model loaded
    record_fault("mutual TLS: client without a certificate", "refused at the handshake")
    record_fault("mutual TLS: self-signed client certificate", "refused at the handshake")
