"""PinVersion refuses a version that cannot serve instead of answering OK (issue 11):
a failed one, a broken one this worker never tried, an absent one, a malformed name.
Nothing is pinned by a refused call, and a good older version still pins and serves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2

from bench.publish import publish_copy
from bookrec.artifact import complete_versions
from bookrec.v1 import admin_pb2, recommender_pb2
from bookrec.v1.admin_pb2_grpc import AdminServiceStub
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub
from tests.broken import load, publish_broken, save_array, wait_for_log
from tests.fault_table import record_fault
from tests.serverproc import ServerProcess, own_connection, running_server

TOKEN = "pin-s3cret"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
OLDER = "20000101T000000Z-0ddba11a"  # sorts before any trained version: never loaded unasked
OLDER_GOOD = "20000102T000000Z-600d600d"


def _nan_mean_rating(d: Path, doc: dict[str, Any]) -> None:
    a = load(d, "mean_rating")
    a[0] = np.nan
    save_array(d, doc, "mean_rating", a)


@pytest.fixture
def server(artifact_root: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    args = ("--no-compile-reranker",)
    with running_server(
        artifact_root, tmp_path / "work", admin_token=TOKEN, extra_args=args
    ) as srv:
        yield srv
        assert srv.stop() == 0


def _serving(target: str) -> str:
    with own_connection(target) as ch:
        reply = RecommenderServiceStub(ch).ColdStart(recommender_pb2.ColdStartRequest(), timeout=5)
        return str(reply.model_version)


def _pin_error(admin: AdminServiceStub, version: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        admin.PinVersion(admin_pb2.PinVersionRequest(version=version), metadata=AUTH, timeout=30)
    return e.value


@pytest.mark.timeout(120)
def test_pinning_a_version_that_cannot_serve_is_refused(
    artifact_root: Path, server: ServerProcess
) -> None:
    good_dir = complete_versions(artifact_root)[0]
    good = good_dir.name
    failed = publish_broken(artifact_root, good_dir, _nan_mean_rating)
    wait_for_log(server.log, "model load failed", version=failed)
    untried = publish_broken(artifact_root, good_dir, _nan_mean_rating, version=OLDER)
    publish_copy(artifact_root, good_dir)  # and a good newer one, which serves
    newer = complete_versions(artifact_root)[-1].name
    wait_for_log(server.log, "model available", version=newer)
    with own_connection(server.target) as ch:
        admin = AdminServiceStub(ch)
        for version in (failed, untried):
            err = _pin_error(admin, version)
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, (version, err)
            assert "failed to load" in str(err.details())
            assert "mean_rating.npy holds NaN or inf" in str(err.details())
        err = _pin_error(admin, "20990101T000000Z-00000000")
        assert err.code() == grpc.StatusCode.NOT_FOUND
        assert "not a complete artifact" in str(err.details())
        assert _pin_error(admin, "nope").code() == grpc.StatusCode.INVALID_ARGUMENT
        status = admin.GetStatus(admin_pb2.GetStatusRequest())
        assert status.pinned_version == "", "a refused pin pins nothing"
        assert status.serving_version == newer
        states = {v.version: v.state for v in status.versions}
        assert states[failed] == states[untried] == admin_pb2.MODEL_STATE_FAILED
        assert _serving(server.target) == newer
        # A good version older than the serving one: loaded in the standby slot, then pinned.
        publish_broken(artifact_root, good_dir, lambda d, doc: None, version=OLDER_GOOD)
        reply = admin.PinVersion(
            admin_pb2.PinVersionRequest(version=OLDER_GOOD), metadata=AUTH, timeout=30
        )
        assert reply.pinned_version == OLDER_GOOD
        assert _serving(server.target) == OLDER_GOOD
        assert admin.GetStatus(admin_pb2.GetStatusRequest()).pinned_version == OLDER_GOOD
    assert good != newer
    record_fault(
        "PinVersion of a version that failed to load, and of a broken one never tried",
        "FAILED_PRECONDITION 'cannot serve: it failed to load: <reason>'; nothing pinned; "
        "the serving version kept answering",
    )
    record_fault(
        "PinVersion of an absent version / of a malformed name",
        "NOT_FOUND 'not a complete artifact' / INVALID_ARGUMENT; nothing pinned",
    )


@pytest.mark.timeout(120)
def test_rollback_with_nothing_older_is_a_failed_precondition(
    artifact_root: Path, server: ServerProcess
) -> None:
    only = complete_versions(artifact_root)[0].name
    server.wait_health(health_pb2.HealthCheckResponse.SERVING)  # the one version loaded
    with own_connection(server.target) as ch:
        admin = AdminServiceStub(ch)
        with pytest.raises(grpc.RpcError) as e:
            admin.Rollback(admin_pb2.RollbackRequest(), metadata=AUTH, timeout=30)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION, e.value
        assert f"no loadable version older than {only}" in str(e.value.details())
        status = admin.GetStatus(admin_pb2.GetStatusRequest())
        assert status.pinned_version == "" and status.serving_version == only
    assert _serving(server.target) == only
    record_fault(
        "Rollback with no loadable version older than the serving one (a fresh `make run`)",
        "FAILED_PRECONDITION 'no loadable version older than <v> to roll back to: nothing "
        "changed'; nothing pinned; the serving version kept answering",
    )
