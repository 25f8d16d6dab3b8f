"""Runs every code block of docs/clients.md against a real server on loopback: the
Python ones with this interpreter, the shell ones (the CLI and grpcurl) with bash
after the page's first shell block (its setup lines), the JavaScript one with Node
and the pinned packages of clients/examples/node. The server is the one `make run`
starts, configured as it configures it: the key and server commands are read from
`make -n run` (a keys file with one read/write/admin key made by `python -m server
keys ... create`, the web port, the default workers) over one model version, as a
fresh `make run` has, so Rollback has nothing older; the blocks that roll back run
again once a second version is published, where Rollback succeeds. The page must
also name every RPC of the contract in each of its four ways of calling."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2

from bench.publish import publish_copy
from bookrec.artifact import complete_versions
from bookrec.v1 import admin_pb2, catalog_pb2, feedback_pb2, recommender_pb2
from clients.client import NO_RETRY, BookrecClient
from tests.serverproc import ROOT, ServerProcess, running_server

DOC = ROOT / "docs" / "clients.md"
DOC_TARGET = "127.0.0.1:50051"
NODE_DIR = ROOT / "clients" / "examples" / "node"
VENV_BIN = Path(sys.executable).parent
_FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int

    @property
    def name(self) -> str:
        return f"{self.lang}@line{self.line}"


def blocks() -> list[Block]:
    text = DOC.read_text()
    return [
        Block(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
        for m in _FENCE.finditer(text)
    ]


SETUP = next(b for b in blocks() if b.lang == "sh")
RUN = [b for b in blocks() if b is not SETUP]


@dataclass
class DocServer:
    srv: ServerProcess
    key: str
    home: Path  # the shell examples' working directory: data/local-api-key
    root: Path  # the artifact root
    workers: int = os.cpu_count() or 1  # the server's default, as make run gives none

    @property
    def newest(self) -> str:
        return complete_versions(self.root)[-1].name

    @property
    def has_older(self) -> bool:
        """Whether Rollback has somewhere to go (a fresh `make run` has one version)."""
        return len(complete_versions(self.root)) > 1


def make_run_commands(data: Path, artifacts: Path) -> tuple[list[str], list[str]]:
    """`make run`'s key command and its server's flags, as `make -n run` prints them for
    ``data`` and ``artifacts`` (a free web port; this interpreter as the venv's)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        web_port = s.getsockname()[1]
    py = sys.executable
    make_vars = (f"PY={py}", f"DATA={data}", f"ARTIFACTS={artifacts}", f"WEB_PORT={web_port}")
    done = subprocess.run(
        ["make", "-n", "run", *make_vars],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lines = done.stdout.splitlines()
    server = [shlex.split(ln) for ln in lines if ln.startswith(f"{py} -m server")]
    keys = [argv for argv in server if argv[3:4] == ["keys"]]
    serve = [argv[3:] for argv in server if argv[3:4] != ["keys"]]
    assert len(keys) == 1 and len(serve) == 1, f"make -n run changed:\n{done.stdout}"
    return keys[0], serve[0]


@pytest.fixture(scope="module")
def server(tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocServer]:
    base = tmp_path_factory.mktemp("docs")
    root = base / "artifacts"
    root.mkdir()
    shutil.copytree(tiny_artifact, root / tiny_artifact.name)  # `make run` trains one
    home = base / "home"
    (home / "data").mkdir(parents=True)
    keys_cmd, flags = make_run_commands(home / "data", root)
    subprocess.run(
        keys_cmd,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
        capture_output=True,
        timeout=60,
    )
    key = (home / "data" / "local-api-key").read_text().strip()
    # workers=0: the server's default, as `make run` gives no --workers
    with running_server(root, base / "work", workers=0, extra_args=tuple(flags)) as srv:
        srv.wait_health(health_pb2.HealthCheckResponse.SERVING)
        doc = DocServer(srv, key, home, root)
        settle(doc)
        yield doc


def settle(doc: DocServer, timeout: float = 60.0) -> None:
    """Wait until every worker serves the newest version, unpinned (an example may have
    rolled back; the fleet view lists each worker of the server)."""
    deadline = time.monotonic() + timeout
    newest = doc.newest
    with BookrecClient(doc.srv.target, api_key=doc.key, retry=NO_RETRY) as client:
        while True:
            status = client.get_status()
            workers = {(w.serving_version, w.pinned_version) for w in status.fleet}
            every = len(status.fleet) == doc.workers
            if every and status.serving_version == newest and workers == {(newest, "")}:
                return
            assert time.monotonic() < deadline, f"still serving {status}"
            time.sleep(0.1)


def node_modules() -> Path:
    """The Node example's pinned packages, installed from its lock file when absent."""
    modules = NODE_DIR / "node_modules"
    if not (modules / "@grpc" / "grpc-js").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR)],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return modules


