"""Where namespaces cannot be made, the namespace tests skip on a developer's machine
but fail in CI (``BOOKREC_REQUIRE_NETNS=1``, set by .ci/run), as the shared-data tests
do: a missing prerequisite must never pass there as a skip. Checked by running
tests/test_netns.py in a child pytest whose PATH has no ``ip`` command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import netns

ROOT = Path(__file__).resolve().parents[1]


def _run_without_ip(tmp_path: Path, require: str | None) -> tuple[int, str]:
    """tests/test_netns.py in a child pytest that cannot find ``ip``."""
    env = {k: v for k, v in os.environ.items() if k != netns.REQUIRE_ENV}
    env["PATH"] = str(tmp_path)  # an empty folder: no ip here
    env["PYTHONPATH"] = str(ROOT)
    if require is not None:
        env[netns.REQUIRE_ENV] = require
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_netns.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def _count(word: str, out: str) -> int:
    m = re.search(rf"(\d+) {word}", out)
    return int(m.group(1)) if m else 0


@pytest.mark.timeout(180)
def test_missing_namespaces_skip_locally_and_fail_when_required(tmp_path: Path) -> None:
    code, out = _run_without_ip(tmp_path, None)
    assert code == 0 and _count("skipped", out) == 3 and _count("failed", out) == 0, out
    assert "ip command" in out, "the skip names what is missing"

    code, out = _run_without_ip(tmp_path, "1")
    assert code == 1, out
    assert _count("failed", out) == 3 and _count("skipped", out) == 0, out
    assert "ip command" in out, "the failure names what is missing"
