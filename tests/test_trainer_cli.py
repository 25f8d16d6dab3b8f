"""Bad input to the trainer: one clear error, a non-zero exit, nothing changed."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def trainer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainer", "--log-level", "ERROR", *args],
        cwd=ROOT,
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
