"""Which version to serve next: a pure function, so every rule is a table row in a test.

Rules, in order:
1. A pinned version is served if it exists and has not failed; otherwise the
   current one keeps serving and the reason says why.
2. Unpinned, the newest complete version that has not failed is served, unless
   the current one is newer (a version never goes backwards on its own; only an
   operator's pin or rollback does that).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    load: str | None  # the version to load and swap in; None = keep serving
    reason: str


def decide(
    current: str | None, available: Sequence[str], failed: Collection[str], pin: str | None
) -> Decision:
    if pin:
        if pin == current:
            return Decision(None, f"pinned version {pin} is serving")
        if pin not in available:
            return Decision(None, f"pinned version {pin} is not in the artifact root")
        if pin in failed:
            return Decision(None, f"pinned version {pin} failed to load")
        return Decision(pin, f"pinned to {pin}")
    loadable = sorted(v for v in available if v not in failed)
    if not loadable:
        return Decision(None, "no loadable version")
    newest = loadable[-1]
    if current is not None and newest <= current:
        return Decision(None, f"{current} is the newest loadable version")
    return Decision(newest, f"newer version {newest}")


def rollback_target(current: str | None, available: Sequence[str], failed: Collection[str]) -> str:
    """The newest loadable version older than the current one."""
    older = sorted(v for v in available if v not in failed and current and v < current)
    if not older:
        raise LookupError(f"no loadable version older than {current} to roll back to")
    return older[-1]
