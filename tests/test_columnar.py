"""The columnar engine's settings: a memory limit it spills past, and a bad one refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pipeline_cases import FIXTURE, cases, fingerprint
from trainer.cleaning.columnar import Columnar, ColumnarSettings, configure
from trainer.errors import InputError


@pytest.fixture
def restore_settings() -> Iterator[None]:
    yield
    configure(ColumnarSettings())


def test_a_bad_memory_limit_is_an_input_error() -> None:
    with pytest.raises(InputError, match="columnar_memory 'lots'"):
        Columnar.open(ColumnarSettings(memory_limit="lots"))


async def test_results_are_the_same_when_duckdb_must_spill(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, restore_settings: None
) -> None:
    """A memory limit far under what the small set's tables take: DuckDB writes to the
    temp folder, and every count and exported byte stays what the Python path gave."""
    import json

    spill = tmp_path / "spill"
    configure(ColumnarSettings(memory_limit="40MB", temp_dir=str(spill), threads=1))
    root = tmp_path_factory.getbasetemp() / "pipeline-cases"
    (case,) = cases(root, None, ("small-kcore",))
    got = await fingerprint(case, root)
    want = json.loads(FIXTURE.read_text())["cases"]["small-kcore"]
    assert got["files"] == want["files"] and got["report"] == want["report"]
    assert (spill / "bookrec-duckdb").is_dir()
    assert not list((spill / "bookrec-duckdb").iterdir())  # the run's files are gone
