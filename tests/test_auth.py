"""API keys against the real server on loopback: who gets in, with which scope, for
which user, what GetStatus shows them, revocation, and the open (no key) mode."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from bookrec.artifact import load_strings, read_manifest
from bookrec.v1 import admin_pb2, catalog_pb2, feedback_pb2, recommender_pb2
from bookrec.v1.admin_pb2_grpc import AdminServiceStub
from bookrec.v1.catalog_pb2_grpc import CatalogServiceStub
from bookrec.v1.feedback_pb2_grpc import FeedbackServiceStub
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub
from clients.client import BookrecClient
from server.keys import BadKeys, KeyStore
from tests.fault_table import record_fault
from tests.keyfile import bearer, make_keys, wait_answering
from tests.serverproc import ROOT, ServerProcess, ready_server, running_server

BOUND_USER = "reader-7"
KEYS = {
    "reader": {"scopes": ["read"]},
    "writer": {"scopes": ["write"], "users": [BOUND_USER]},
    "admin": {"scopes": ["admin"]},
    "all": {"scopes": ["read", "write", "admin"]},
    "doomed": {"scopes": ["read"]},
}


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("keys") / "keys.jsonl"
    return path, make_keys(path, KEYS)


@pytest.fixture(scope="module")
def keys(keys_file: tuple[Path, dict[str, str]]) -> dict[str, str]:
    return keys_file[1]


@pytest.fixture(scope="module")
def server(
    tiny_artifact: Path,
    tmp_path_factory: pytest.TempPathFactory,
    keys_file: tuple[Path, dict[str, str]],
) -> Iterator[ServerProcess]:
    work = tmp_path_factory.mktemp("auth")
    with ready_server(
        tiny_artifact.parent, work, extra_args=("--keys-file", str(keys_file[0]))
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def book_id(tiny_artifact: Path) -> str:
    return str(load_strings(tiny_artifact, read_manifest(tiny_artifact), "book_ids")[0])


def run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)


def code_of(call: Callable[..., Any], *args: Any, **kwargs: Any) -> grpc.StatusCode:
    try:
        call(*args, **kwargs)
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def test_health_and_reflection_need_no_key(channel: grpc.Channel) -> None:
    health: Any = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest()).status == (
        health_pb2.HealthCheckResponse.SERVING
    )
    reflect: Any = reflection_pb2_grpc.ServerReflectionStub(channel)
    ask = reflection_pb2.ServerReflectionRequest(list_services="")
    replies = list(reflect.ServerReflectionInfo(iter([ask])))
    names = {s.name for s in replies[0].list_services_response.service}
    assert "bookrec.v1.RecommenderService" in names


def test_missing_or_wrong_key_is_unauthenticated(channel: grpc.Channel, book_id: str) -> None:
    rec = RecommenderServiceStub(channel)
    cat = CatalogServiceStub(channel)
    fb = FeedbackServiceStub(channel)
    admin = AdminServiceStub(channel)
    calls: dict[str, Callable[[Any], Any]] = {
        "Recommend": lambda md: rec.Recommend(
            recommender_pb2.RecommendRequest(user_id="u"), metadata=md
        ),
        "GetBook": lambda md: cat.GetBook(catalog_pb2.GetBookRequest(book_id=book_id), metadata=md),
        "RateBook": lambda md: fb.RateBook(
            feedback_pb2.RateBookRequest(user_id=BOUND_USER, book_id=book_id, rating=5),
            metadata=md,
        ),
        "GetStatus": lambda md: admin.GetStatus(admin_pb2.GetStatusRequest(), metadata=md),
        "Rollback": lambda md: admin.Rollback(admin_pb2.RollbackRequest(), metadata=md),
    }
    bad: dict[str, tuple[tuple[str, str], ...]] = {
        "no authorization metadata": (),
        "an unknown key": bearer("bkr_not-a-key"),
        "an empty bearer": (("authorization", "Bearer "),),
        "a non-bearer scheme": (("authorization", "Basic dXNlcjpwYXNz"),),
        "two authorization headers": (("authorization", "Bearer x"), ("authorization", "Bearer y")),
    }
    for what, md in bad.items():
        for name, call in calls.items():
            assert code_of(call, md) == grpc.StatusCode.UNAUTHENTICATED, (name, what)
        record_fault(f"{what} on every authenticated RPC", "UNAUTHENTICATED; nothing computed")


def test_each_scope_opens_only_its_services(
    channel: grpc.Channel, keys: dict[str, str], book_id: str
) -> None:
    rec = RecommenderServiceStub(channel)
    cat = CatalogServiceStub(channel)
    fb = FeedbackServiceStub(channel)
    admin = AdminServiceStub(channel)
    read, write, adm = bearer(keys["reader"]), bearer(keys["writer"]), bearer(keys["admin"])
    cold = recommender_pb2.ColdStartRequest()
    rate = feedback_pb2.RateBookRequest(user_id=BOUND_USER, book_id=book_id, rating=5)

    assert rec.ColdStart(cold, metadata=read).items
    assert cat.GetBook(catalog_pb2.GetBookRequest(book_id=book_id), metadata=read).book.book_id
    assert fb.RateBook(rate, metadata=write).accepted
    assert admin.GetStatus(admin_pb2.GetStatusRequest(), metadata=adm).serving_version

    denied = grpc.StatusCode.PERMISSION_DENIED
    assert code_of(lambda: fb.RateBook(rate, metadata=read)) == denied
    assert code_of(lambda: rec.ColdStart(cold, metadata=write)) == denied
    assert code_of(lambda: rec.ColdStart(cold, metadata=adm)) == denied
    assert code_of(lambda: admin.GetStatus(admin_pb2.GetStatusRequest(), metadata=write)) == denied
    for md in (read, write):
        assert code_of(admin.Rollback, admin_pb2.RollbackRequest(), metadata=md) == denied
        pin = admin_pb2.PinVersionRequest(version="x")
        assert code_of(admin.PinVersion, pin, metadata=md) == denied
        assert code_of(admin.Unpin, admin_pb2.UnpinRequest(), metadata=md) == denied
    record_fault("read key calling RateBook or AdminService changes", "PERMISSION_DENIED")
    record_fault("write or admin key calling Recommender", "PERMISSION_DENIED")


def test_a_write_key_rates_only_for_its_users(
    server: ServerProcess, channel: grpc.Channel, keys: dict[str, str], book_id: str
) -> None:
    fb = FeedbackServiceStub(channel)
    write = bearer(keys["writer"])
    before = server.feedback_log.read_text() if server.feedback_log.exists() else ""
    other = feedback_pb2.RateBookRequest(user_id="someone-else", book_id=book_id, rating=1)
    assert code_of(lambda: fb.RateBook(other, metadata=write)) == grpc.StatusCode.PERMISSION_DENIED
    after = server.feedback_log.read_text() if server.feedback_log.exists() else ""
    assert after == before, "a refused rating must not reach the training data"
    own = feedback_pb2.RateBookRequest(user_id=BOUND_USER, book_id=book_id, rating=8)
    assert fb.RateBook(own, metadata=write).accepted
    # An unbound write key may rate for anyone.
    assert fb.RateBook(other, metadata=bearer(keys["all"])).accepted
    assert "someone-else" in server.feedback_log.read_text()
    record_fault(
        "write key bound to one user rating for another",
        "PERMISSION_DENIED; the rating is not written to the feedback log",
    )


def test_status_details_are_for_admins_only(
    server: ServerProcess, channel: grpc.Channel, keys: dict[str, str]
) -> None:
    admin = AdminServiceStub(channel)
    full = admin.GetStatus(admin_pb2.GetStatusRequest(), metadata=bearer(keys["admin"]))
    assert full.worker_pid == server.proc.pid and full.decision
    seen = admin.GetStatus(admin_pb2.GetStatusRequest(), metadata=bearer(keys["reader"]))
    assert seen.serving_version == full.serving_version
    assert seen.worker_pid == 0 and seen.decision == ""
    assert [v.version for v in seen.versions] == [v.version for v in full.versions]
    assert all(v.error == "" for v in seen.versions)
    record_fault(
        "read key asking GetStatus", "versions and states only: no worker PID, errors or decision"
    )


def test_python_client_and_cli_send_the_key(
    server: ServerProcess, keys: dict[str, str], book_id: str
) -> None:
    with BookrecClient(server.target, api_key=keys["reader"]) as client:
        assert client.get_book(book_id).book.book_id == book_id
    with BookrecClient(server.target, api_key="") as client, pytest.raises(grpc.RpcError) as e:
        client.get_book(book_id)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BOOKREC_API_KEY": keys["reader"]}
    cli = [sys.executable, "-m", "clients", "--target", server.target, "book", "--book", book_id]
    done = run(cli, env)
    assert done.returncode == 0, done.stderr
    env.pop("BOOKREC_API_KEY")
    done = run(cli, env)
    assert done.returncode == 1 and "UNAUTHENTICATED" in done.stderr


def test_a_revoked_key_stops_working_without_restart(
    channel: grpc.Channel, keys: dict[str, str], keys_file: tuple[Path, dict[str, str]]
) -> None:
    rec = RecommenderServiceStub(channel)
    doomed = bearer(keys["doomed"])
    assert rec.ColdStart(recommender_pb2.ColdStartRequest(), metadata=doomed).items
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "server", "keys", "--keys-file", str(keys_file[0])]
    done = run([*cmd, "revoke", "doomed"], env)
    assert done.returncode == 0, done.stderr
    listed = run([*cmd, "list"], env)
    assert "doomed" not in listed.stdout and "reader\tscopes=read" in listed.stdout
    deadline = time.monotonic() + 10
    while True:
        code = code_of(lambda: rec.ColdStart(recommender_pb2.ColdStartRequest(), metadata=doomed))
        if code == grpc.StatusCode.UNAUTHENTICATED or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert rec.ColdStart(recommender_pb2.ColdStartRequest(), metadata=bearer(keys["reader"]))
    record_fault("a key revoked while the server runs", "UNAUTHENTICATED within ~1 s, no restart")


def test_no_key_is_ever_written_down(
    server: ServerProcess, keys: dict[str, str], keys_file: tuple[Path, dict[str, str]]
) -> None:
    stored = keys_file[0].read_text()
    log = server.log.read_text()
    for key in keys.values():
        assert key not in stored and key not in log
    assert "authentication on" in log


def test_open_mode_warns_and_keeps_admin_changes_closed(
    tmp_path: Path,
) -> None:
    """No key: anyone reads (with a loud warning), admin changes are off; the legacy
    admin token, when set, is the admin key."""
    empty = tmp_path / "artifacts"
    empty.mkdir()
    with running_server(empty, tmp_path / "open") as srv:
        wait_answering(srv.target)
        with grpc.insecure_channel(srv.target) as ch:
            admin = AdminServiceStub(ch)
            assert admin.GetStatus(admin_pb2.GetStatusRequest()).worker_pid == srv.proc.pid
            assert code_of(lambda: admin.Rollback(admin_pb2.RollbackRequest())) == (
                grpc.StatusCode.PERMISSION_DENIED
            )
            rec = RecommenderServiceStub(ch)
            # Past auth: no model is loaded, so UNAVAILABLE.
            assert code_of(lambda: rec.ColdStart(recommender_pb2.ColdStartRequest())) == (
                grpc.StatusCode.UNAVAILABLE
            )
        srv.stop()
        assert "AUTHENTICATION IS OFF" in srv.log.read_text()
    with running_server(empty, tmp_path / "legacy", admin_token="t0ken") as srv:
        wait_answering(srv.target)
        with grpc.insecure_channel(srv.target) as ch:
            admin = AdminServiceStub(ch)
            pin = admin_pb2.PinVersionRequest(version="20990101T000000Z-nope")
            assert code_of(lambda: admin.PinVersion(pin)) == grpc.StatusCode.UNAUTHENTICATED
            assert code_of(lambda: admin.PinVersion(pin, metadata=bearer("wrong"))) == (
                grpc.StatusCode.UNAUTHENTICATED
            )
            # Through auth to the handler, which finds no such version.
            assert code_of(lambda: admin.PinVersion(pin, metadata=bearer("t0ken"))) in (
                grpc.StatusCode.NOT_FOUND,
                grpc.StatusCode.INVALID_ARGUMENT,
            )
            # On an open server a key only adds: the admin token may still read.
            cold = recommender_pb2.ColdStartRequest()
            rec = RecommenderServiceStub(ch)
            assert code_of(rec.ColdStart, cold, metadata=bearer("t0ken")) == (
                grpc.StatusCode.UNAVAILABLE
            )
            assert code_of(rec.ColdStart, cold) == grpc.StatusCode.UNAVAILABLE
    record_fault(
        "server started with no API key",
        "serves openly with an AUTHENTICATION IS OFF warning; admin changes refused",
    )


def test_a_bad_keys_file_stops_startup_and_a_bad_edit_keeps_the_last_good_keys(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keys.jsonl"
    with pytest.raises(BadKeys, match="does not exist"):
        KeyStore.build(path, "", "")
    path.write_text('{"id": "x", "sha256": "zz", "scopes": ["read"]}\n')
    with pytest.raises(BadKeys, match=r"keys.jsonl:1: 'sha256'"):
        KeyStore.build(path, "", "")
    plain = make_keys(path, {"good": {"scopes": ["read"]}})["good"]
    store = KeyStore.build(path, "", "")
    assert store.enforced and store.identify(plain) is not None
    assert store.identify(plain + "x") is None
    path.write_text("{not json\n")
    store._checked = 0.0  # as if a second had passed
    entry = store.identify(plain)
    assert entry is not None and entry.id == "good", "a typo neither locks out nor lets in"
    path.unlink()
    store._checked = 0.0
    assert store.identify(plain) is None and store.enforced, "no file: no key, still closed"
    record_fault("keys file missing or malformed at startup", "server refuses to start")
    record_fault(
        "keys file made malformed while serving", "logged; the previous keys stay in force"
    )
