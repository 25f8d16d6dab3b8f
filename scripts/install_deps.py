"""Install the project's pinned dependencies into a virtual environment with uv, and
with pip where uv cannot be had. Run with the venv's own interpreter, before any
dependency is there (standard library only):

    .venv/bin/python scripts/install_deps.py -e '.[dev]'

uv installs the same pins as pip in a fraction of the time (it downloads and links in
parallel), but it reads none of pip's configuration, and on a machine whose pip finds
packages on disk (find-links, extra indexes, a constraints file; this is where the
CPU build of torch lies, where PyPI's default would be a multi-GB CUDA build) it would
go to PyPI alone. So the sources pip is configured with (`pip config list`: files
and PIP_* variables) are passed to uv as the same flags. uv itself comes from PyPI as
a wheel (pinned), unless one is on PATH or already in the venv.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

UV_VERSION = "0.13.8"
VENV_BIN = Path(sys.executable).parent
# pip's setting -> uv's flag; pip's value may hold several, separated by spaces.
PIP_TO_UV = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraint",
}


# Sections of `pip config list` in the order pip lets them win: PIP_* variables
# (":env:") over the [install] section over [global] (the files are already merged).
_SECTIONS = ("global", "install", ":env:")


def pip_settings() -> dict[str, list[str]]:
    """pip's effective settings for `pip install`, by name."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=False,
    )
    ranked: dict[str, tuple[int, list[str]]] = {}
    for line in done.stdout.splitlines():
        key, sep, raw = line.partition("=")
        section, dot, name = key.rpartition(".")
        if not sep or not dot or section not in _SECTIONS:
            continue
        rank = _SECTIONS.index(section)
        value = raw.strip().strip("'\"")
        if rank >= ranked.get(name, (-1, []))[0]:
            ranked[name] = (rank, value.split())
    return {name: values for name, (_rank, values) in ranked.items()}


def uv_flags(settings: dict[str, list[str]]) -> tuple[list[str], dict[str, str]]:
    """uv's flags and environment for pip's ``settings``."""
    flags: list[str] = []
    for name, flag in PIP_TO_UV.items():
        for value in settings.get(name, []):
            flags += [flag, value]
    # Local wheels (find-links) beside an index that also has the package (PyPI's CUDA
    # torch of the same version): take the best match over every source, as pip does,
    # instead of uv's default of the first index that has the name.
    if "--find-links" in flags or "--extra-index-url" in flags:
        flags += ["--index-strategy", "unsafe-best-match"]
    env = {}
    cert = settings.get("cert", [])
    if cert and "SSL_CERT_FILE" not in os.environ:
        env["SSL_CERT_FILE"] = cert[0]
    timeout = settings.get("default-timeout", [])
    if timeout and "UV_HTTP_TIMEOUT" not in os.environ:
        env["UV_HTTP_TIMEOUT"] = timeout[0]
    return flags, env


def find_uv() -> str | None:
    """The venv's uv, one on PATH, or a pinned one installed from PyPI into the venv."""
    for candidate in (VENV_BIN / "uv", shutil.which("uv")):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-qq", f"uv=={UV_VERSION}"], check=False
    )
    uv = VENV_BIN / "uv"
    return str(uv) if done.returncode == 0 and uv.exists() else None


def main(argv: list[str]) -> int:
    uv = find_uv()
    if uv is not None:
        flags, env = uv_flags(pip_settings())
        cmd = [uv, "pip", "install", "--quiet", "--python", sys.executable, *flags, *argv]
        done = subprocess.run(cmd, env={**os.environ, **env}, check=False)
        if done.returncode == 0:
            return 0
        print(f"uv failed ({shlex.join(cmd)}); installing with pip instead", file=sys.stderr)
    else:
        print("uv is unavailable; installing with pip (a few minutes)", file=sys.stderr)
    pip = [sys.executable, "-m", "pip", "install", "-q", *argv]
    return subprocess.run(pip, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
