"""Broken artifacts are refused with a logged reason while the current model keeps
serving, and the next good version is still picked up (issue 11, "Artifacts").

Through a real server on loopback: every fault is published as the newest version
of one running server; its load must fail (the log says why, GetStatus shows it
FAILED), ColdStart must still answer from the good version with items, and a good
version published after it must be served. In process: a NaN or inf in each float
array the bundle loads is refused, and a version that failed while incomplete is
retried once its files change. On two workers: a version written manifest-first
(or manifest-last) with its files arriving slowly ends on every connection.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.publish import next_version, publish_copy
from bookrec import artifact
from bookrec.artifact import FORMAT_VERSION, MANIFEST, ArtifactError
from bookrec.v1 import admin_pb2, recommender_pb2
from bookrec.v1.admin_pb2_grpc import AdminServiceStub
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub
from server.engine.bundle import Bundle
from server.engine.manager import ModelManager, State
from tests.broken import Break, load, log_lines, publish_broken, rehash, save_array, wait_for_log
from tests.fault_table import record_fault
from tests.serverproc import ServerProcess, own_connection, running_server


def _poison(name: str, value: float) -> Break:
    def breaks(d: Path, doc: dict[str, Any]) -> None:
        a = load(d, name)
        a.flat[a.size // 2] = value
        save_array(d, doc, name, a)

    return breaks


def _truncate(d: Path, doc: dict[str, Any]) -> None:
    path = d / "user_factors.npy"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _truncate_rehashed(d: Path, doc: dict[str, Any]) -> None:
    _truncate(d, doc)
    rehash(d, doc, "user_factors.npy")


def _missing(d: Path, doc: dict[str, Any]) -> None:
    (d / "titles.utf8.npy").unlink()


def _missing_everywhere(d: Path, doc: dict[str, Any]) -> None:
    _missing(d, doc)
    del doc["files"]["titles.utf8.npy"]


def _short_rows(d: Path, doc: dict[str, Any]) -> None:
    save_array(d, doc, "popularity", load(d, "popularity")[:-1], meta=True)


def _shape_not_manifest(d: Path, doc: dict[str, Any]) -> None:
    save_array(d, doc, "item_factors", load(d, "item_factors")[:, :-1])


def _dtype(d: Path, doc: dict[str, Any]) -> None:
    save_array(d, doc, "popularity", load(d, "popularity").astype(np.float64))


def _dtype_in_manifest(d: Path, doc: dict[str, Any]) -> None:
    save_array(d, doc, "popularity", load(d, "popularity").astype(np.float64), meta=True)


def _checksum(d: Path, doc: dict[str, Any]) -> None:
    path = d / "item_factors.npy"
    data = bytearray(path.read_bytes())
    data[-8:] = bytes(8)  # the same size, other values
    path.write_bytes(bytes(data))


def _newer_format(d: Path, doc: dict[str, Any]) -> None:
    doc["format_version"] = FORMAT_VERSION + 1


def _torn_manifest(d: Path, doc: dict[str, Any]) -> str:
    return json.dumps(doc)[:200]


def _no_als_vectors(d: Path, doc: dict[str, Any]) -> None:
    save_array(d, doc, "item_in_als", np.zeros_like(load(d, "item_in_als")))


@dataclass(frozen=True)
class Fault:
    id: str
    what: str  # the fault table's first column
    breaks: Break | None  # None: an empty directory under a version's name
    error: str  # what the load error must say ("" when nothing is loaded)


FAULTS = [
    Fault("nan-popularity", "NaN in popularity.npy, sha256 updated in the manifest",
          _poison("popularity", np.nan), "popularity.npy holds NaN or inf"),
    Fault("inf-subject-vectors", "+inf in subject_vectors.npy (2-D), sha256 updated",
          _poison("subject_vectors", np.inf), "subject_vectors.npy holds NaN or inf"),
    Fault("truncated", "user_factors.npy cut to half its size",
          _truncate, "!= manifest"),
    Fault("truncated-rehashed", "user_factors.npy cut to half, size and sha256 updated",
          _truncate_rehashed, "user_factors.npy: unreadable array"),
    Fault("missing-file", "titles.utf8.npy deleted, still listed in the manifest",
          _missing, "listed in the manifest but missing"),
    Fault("missing-everywhere", "titles.utf8.npy deleted and dropped from the manifest",
          _missing_everywhere, "manifest lacks"),
    Fault("short-rows", "popularity.npy one row short (manifest shape updated)",
          _short_rows, "disagree on the number of books"),
    Fault("shape", "item_factors.npy one column short, manifest shape unchanged",
          _shape_not_manifest, "!= manifest"),
    Fault("dtype", "popularity.npy saved as float64, manifest says float32",
          _dtype, "dtype float64 != manifest float32"),
    Fault("dtype-manifest", "popularity.npy float64 and the manifest says so",
          _dtype_in_manifest, "format needs float32"),
    Fault("checksum", "item_factors.npy bytes changed, sha256 not updated",
          _checksum, "sha256 differs"),
    Fault("newer-format", f"manifest format_version {FORMAT_VERSION + 1} (a newer trainer)",
          _newer_format, f"format version {FORMAT_VERSION + 1}"),
    Fault("torn-manifest", "manifest.json cut off mid-JSON",
          _torn_manifest, "unreadable manifest"),
    Fault("empty-dir", "an empty directory named like a version", None, ""),
    Fault("warmup-empty", "item_in_als.npy all false: warm-up Recommend answers no items",
          _no_als_vectors, "answered no items"),
]  # fmt: skip


@pytest.fixture(scope="module")
def root(tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fault-artifacts")
    shutil.copytree(tiny_artifact, out / tiny_artifact.name)
    return out


@pytest.fixture(scope="module")
def server(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    work = tmp_path_factory.mktemp("fault-server")
    with running_server(root, work, extra_args=("--no-compile-reranker",)) as srv:
        yield srv
        assert srv.stop() == 0


def cold_start(target: str) -> recommender_pb2.ColdStartResponse:
    with own_connection(target) as ch:
        request = recommender_pb2.ColdStartRequest(favourite_subjects=["romance"])
        reply: recommender_pb2.ColdStartResponse = RecommenderServiceStub(ch).ColdStart(
            request, timeout=5
        )
        return reply


def status(target: str) -> admin_pb2.GetStatusResponse:
    with own_connection(target) as ch:
        reply: admin_pb2.GetStatusResponse = AdminServiceStub(ch).GetStatus(
            admin_pb2.GetStatusRequest(), timeout=5
        )
        return reply


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_a_broken_version_is_refused_and_the_next_good_one_served(
    fault: Fault, root: Path, server: ServerProcess
) -> None:
    good = cold_start(server.target).model_version
    source = root / good
    if fault.breaks is None:
        bad = next_version(good, "empty")
        (root / bad).mkdir()
    else:
        bad = publish_broken(root, source, fault.breaks)
        line = wait_for_log(server.log, "model load failed", version=bad)
        assert fault.error in line["error"]
        states = {v.version: v for v in status(server.target).versions}
        assert states[bad].state == admin_pb2.MODEL_STATE_FAILED
        assert fault.error in states[bad].error
    reply = cold_start(server.target)
    assert reply.model_version == good and len(reply.items) > 0, "the good version serves on"
    after = publish_copy(root, source)
    wait_until(lambda: cold_start(server.target).model_version == after)
    assert len(cold_start(server.target).items) > 0
    assert not [x for x in log_lines(server.log, "model available") if x.get("version") == bad]
    outcome = (
        "ignored: no manifest, so not a complete version"
        if fault.breaks is None
        else f"load refused, logged ('{fault.error}'), GetStatus shows it FAILED"
    )
    record_fault(
        f"artifact: {fault.what}",
        f"{outcome}; the previous version kept answering; the next good version was served",
    )


def _float_arrays(manifest: artifact.Manifest) -> list[str]:
    return sorted(
        name.removesuffix(".npy")
        for name, e in manifest.files.items()
        if e.dtype is not None and np.issubdtype(np.dtype(e.dtype), np.floating)
    )


def test_every_float_array_is_checked_for_nan_and_inf(tiny_artifact: Path, tmp_path: Path) -> None:
    names = _float_arrays(artifact.read_manifest(tiny_artifact))
    assert {"popularity", "mean_rating", "item_item_weights", "user_stats"} <= set(names)
    for value in (np.nan, np.inf, -np.inf):
        for name in names:
            version = publish_broken(tmp_path, tiny_artifact, _poison(name, value))
            with pytest.raises(ArtifactError, match=f"{name}.npy holds NaN or inf"):
                Bundle.open(tmp_path / version)
            shutil.rmtree(tmp_path / version)
    record_fault(
        f"artifact: NaN, +inf or -inf in each float array ({', '.join(names)}), sha256 updated",
        "every one refused at open: '<name>.npy holds NaN or inf'",
    )


def test_a_version_that_failed_incomplete_is_retried_when_its_files_change(
    artifact_root: Path,
) -> None:
    models = ModelManager(artifact_root, compile_reranker=False)
    assert models.poll()
    good = models.current().version
    bad = publish_broken(artifact_root, artifact_root / good, _missing)
    assert not models.poll()
    assert {s.version: s.state for s in models.status()}[bad] is State.FAILED
    assert not models.poll(), "unchanged files: not tried again"
    shutil.copyfile(
        artifact_root / good / "titles.utf8.npy", artifact_root / bad / "titles.utf8.npy"
    )
    assert models.poll(), "its files changed: tried again, and it loads"
    assert models.current().version == bad
    record_fault(
        "artifact: a version that failed for a missing file gets the file later",
        "not retried while its files stayed the same; retried and served once they changed",
    )


def _write_slowly(root: Path, source: Path, version: str, manifest_first: bool) -> None:
    """The directory under its final name, files one at a time (no hidden name, no rename)."""
    target = root / version
    target.mkdir()
    doc = json.loads((source / MANIFEST).read_text())
    doc["model_version"] = version
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    if manifest_first:
        (target / MANIFEST).write_text(text)
    for name in sorted(doc["files"]):
        time.sleep(0.04)
        shutil.copyfile(source / name, target / name)
    if not manifest_first:
        (target / MANIFEST).write_text(text)


def _versions_seen(target: str, n: int) -> list[str]:
    out = []
    for _ in range(n):
        with own_connection(target) as ch:
            reply = RecommenderServiceStub(ch).ColdStart(
                recommender_pb2.ColdStartRequest(), timeout=5
            )
            out.append(reply.model_version)
    return out


def _serving_by_pid(target: str) -> set[str]:
    """The versions the workers serve, once replies from two workers came back."""
    by_pid: dict[int, str] = {}
    while len(by_pid) < 2:
        reply = status(target)
        by_pid[reply.worker_pid] = reply.serving_version
    return set(by_pid.values())


@pytest.mark.timeout(180)
@pytest.mark.parametrize("manifest_first", [True, False], ids=["manifest-first", "manifest-last"])
def test_a_version_written_slowly_ends_on_every_worker(
    manifest_first: bool, artifact_root: Path, tmp_path: Path
) -> None:
    args = ("--no-compile-reranker",)
    with running_server(artifact_root, tmp_path / "work", workers=2, extra_args=args) as srv:
        old = artifact.complete_versions(artifact_root)[0]
        wait_until(lambda: len({status(srv.target).worker_pid for _ in range(12)}) == 2)
        new = next_version(old.name, "slow")
        writer = threading.Thread(
            target=_write_slowly, args=(artifact_root, old, new, manifest_first)
        )
        writer.start()
        if manifest_first:  # a worker saw it half-written and failed it, as in the issue
            wait_for_log(srv.log, "model load failed", version=new)
        writer.join()
        # Workers load one at a time, so they swap a moment apart: wait for both.
        wait_until(lambda: _serving_by_pid(srv.target) == {new}, timeout=60)
        seen = _versions_seen(srv.target, 20)
        assert seen == [new] * 20, f"connections disagree: {seen}"
        pids = set()
        for _ in range(20):
            reply = status(srv.target)
            pids.add(reply.worker_pid)
            assert reply.serving_version == new
            assert all(v.state != admin_pb2.MODEL_STATE_FAILED for v in reply.versions)
        assert len(pids) == 2
        assert srv.stop() == 0
    order = "manifest first, then its files" if manifest_first else "its files, manifest last"
    record_fault(
        f"artifact: a version written in place, {order}, one file at a time (2 workers)",
        "failed while incomplete, retried as files changed; all 20 fresh connections "
        "saw the new version, no worker left it FAILED",
    )
