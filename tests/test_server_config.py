"""Server settings: defaults < BOOKREC_* environment < flags, with clear errors."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from server.config import ServerConfig, parse_args
from tests.fault_table import record_fault


def test_environment_switches_parse_as_words_and_bad_ones_are_refused() -> None:
    assert ServerConfig.from_env({}).compile_reranker is True
    assert ServerConfig.from_env({"BOOKREC_COMPILE_RERANKER": "0"}).compile_reranker is False
    assert ServerConfig.from_env({"BOOKREC_COMPILE_RERANKER": "yes"}).compile_reranker is True
    with pytest.raises(SystemExit, match="BOOKREC_COMPILE_RERANKER='maybe': expected 1/0, true"):
        ServerConfig.from_env({"BOOKREC_COMPILE_RERANKER": "maybe"})
    env = {"BOOKREC_MAX_CONNECTION_AGE_SECONDS": "60"}
    assert ServerConfig.from_env(env).max_connection_age_seconds == 60.0


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOKREC_COMPILE_RERANKER", "1")
    monkeypatch.setenv("BOOKREC_MAX_CONNECTION_AGE_SECONDS", "60")
    cfg = parse_args(["--no-compile-reranker", "--max-connection-age-seconds", "0"])
    assert cfg.compile_reranker is False
    assert cfg.max_connection_age_seconds == 0.0
    assert parse_args([]).compile_reranker is True


def test_where_pipelines_compute_is_set_by_env_or_flag_and_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert (parse_args([]).pipeline_offload, parse_args([]).compute_threads) == ("auto", 1)
    monkeypatch.setenv("BOOKREC_PIPELINE_OFFLOAD", "never")
    monkeypatch.setenv("BOOKREC_COMPUTE_THREADS", "2")
    assert (parse_args([]).pipeline_offload, parse_args([]).compute_threads) == ("never", 2)
    assert parse_args(["--pipeline-offload", "always"]).pipeline_offload == "always"
    monkeypatch.setenv("BOOKREC_PIPELINE_OFFLOAD", "sometimes")
    with pytest.raises(SystemExit, match="OFFLOAD='sometimes': expected one of auto, always"):
        parse_args([])
    monkeypatch.delenv("BOOKREC_PIPELINE_OFFLOAD")
    with pytest.raises(SystemExit, match="--compute-threads=0: expected a whole number >= 1"):
        parse_args(["--compute-threads", "0"])


def test_batching_is_set_by_env_or_flag_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = parse_args([])
    assert (cfg.batching, cfg.batch_wait_ms, cfg.max_batch) == (True, 1.0, 32)
    monkeypatch.setenv("BOOKREC_BATCHING", "0")
    monkeypatch.setenv("BOOKREC_BATCH_WAIT_MS", "2.5")
    monkeypatch.setenv("BOOKREC_MAX_BATCH", "8")
    cfg = parse_args([])
    assert (cfg.batching, cfg.batch_wait_ms, cfg.max_batch) == (False, 2.5, 8)
    cfg = parse_args(["--batching", "--batch-wait-ms", "0", "--max-batch", "4"])
    assert (cfg.batching, cfg.batch_wait_ms, cfg.max_batch) == (True, 0.0, 4)
    assert parse_args(["--no-batching"]).batching is False
    with pytest.raises(SystemExit, match="--max-batch=0: expected a whole number >= 1"):
        parse_args(["--max-batch", "0"])
    with pytest.raises(SystemExit, match=re.escape("--batch-wait-ms=-1.0: expected a number >= 0")):
        parse_args(["--batch-wait-ms", "-1"])


def test_the_core_backlog_and_streams_per_connection_are_set_and_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = parse_args([])
    assert (cfg.max_core_backlog, cfg.max_streams_per_connection) == (10_000, 1000)
    monkeypatch.setenv("BOOKREC_MAX_CORE_BACKLOG", "500")
    cfg = parse_args(["--max-streams-per-connection", "20"])
    assert (cfg.max_core_backlog, cfg.max_streams_per_connection) == (500, 20)
    with pytest.raises(SystemExit, match="--max-core-backlog=0: expected a whole number >= 1"):
        parse_args(["--max-core-backlog", "0"])


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_taken_port_is_one_line_with_the_fix(workers: str, tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        flags = ["--port", str(port), "--workers", workers, "--artifacts", str(tmp_path)]
        done = subprocess.run(
            [sys.executable, "-m", "server", *flags],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert f"server: cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "--port N or BOOKREC_PORT=N" in done.stderr
    assert "Traceback" not in done.stderr


PORT = "expected a port 1..65535, or 0"
COUNT = "expected a whole number >= 1, or 0 (one per core)"


@pytest.mark.parametrize(
    ("flags", "env", "line"),
    [
        ([], {"BOOKREC_PORT": "70000"}, f"BOOKREC_PORT=70000: {PORT} (any free port)"),
        ([], {"BOOKREC_PORT": "50o51"}, "BOOKREC_PORT='50o51': expected a whole number"),
        ([], {"BOOKREC_WEB_PORT": "-8080"}, f"BOOKREC_WEB_PORT=-8080: {PORT} (off)"),
        ([], {"BOOKREC_WORKERS": "-2"}, f"BOOKREC_WORKERS=-2: {COUNT}"),
        ([], {"BOOKREC_POLL_SECONDS": "nan"}, "BOOKREC_POLL_SECONDS='nan': expected a number"),
        (["--metrics-port", "65536"], {}, f"--metrics-port=65536: {PORT} (off)"),
        (["--workers", "-1"], {"BOOKREC_WORKERS": "2"}, f"--workers=-1: {COUNT}"),
        (["--bucket-poll-seconds", "0"], {}, "--bucket-poll-seconds=0.0: expected a number > 0"),
    ],
)
def test_a_bad_setting_stops_the_server_with_one_line_naming_it(
    flags: list[str], env: dict[str, str], line: str, tmp_path: Path
) -> None:
    """The real server process: exit 1, one line on stderr, no traceback, nothing served."""
    done = subprocess.run(
        [sys.executable, "-m", "server", "--artifacts", str(tmp_path), *flags],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )
    assert (done.returncode, done.stderr.splitlines()) == (1, [f"server: {line}"])
    given = " ".join(flags) or " ".join(f"{k}={v}" for k, v in env.items())
    record_fault(f"bad setting {given}", f"exit 1 before serving, one line: {line}")
