"""The manager's rules as a table: what to load given current, available, failed and pin."""

from __future__ import annotations

import pytest

from server.engine.decisions import decide, rollback_target

A, B, C = "20260101T000000Z-aaaaaaaa", "20260102T000000Z-bbbbbbbb", "20260103T000000Z-cccccccc"


@pytest.mark.parametrize(
    ("current", "available", "failed", "pin", "load"),
    [
        # nothing served yet: the newest
        (None, [A, B], set(), None, B),
        (None, [], set(), None, None),
        # a new version appears
        (A, [A, B], set(), None, B),
        # already on the newest
        (B, [A, B], set(), None, None),
        # the newest failed: keep serving, never retry it
        (A, [A, B], {B}, None, None),
        # the newest failed, nothing served: the next newest
        (None, [A, B], {B}, None, A),
        # never downgrade on its own, even if the current dir vanished
        (C, [A, B], set(), None, None),
        # pinned to an older version: go there
        (C, [A, B, C], set(), A, A),
        # pinned and serving it: stay, even when newer ones appear
        (A, [A, B, C], set(), A, None),
        # pinned to a version that does not exist or failed: keep serving
        (B, [A, B], set(), C, None),
        (B, [A, B, C], {C}, C, None),
        # unpinned after a rollback: back to the newest
        (A, [A, B, C], set(), None, C),
    ],
)
def test_decide(
    current: str | None, available: list[str], failed: set[str], pin: str | None, load: str | None
) -> None:
    decision = decide(current, available, failed, pin)
    assert decision.load == load
    assert decision.reason


@pytest.mark.parametrize(
    ("current", "available", "failed", "target"),
    [
        (C, [A, B, C], set(), B),
        (C, [A, B, C], {B}, A),
        (B, [A, B, C], set(), A),
    ],
)
def test_rollback_target(current: str, available: list[str], failed: set[str], target: str) -> None:
    assert rollback_target(current, available, failed) == target


@pytest.mark.parametrize(("current", "available"), [(A, [A, B]), (None, [A])])
def test_rollback_without_an_older_version_says_so(
    current: str | None, available: list[str]
) -> None:
    with pytest.raises(LookupError, match="older than"):
        rollback_target(current, available, set())
