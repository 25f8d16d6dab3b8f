"""The tmpfs harness's rule for a missing prerequisite (tests/mounts.py): a skip with
the reason on a developer's machine, a run (and so a failure naming it) where
``BOOKREC_REQUIRE_MOUNT=1`` (CI, .ci/run). Checked with a PATH that has no mount."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import mounts


def test_missing_mount_skips_locally_and_fails_when_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no mount here
    monkeypatch.delenv(mounts.REQUIRE_ENV, raising=False)
    reason = mounts.skip_reason()
    assert reason is not None and "mount command" in reason

    monkeypatch.setenv(mounts.REQUIRE_ENV, "1")
    assert mounts.skip_reason() is None, "required: the tests run instead of skipping"
    with pytest.raises(RuntimeError, match="mount command"), mounts.tmpfs(tmp_path / "d", "64k"):
        pass
