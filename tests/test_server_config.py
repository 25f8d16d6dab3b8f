"""Server settings: defaults < BOOKREC_* environment < flags, with clear errors."""

from __future__ import annotations

import pytest

from server.config import ServerConfig, parse_args


def test_environment_switches_parse_as_words_and_bad_ones_are_refused() -> None:
    assert ServerConfig.from_env({}).compile_reranker is True
    assert ServerConfig.from_env({"BOOKREC_COMPILE_RERANKER": "0"}).compile_reranker is False
    assert ServerConfig.from_env({"BOOKREC_COMPILE_RERANKER": "yes"}).compile_reranker is True
    with pytest.raises(SystemExit, match="BOOKREC_COMPILE_RERANKER='maybe': expected bool"):
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