def run_block(block: Block, doc: DocServer, tmp: Path) -> subprocess.CompletedProcess[str]:
    code = block.code.replace(DOC_TARGET, doc.srv.target)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BOOKREC_API_KEY": doc.key,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "NO_COLOR": "1",
    }
    env.pop("COLUMNS", None)
    if block.lang == "python":
        path, cmd, cwd = tmp / "example.py", [sys.executable, "example.py"], tmp
    elif block.lang == "sh":
        setup = SETUP.code.replace(DOC_TARGET, doc.srv.target)
        code = "set -euo pipefail\n" + setup + code
        path, cmd, cwd = tmp / "example.sh", ["bash", str(tmp / "example.sh")], doc.home
    elif block.lang == "js":
        env["NODE_PATH"] = str(node_modules())
        path, cmd, cwd = tmp / "example.js", ["node", str(tmp / "example.js")], ROOT
    else:
        raise AssertionError(f"docs/clients.md line {block.line}: no runner for {block.lang}")
    path.write_text(code)
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False
    )


NOTHING_OLDER = "no loadable version older than"
ROLLBACK = [b for b in RUN if "rollback" in b.code.lower()]


# Calls one example may make: the page's examples stay cheap to copy (a 5-book page of
# 'the' with --all was 1,673 calls on make run's model).
MAX_CALLS = 40


def calls_served(doc: DocServer) -> int:
    """Calls the server has answered so far (its JSON access lines), once they stop
    arriving (a worker writes its line as the call ends)."""
    last = -1
    for _ in range(50):
        now = doc.srv.log.read_text().count('"event":"rpc"')
        if now == last:
            return now
        last = now
        time.sleep(0.2)
    return last


def check_example(block: Block, doc: DocServer, tmp: Path) -> None:
    """Run ``block`` as written; it must succeed and show what the page says it shows."""
    older = doc.has_older
    before = calls_served(doc)
    done = run_block(block, doc, tmp)
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"docs/clients.md line {block.line}:\n{out[-4000:]}"
    assert "Traceback" not in done.stderr, out
    made = calls_served(doc) - before
    assert made <= MAX_CALLS, f"docs/clients.md line {block.line}: {made} calls"
    # Enums print by name: a reply's source is SOURCE_..., never a bare number.
    assert not re.search(r"^\d+ \[", done.stdout, re.M), out
    if "sci-fi" in block.code:
        assert "did you mean 'science-fiction'" in out, out
    if block in ROLLBACK:
        # One version: FAILED_PRECONDITION, said so; two: rolled back.
        assert (NOTHING_OLDER in out) is not older, out
        if block.lang in ("python", "js"):
            assert ("rolled back, pinned" in out) is older, out
            assert "no rollback: " + NOTHING_OLDER in out or older, out
    if 'echo "exit status $?"' in block.code and "python -m clients" in block.code:
        # The CLI's error examples: one readable line each, exit status 1.
        assert done.stdout.count("exit status 1") == block.code.count("|| echo"), out
        assert all(line.startswith("error: ") for line in done.stderr.splitlines()), out
    if "-format-error" in block.code:
        assert "exit status 67" in done.stdout and "favourite_subjects[0]" in out, out
    settle(doc)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("block", RUN, ids=[b.name for b in RUN])
def test_every_example_runs(block: Block, server: DocServer, tmp_path: Path) -> None:
    check_example(block, server, tmp_path)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("block", ROLLBACK, ids=[b.name for b in ROLLBACK])
def test_rollback_examples_once_an_older_version_exists(
    block: Block, server: DocServer, tmp_path: Path
) -> None:
    if not server.has_older:  # as `make train` after `make run` would
        publish_copy(server.root)
        settle(server)
    check_example(block, server, tmp_path)


def test_the_page_calls_every_rpc_in_every_way() -> None:
    text = DOC.read_text()
    sections = {
        name: text.split(f"## {name}", 1)[1].split("\n## ", 1)[0]
        for name in ("Python, blocking", "Command line", "grpcurl", "Node")
    }
    methods = {
        "Recommend": ("recommend(", "recommend ", '"Recommend"'),
        "Similar": ("similar(", "similar ", '"Similar"'),
        "ColdStart": ("cold_start(", "cold-start ", '"ColdStart"'),
        "GetBook": ("get_book(", "book --book", '"GetBook"'),
        "SearchBooks": ("search_books(", "search ", '"SearchBooks"'),
        "ListSubjects": ("iter_subjects(", "subjects ", '"ListSubjects"'),
        "RateBook": ("rate_book(", "rate ", '"RateBook"'),
        "GetStatus": ("get_status(", "status", '"GetStatus"'),
        "PinVersion": ("pin_version(", "pin ", '"PinVersion"'),
        "Unpin": ("unpin(", "unpin", '"Unpin"'),
        "Rollback": ("rollback(", "rollback", '"Rollback"'),
    }
    contract = {
        f"{service.full_name}/{method.name}"
        for module in (admin_pb2, catalog_pb2, feedback_pb2, recommender_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert {rpc.rsplit("/", 1)[1] for rpc in contract} == set(methods), "a new RPC: document it"
    for rpc in contract:
        python, cli, node = methods[rpc.rsplit("/", 1)[1]]
        assert python in sections["Python, blocking"], rpc
        assert f'python -m clients --target "$TARGET" {cli}' in sections["Command line"] or (
            f"--json {cli}" in sections["Command line"]
        ), rpc
        assert rpc in sections["grpcurl"], rpc
        assert node in sections["Node"], rpc
