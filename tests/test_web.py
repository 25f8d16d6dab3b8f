"""The web page against a real server: the built page in headless Chromium (the flows in
tests/web/flows.mjs), and the gRPC-Web gateway's own answers over plain HTTP.

Screenshots of each page go to tests/artifacts/web/ (git-ignored).
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2

from bookrec.artifact import read_manifest
from bookrec.v1 import catalog_pb2, feedback_pb2, recommender_pb2
from server.web import grpcweb
from tests.keyfile import make_keys
from tests.serverproc import ROOT, ServerProcess, running_server

WEB = ROOT / "clients" / "web"
SHOTS = ROOT / "tests" / "artifacts" / "web"
FLOWS = ROOT / "tests" / "web" / "flows.mjs"
CHROMIUM = Path("/usr/bin/chromium")
SERVING = health_pb2.HealthCheckResponse.SERVING


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def built_page() -> Path:
    """clients/web built as `make web` does (npm ci when needed, tsc --noEmit, vite)."""
    npm = shutil.which("npm")
    assert npm, "npm is needed to build the web page (apt-get install nodejs npm)"
    if not (WEB / "node_modules" / ".bin" / "vite").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True)
    subprocess.run([npm, "run", "build"], cwd=WEB, check=True, capture_output=True)
    assert (WEB / "dist" / "index.html").is_file()
    return WEB / "dist"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "keys.jsonl"
    return path, make_keys(path, {"web": {"scopes": ["read", "write"]}})["web"]


def _start(
    stack: ExitStack, artifacts: Path, workdir: Path, web_port: int, keys: Path, workers: int = 1
) -> ServerProcess:
    args = ("--web-port", str(web_port), "--keys-file", str(keys))
    srv = stack.enter_context(running_server(artifacts, workdir, workers, extra_args=args))
    srv.wait_health(SERVING)
    return srv


def _run_flow(flow: str, base: str, key: str, on_ask: dict[str, object], *extra: str) -> str:
    """Runs one browser flow; answers its "ask: X" lines by calling on_ask[X]()."""
    out: list[str] = []
    with subprocess.Popen(
        ["node", str(FLOWS), flow, base, key, str(SHOTS), *extra],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            if line.startswith("ask: "):
                action = on_ask[line.removeprefix("ask: ").strip()]
                assert callable(action)
                action()
                proc.stdin.write("done\n")
                proc.stdin.flush()
        code = proc.wait(timeout=60)
    text = "".join(out)
    assert code == 0, f"browser flow {flow} failed:\n{text}"
    assert f"flow {flow}: passed" in text
    return text


def popularity_default(artifact: Path) -> float:
    """The cold-start popularity weight the trainer chose, from the artifact's manifest."""
    return float(read_manifest(artifact).params["cold_start_popularity_weight"])


def test_search_similar_rate_recommend_cold_start(
    built_page: Path,
    tiny_artifact: Path,
    artifact_root: Path,
    tmp_path: Path,
    keys: tuple[Path, str],
) -> None:
    """Two workers share the web port (SO_REUSEPORT), as `make run` serves it. The
    popularity slider must start at the model's default, which is not the slider's
    middle (the page showed 0.5 as "model default")."""
    assert CHROMIUM.exists(), "apt-get install chromium"
    default = popularity_default(tiny_artifact)
    assert abs(default - 0.5) > 0.05, "pick a tiny model whose default is not 0.5"
    port = free_port()
    with ExitStack() as stack:
        _start(stack, artifact_root, tmp_path / "srv", port, keys[0], workers=2)
        base = f"http://127.0.0.1:{port}/"
        _run_flow("main", base, keys[1], {}, repr(default))
    shots = ("search", "error", "book", "for-you", "cold-start", "phone", "phone-search")
    for name in shots:
        assert (SHOTS / f"web-{name}.png").stat().st_size > 0


def test_server_down_shows_message_and_recovers(
    built_page: Path, artifact_root: Path, tmp_path: Path, keys: tuple[Path, str]
) -> None:
    port = free_port()
    with ExitStack() as stack:
        first = _start(stack, artifact_root, tmp_path / "srv", port, keys[0])

        def stop() -> None:
            assert first.stop() == 0

        def start() -> None:
            _start(stack, artifact_root, tmp_path / "srv", port, keys[0])

        text = _run_flow(
            "outage", f"http://127.0.0.1:{port}/", keys[1], {"stop": stop, "start": start}
        )
    assert "the no-key message appears once (1 times)" in text
    assert "server back: the message goes by itself" in text
    assert (SHOTS / "web-offline.png").stat().st_size > 0


# The gateway over plain HTTP: the same handlers, interceptors and status codes.


@pytest.fixture(scope="module")
def web_server(
    tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, str]]:
    work = tmp_path_factory.mktemp("web-gateway")
    keys = work / "keys.jsonl"
    key = make_keys(keys, {"reader": {"scopes": ["read"]}})["reader"]
    port = free_port()
    with ExitStack() as stack:
        _start(stack, tiny_artifact.parent, work, port, keys)
        yield port, key


