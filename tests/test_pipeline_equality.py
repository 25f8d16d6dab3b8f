"""The columnar pipeline gives what the Python pipeline gave, rule for rule, byte for byte.

The Python path's results on each case were frozen before it was removed
(tests/fixtures/pipeline_equality.json, written by tests/pipeline_cases.py at the
commit it names): every cleaning report row and note, the load's counts, the split
id and the sha256 of every exported array and table. The 1x demo set
(1.15M rating rows) runs in its own test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.pipeline_cases import (
    DEMO_CASES,
    FIXTURE,
    LOCAL_CASES,
    ONE_X,
    SHARED_CASES,
    cases,
    fingerprint,
)


def _expected(name: str) -> dict[str, Any]:
    frozen: dict[str, Any] = json.loads(FIXTURE.read_text())["cases"][name]
    return frozen


def _compare(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["report"]["rules"] == want["report"]["rules"]
    assert got["report"]["notes"] == want["report"]["notes"]
    assert got["loaded"] == want["loaded"]
    assert got["split_id"] == want["split_id"]
    assert got["counts"] == want["counts"]
    assert got["files"] == want["files"]


@pytest.mark.parametrize("name", DEMO_CASES + LOCAL_CASES)
async def test_demo_and_dirty_sets_equal_the_python_path(
    name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.getbasetemp() / "pipeline-cases"
    (case,) = cases(root, None, (name,))
    _compare(await fingerprint(case, root), _expected(name))


@pytest.mark.shared_data
@pytest.mark.parametrize("name", SHARED_CASES)
async def test_real_sets_equal_the_python_path(
    name: str, shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.getbasetemp() / "pipeline-cases"
    (case,) = cases(root, shared_data, (name,))
    _compare(await fingerprint(case, root), _expected(name))


@pytest.mark.timeout(1800)  # 1.15M rating rows on 2 shared cores; the demo files included
async def test_one_x_demo_set_equals_the_python_path(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.getbasetemp() / "pipeline-cases"
    (case,) = cases(root, None, (ONE_X,))
    _compare(await fingerprint(case, root), _expected(ONE_X))
