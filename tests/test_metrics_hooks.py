"""The places that feed the metrics, in process: a refused load counts a failure and a
good one a success with its version; a call admission refuses counts as shed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
from prometheus_client import REGISTRY

from server.admission import Admission
from server.engine.manager import ModelManager
from server.shedding import _admitted
from tests.broken import publish_broken


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_loads_count_successes_failures_and_the_version(
    artifact_root: Path, tiny_artifact: Path
) -> None:
    ok, failed = (sample("bookrec_model_reloads_total", result=r) for r in ("success", "failure"))
    models = ModelManager(artifact_root, compile_reranker=False)
    assert models.poll()
    assert sample("bookrec_model_reloads_total", result="success") == ok + 1
    assert sample("bookrec_model_version_info", version=tiny_artifact.name) == 1

    def corrupt(directory: Path, _doc: dict[str, Any]) -> None:
        (directory / "popularity.npy").write_bytes(b"not an array")  # its sha256 is wrong

    publish_broken(artifact_root, tiny_artifact, corrupt)
    assert not models.poll()
    assert sample("bookrec_model_reloads_total", result="failure") == failed + 1
    assert sample("bookrec_model_reloads_total", result="success") == ok + 1
    assert sample("bookrec_model_version_info", version=tiny_artifact.name) == 1
    models.close()


class _Context:
    """What admission asks of a call's context: its deadline, and abort."""

    def __init__(self, remaining: float) -> None:
        self.remaining = remaining
        self.aborted: grpc.StatusCode | None = None

    def time_remaining(self) -> float:
        return self.remaining

    async def abort(self, code: grpc.StatusCode, _details: str, _trailers: object = ()) -> None:
        self.aborted = code


async def test_a_call_refused_by_admission_is_counted_as_shed() -> None:
    method = "/bookrec.v1.RecommenderService/Recommend"
    label = method.lstrip("/")
    before = sample("bookrec_shed_total", method=label, reason="deadline")
    admitted = _admitted(
        Admission(slots=1, max_queue=8, max_wait=0.02), lambda r, c: r, method, 0.0
    )
    context = _Context(remaining=0.0)  # its deadline passed on arrival
    await admitted("request", context)
    assert context.aborted == grpc.StatusCode.DEADLINE_EXCEEDED
    assert sample("bookrec_shed_total", method=label, reason="deadline") == before + 1
    assert await admitted("request", _Context(remaining=5.0)) == "request"
    assert sample("bookrec_shed_total", method=label, reason="deadline") == before + 1
