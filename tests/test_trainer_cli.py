"""Bad input to the trainer: one clear error, a non-zero exit, nothing changed."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def trainer(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainer", "--log-level", "ERROR", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _tree_digest(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        h.update(str(p.relative_to(path)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def _missing_ratings(d: Path) -> str:
    (d / "BX-Book-Ratings.csv").unlink()
    return "BX-Book-Ratings.csv: file not found"


def _comma_separated(d: Path) -> str:
    p = d / "BX-Books.csv"
    p.write_text(p.read_text(encoding="latin-1").replace('";"', '","'), encoding="latin-1")
    return "BX-Books.csv:1: header"


def _utf16(d: Path) -> str:
    p = d / "BX-Users.csv"
    p.write_bytes(p.read_text(encoding="latin-1").encode("utf-16"))
    return "BX-Users.csv: contains NUL bytes"


def _empty(d: Path) -> str:
    (d / "BX-Book-Ratings.csv").write_bytes(b"")
    return "BX-Book-Ratings.csv: file is empty"


def _unknown_books(d: Path) -> str:
    (d / "BX-Book-Ratings.csv").write_text(
        '"User-ID";"ISBN";"Book-Rating"\n"1";"0439023483";"5"\n"2";"0316015849";"0"\n',
        encoding="latin-1",
    )
    return "no rating names a known book"


@pytest.mark.parametrize(
    "break_data", [_missing_ratings, _comma_separated, _utf16, _empty, _unknown_books]
)
def test_bad_data_gives_one_clear_error_and_changes_nothing(
    break_data: Callable[[Path], str],
    tiny_data: Path,
    tiny_artifact: Path,
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    artifacts = tmp_path / "artifacts"
    shutil.copytree(tiny_artifact.parent, artifacts)
    store = tmp_path / "store.sqlite"
    assert (
        trainer("ingest", "--data", str(tiny_data), "--store", f"sqlite:///{store}").returncode == 0
    )
    before = (_tree_digest(artifacts), store.read_bytes())
    expected = break_data(data)
    result = trainer(
        "run", "--data", str(data), "--artifacts", str(artifacts), "--store", f"sqlite:///{store}"
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("trainer: error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert (_tree_digest(artifacts), store.read_bytes()) == before


@pytest.mark.mysql
def test_database_refusing_the_password_is_one_clear_error(tiny_data: Path, tmp_path: Path) -> None:
    result = trainer(
        "ingest", "--data", str(tiny_data), "--store", "mysql://root:nope@127.0.0.1:3306/test"
    )
    assert result.returncode == 2
    assert "cannot connect to mysql://root:***@127.0.0.1:3306/test" in result.stderr
    assert "Access denied" in result.stderr


def test_database_that_is_down_is_one_clear_error(tiny_data: Path) -> None:
    result = trainer("ingest", "--data", str(tiny_data), "--store", "mysql://root@127.0.0.1:1/test")
    assert result.returncode == 2
    assert "cannot connect to mysql://root@127.0.0.1:1/test" in result.stderr


def test_utf8_copy_of_a_latin1_file_is_read_transparently(tiny_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    p = data / "BX-Books.csv"
    p.write_text(p.read_text(encoding="latin-1"), encoding="utf-8")
    from trainer.sources.bx_reader import read_books

    utf8_rows, _ = read_books(p)
    latin_rows, _ = read_books(tiny_data / "BX-Books.csv")
    assert utf8_rows == latin_rows


def test_if_missing_says_which_model_it_reused(tiny_artifact: Path, tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    shutil.copytree(tiny_artifact.parent, root, symlinks=True)
    before = _tree_digest(root)
    done = trainer(
        "run", "--if-missing", "--data", str(tmp_path / "none"), "--artifacts", str(root)
    )
    assert done.returncode == 0, done.stderr
    assert f"reusing the model in {root / tiny_artifact.name}" in done.stdout
    assert _tree_digest(root) == before


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["demo-data", "--seed", "-1", "--out", "OUT"], {}, "--seed -1: the seed must be >= 0"),
        (["runs"], {"BOOKREC_TRAIN_SEED": "abc"}, "BOOKREC_TRAIN_SEED='abc': expected a whole"),
        (
            ["runs"],
            {"BOOKREC_TRAIN_THREADS": "-1"},
            "BOOKREC_TRAIN_THREADS=-1: expected a whole number >= 1, or 0 (all cores)",
        ),
        (
            ["runs"],
            {"BOOKREC_TRAIN_ITEM_ITEM": "maybe"},
            "BOOKREC_TRAIN_ITEM_ITEM='maybe': expected 1/0, true/false, yes/no or on/off",
        ),
        (["runs"], {"BOOKREC_TRAIN_RERANK": "sometimes"}, "expected one of auto, always, off"),
        (
            ["run", "--data", "OUT", "--max-eval-users", "0"],
            {},
            "--max-eval-users=0: expected a whole number >= 1",
        ),
        (["run", "--data", "OUT", "--study-seconds", "0"], {}, "--study-seconds=0.0: expected"),
        (["schedule", "--now", "--cron", "0 3 * * 8"], {}, "cron '0 3 * * 8'"),
        (["schedule", "--now", "--keep", "0"], {}, "--keep 0: retention must keep at least 1"),
        (["ingest", "--data", "OUT", "--rating-scale", "5..1"], {}, "rating_scale '5..1'"),
    ],
)
def test_bad_input_is_one_line_without_a_traceback(
    args: list[str], env: dict[str, str], expected: str, tmp_path: Path
) -> None:
    result = trainer(*(str(tmp_path) if a == "OUT" else a for a in args), env=env)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("trainer: error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("target", "command"),
    [
        ("trainer.demo.generate", ["demo-data", "--out"]),
        ("trainer.pipeline.ingest", ["ingest", "--data"]),
    ],
)
def test_a_bug_is_not_shown_as_bad_input(target: str, command: list[str], tmp_path: Path) -> None:
    """A bare ValueError is a bug, not bad input: it keeps its traceback."""
    module, name = target.rsplit(".", 1)
    argv = ["--log-level", "ERROR", *command, str(tmp_path)]
    code = (
        "import importlib, sys, trainer.__main__ as cli\n"
        "def bug(*args, **kwargs):\n    raise ValueError('injected bug')\n"
        f"setattr(importlib.import_module({module!r}), {name!r}, bug)\n"
        f"sys.exit(cli.main({argv!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr, result.stderr
    assert "ValueError: injected bug" in result.stderr
    assert "trainer: error:" not in result.stderr