def _post(
    port: int, path: str, message: bytes, key: str = "", ctype: str = grpcweb.CONTENT_TYPES[1]
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"content-type": ctype}
    if key:
        headers["authorization"] = f"Bearer {key}"
    conn.request("POST", path, body=grpcweb.frame(grpcweb.DATA, message), headers=headers)
    try:
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def _frames(body: bytes) -> tuple[bytes | None, dict[str, str]]:
    message, trailers, at = None, {}, 0
    while at < len(body):
        flag, length = grpcweb.HEADER.unpack_from(body, at)
        payload = body[at + grpcweb.HEADER.size : at + grpcweb.HEADER.size + length]
        at += grpcweb.HEADER.size + length
        if flag == grpcweb.TRAILERS:
            for line in payload.decode().split("\r\n"):
                if line:
                    name, _, value = line.partition(": ")
                    trailers[name] = value
        else:
            message = payload
    return message, trailers


SEARCH = "/bookrec.v1.CatalogService/SearchBooks"


def test_gateway_relays_a_call(web_server: tuple[int, str]) -> None:
    port, key = web_server
    status, body = _post(
        port, SEARCH, catalog_pb2.SearchBooksRequest(page_size=3).SerializeToString(), key
    )
    message, trailers = _frames(body)
    assert status == 200 and trailers["grpc-status"] == "0"
    assert message is not None
    reply = catalog_pb2.SearchBooksResponse.FromString(message)
    assert len(reply.books) == 3 and reply.model_version
    assert trailers.get("x-request-id")  # the access log interceptor ran on it


def test_cold_start_names_the_models_default_weight(
    web_server: tuple[int, str], tiny_artifact: Path
) -> None:
    """The page reads the popularity slider's default from the ColdStart reply."""
    port, key = web_server
    for asked in (
        recommender_pb2.ColdStartRequest(),
        recommender_pb2.ColdStartRequest(favourite_subjects=["romance"], popularity_weight=0.25),
    ):
        path = "/bookrec.v1.RecommenderService/ColdStart"
        _, body = _post(port, path, asked.SerializeToString(), key)
        message, trailers = _frames(body)
        assert trailers["grpc-status"] == "0", trailers
        assert message is not None
        reply = recommender_pb2.ColdStartResponse.FromString(message)
        want = popularity_default(tiny_artifact)
        assert reply.default_popularity_weight == pytest.approx(want, abs=1e-6)


def test_gateway_applies_auth_and_the_handlers_validation(web_server: tuple[int, str]) -> None:
    port, key = web_server
    request = catalog_pb2.SearchBooksRequest().SerializeToString()
    _, body = _post(port, SEARCH, request)
    message, trailers = _frames(body)
    assert message is None and trailers["grpc-status"] == "16"  # UNAUTHENTICATED
    assert "API key" in trailers["grpc-message"]
    bad = recommender_pb2.SimilarRequest(book_id="x", k=1000).SerializeToString()
    _, body = _post(port, "/bookrec.v1.RecommenderService/Similar", bad, key)
    _, trailers = _frames(body)
    assert trailers["grpc-status"] == "3", trailers  # INVALID_ARGUMENT, from the handler
    rate = feedback_pb2.RateBookRequest(user_id="u", book_id="x", rating=5).SerializeToString()
    _, body = _post(port, "/bookrec.v1.FeedbackService/RateBook", rate, key)
    assert _frames(body)[1]["grpc-status"] == "7"  # PERMISSION_DENIED: a read key


def test_gateway_refuses_what_it_does_not_relay(web_server: tuple[int, str]) -> None:
    port, key = web_server
    _, body = _post(port, "/grpc.reflection.v1alpha.ServerReflection/Info", b"", key)
    assert _frames(body)[1]["grpc-status"] == "12"  # UNIMPLEMENTED: not on the web
    status, _ = _post(port, SEARCH, b"", key, ctype="application/json")
    assert status == 415
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/")
    page = conn.getresponse()
    html, csp = page.read(), page.getheader("content-security-policy") or ""
    conn.close()
    assert page.status == 200 and b'<div id="banner"' in html
    assert "default-src 'self'" in csp


def test_grpc_web_framing() -> None:
    assert grpcweb.unary_request(grpcweb.frame(0, b"abc")) == b"abc"
    for bad in (b"", b"\x01\x00\x00\x00\x01a", b"\x00\x00\x00\x00\x05abc"):
        with pytest.raises(grpcweb.BadFrame):
            grpcweb.unary_request(bad)
    trailer = grpcweb.trailer_frame(5, "no book 'é%'\n", [("x-a", "1"), ("d-bin", b"\x00\xff")])
    text = trailer[grpcweb.HEADER.size :].decode()
    assert "grpc-status: 5\r\n" in text and "grpc-message: no book '%C3%A9%25'%0A\r\n" in text
    assert "d-bin: AP8\r\n" in text and "x-a: 1\r\n" in text
    assert grpcweb.timeout_seconds("250m", 30) == 0.25
    assert grpcweb.timeout_seconds("5H", 30) == 30
    assert grpcweb.timeout_seconds("junk", 30) == 30


def test_web_port_taken_is_one_line(artifact_root: Path, tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "server",
                "--port",
                "0",
                "--workers",
                "1",
                "--artifacts",
                str(artifact_root),
                "--feedback-log",
                str(tmp_path / "fb.jsonl"),
                "--web-port",
                str(port),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert proc.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port} for the web page" in proc.stderr
    assert "Traceback" not in proc.stderr
