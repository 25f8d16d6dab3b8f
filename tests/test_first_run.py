"""A newcomer's `make run` (issue 24 items 1 and 2): the install goes through uv with
the package sources pip is configured with; the first model's summary line says that
`make train` runs the full settings search; and the API key is shown once, where it
is made, never again. The make recipe's own commands are run, as `make -n run` prints
them."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from tests.serverproc import ROOT
from tests.trainerproc import trainer_env
from trainer.config import TrainerConfig
from trainer.run_report import short_study_note


def _script(name: str) -> ModuleType:
    """A module of scripts/ (no package: it runs before the venv has anything)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


install_deps = _script("install_deps")


def make_run_lines(tmp: Path) -> list[str]:
    """`make run`'s recipe for data and artifacts under ``tmp``, this interpreter as
    the venv's (nothing is run)."""
    make_vars = (
        f"PY={sys.executable}",
        f"DATA={tmp / 'data'}",
        f"ARTIFACTS={tmp / 'artifacts'}",
        "WEB_PORT=18080",
    )
    done = subprocess.run(
        ["make", "-n", "run", *make_vars],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.splitlines()


def key_step(lines: list[str]) -> str:
    """What `make run` does between training and serving: the key and what it prints."""
    trained = next(i for i, ln in enumerate(lines) if " -m trainer run " in ln)
    serve = next(i for i, ln in enumerate(lines) if ln.startswith(f"{sys.executable} -m server --"))
    return "\n".join(lines[trained + 1 : serve])


def test_make_run_shows_the_key_once_where_it_is_made(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    step = key_step(make_run_lines(tmp_path))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run_step() -> str:
        done = subprocess.run(
            ["bash", "-c", step],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr

    first = run_step()
    key_file = tmp_path / "data" / "local-api-key"
    key = key_file.read_text().strip()
    assert first.count(key) == 1, first
    assert f"http://127.0.0.1:18080/#key={key}" in first  # the page adopts it
    assert f"export BOOKREC_API_KEY=$(cat {key_file})" in first
    again = run_step()
    assert key not in again, again
    assert "web page: http://127.0.0.1:18080/ (paste the key from" in again
    assert str(key_file) in again


def write_wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel: enough for a resolver to read its metadata."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name.replace('-', '_')}-{version}"
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(
            f"{dist}.dist-info/METADATA",
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        )
        z.writestr(
            f"{dist}.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        z.writestr(f"{dist}.dist-info/RECORD", "")
    return path


def simple_index(root: Path, wheels: list[Path]) -> str:
    """A PEP 503 index on disk listing ``wheels``; its file:// URL."""
    for wheel in wheels:
        project = root / wheel.name.split("-")[0].replace("_", "-")
        project.mkdir(parents=True, exist_ok=True)
        (project / "index.html").write_text(f'<a href="{wheel.as_uri()}">{wheel.name}</a>\n')
    return root.as_uri()


def test_uv_installs_from_the_sources_pip_is_configured_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The machine's pip finds torch's CPU build in a find-links folder, beside indexes
    that hold other versions (and PyPI, with the CUDA build). Here the same shape, on
    disk: the pinned `probe-torch==2.0` is `2.0+cpu` in find-links and plain `2.0` on
    the main index; `probe-grpc==1.5` is on the second extra index only, while the
    first one has an older release (uv's default would stop at the first index)."""
    uv = install_deps.find_uv()  # the venv's (make installs it), else from PyPI
    assert uv is not None, "uv could not be installed from PyPI"
    files = tmp_path / "files"
    main = simple_index(tmp_path / "pypi", [write_wheel(files, "probe-torch", "2.0")])
    extra_old = simple_index(tmp_path / "extra1", [write_wheel(files, "probe-grpc", "1.0")])
    extra_new = simple_index(tmp_path / "extra2", [write_wheel(files, "probe-grpc", "1.5")])
    write_wheel(tmp_path / "wheels", "probe-torch", "2.0+cpu")
    pins = tmp_path / "constraints.txt"
    pins.write_text("probe-torch<=2.0\n")
    config = tmp_path / "pip.conf"
    config.write_text(
        f"[global]\nindex-url = {main}\nextra-index-url = {extra_old} {extra_new}\n"
        f"find-links = /nonexistent\nconstraint = {pins}\n"
    )
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "wheels"))  # the variable wins
    settings = install_deps.pip_settings()
    assert settings["find-links"] == [str(tmp_path / "wheels")]
    assert settings["extra-index-url"] == [extra_old, extra_new]
    flags, _env = install_deps.uv_flags(settings)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    done = subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--dry-run",
            "--offline",
            "--python",
            str(venv / "bin" / "python"),
            *flags,
            "probe-torch==2.0",
            "probe-grpc==1.5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"{shlex.join(flags)}\n{out}"
    assert "+ probe-torch==2.0+cpu" in out and "+ probe-grpc==1.5" in out, out


def test_the_first_models_summary_says_make_train_runs_the_full_search(
    tiny_data: Path, tmp_path: Path
) -> None:
    """`make run`'s own training flags, on the tiny set: the run's summary line names
    `make train`; a run with the default search says nothing of it."""
    line = next(ln for ln in make_run_lines(tmp_path) if " -m trainer run " in ln)
    argv = shlex.split(line)
    argv[argv.index("--data") + 1] = str(tiny_data)
    argv += ["--store", f"sqlite:///{tmp_path / 's.sqlite'}", "--max-eval-users", "200"]
    env = {k: v for k, v in trainer_env().items() if "STUDY" not in k}
    env["BOOKREC_PROGRESS"] = "lines"
    done = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    docs = [json.loads(ln) for ln in done.stderr.splitlines() if ln.startswith("{")]
    summary = next(d["text"] for d in docs if d["event"] == "summary")
    assert summary.startswith("trainer: done in") and "published " in summary
    assert "`make train` runs the full one (30 trials, 210 s)" in summary, summary
    assert " 1 trials" not in summary
    assert short_study_note(TrainerConfig()) == ""
