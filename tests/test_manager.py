"""The model manager on real artifacts: new, failed, pinned and rolled-back versions,
and an old bundle that lives exactly as long as a request holds it."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from bench.publish import publish_copy
from server.engine import control
from server.engine.errors import NotFound
from server.engine.manager import ModelManager, State


def states(models: ModelManager) -> dict[str, State]:
    return {s.version: s.state for s in models.status()}


def test_new_version_swaps_in_and_the_old_one_waits_for_its_last_request(
    artifact_root: Path,
) -> None:
    models = ModelManager(artifact_root)
    assert models.poll()
    first = models.current().version
    held = models.current()  # a request in flight
    second = publish_copy(artifact_root)
    assert models.poll()
    assert models.current().version == second
    assert states(models) == {first: State.UNLOADING, second: State.AVAILABLE}
    assert held.version == first and held.item_factors.shape[0] > 0  # still usable
    del held
    gc.collect()
    assert states(models) == {second: State.AVAILABLE}
    assert not models.poll(), "nothing newer: no reload"


def test_a_corrupt_version_fails_and_the_current_one_keeps_serving(artifact_root: Path) -> None:
    models = ModelManager(artifact_root)
    assert models.poll()
    good = models.current().version
    bad = publish_copy(artifact_root)
    with (artifact_root / bad / "item_factors.npy").open("r+b") as f:
        f.seek(200)
        f.write(b"\x00" * 16)
    assert not models.poll()
    assert models.current().version == good
    status = {s.version: s for s in models.status()}
    assert status[bad].state is State.FAILED
    assert "item_factors" in status[bad].error
    assert not models.poll(), "a failed version is not retried while its files stay the same"


def test_pin_rollback_and_unpin(artifact_root: Path) -> None:
    models = ModelManager(artifact_root)
    assert models.poll()
    a = models.current().version
    b = publish_copy(artifact_root)
    assert models.poll() and models.current().version == b
    models.pin(a, "test")
    assert control.read_pin(artifact_root) == a
    assert models.poll() and models.current().version == a
    c = publish_copy(artifact_root)
    assert not models.poll(), "pinned: a newer version does not replace it"
    assert models.current().version == a
    models.pin(None, "test")
    assert models.poll() and models.current().version == c
    assert models.rollback("test") == b
    assert models.poll() and models.current().version == b
    with pytest.raises(NotFound, match="not a complete artifact"):
        models.pin("20990101T000000Z-00000000", "test")


def test_a_second_manager_sees_the_first_ones_pin(artifact_root: Path) -> None:
    """Workers share pins through the control file, not memory."""
    one, two = ModelManager(artifact_root), ModelManager(artifact_root)
    assert one.poll() and two.poll()
    a = one.current().version
    publish_copy(artifact_root)
    assert one.poll() and two.poll()
    one.rollback("test")
    assert two.poll()
    assert two.current().version == a


def test_workers_load_one_at_a_time(artifact_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two managers on one root (two workers) never load at the same moment."""
    import threading
    import time

    from server.engine.bundle import Bundle

    spans: list[tuple[float, float]] = []
    real_open = Bundle.open

    def slow_open(*args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        bundle = real_open(*args, **kwargs)
        time.sleep(0.3)
        spans.append((start, time.monotonic()))
        return bundle

    monkeypatch.setattr(Bundle, "open", slow_open)
    workers = [ModelManager(artifact_root, compile_reranker=False) for _ in range(2)]
    threads = [threading.Thread(target=m.poll) for m in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(m.ready for m in workers)
    first, second = sorted(spans)
    assert first[1] <= second[0], f"loads overlapped: {spans}"
