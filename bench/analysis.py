"""Turn a run's samples into figures: per-RPC latency, throughput, errors, versions.

Every table row carries the floor (health checks sent in the same run, over the
same channels) so a reader can tell the server's work from gRPC, Python and the
client's own overhead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.loadgen import RunResult, Sample
from bench.stats import summarize
from bench.workload import FLOOR


def kind_rows(result: RunResult) -> list[dict[str, Any]]:
    """One row per RPC kind (the floor last): counts, errors by code, rate, percentiles."""
    by_kind: dict[str, list[Sample]] = {}
    for s in result.samples:
        by_kind.setdefault(s.kind, []).append(s)
    rows = []
    for kind in sorted(by_kind, key=lambda k: (k == FLOOR, k)):
        samples = by_kind[kind]
        ok = [s for s in samples if s.code == "OK"]
        errors = Counter(s.code for s in samples if s.code != "OK")
        row: dict[str, Any] = {
            "rpc": kind,
            "mode": result.mode,
            # What the schedule actually offered (Poisson counts vary around rate x share).
            "offered_rps": (
                round(len(samples) / result.duration, 2) if result.mode == "open" else None
            ),
            "concurrency": result.concurrency,
            "channels": result.channels,
            "requests": len(samples),
            "ok": len(ok),
            "errors": dict(sorted(errors.items())),
            "error_examples": _examples(samples),
            "achieved_rps": round(len(ok) / result.elapsed, 2),
            "latency": summarize(s.latency for s in ok).as_dict(),
            "send_lag_p99_ms": summarize(s.sent - s.intended for s in samples).as_dict()["p99_ms"],
        }
        rows.append(row)
    return rows


def _examples(samples: Iterable[Sample]) -> dict[str, str]:
    """The first status details seen per error code: enough to start debugging."""
    out: dict[str, str] = {}
    for s in samples:
        if s.code != "OK" and s.code not in out:
            out[s.code] = s.detail[:200]
    return out


def total_errors(result: RunResult) -> dict[str, int]:
    return dict(sorted(Counter(s.code for s in result.samples if s.code != "OK").items()))


@dataclass(frozen=True)
class ChannelVersions:
    """The model versions one channel's replies carried, in the order requests were sent."""

    channel: int
    sequence: list[str]  # distinct consecutive versions
    regressions: int  # replies older than a version this channel had already seen

    @property
    def forward_only(self) -> bool:
        return self.regressions == 0


def channel_versions(samples: Iterable[Sample]) -> list[ChannelVersions]:
    """Per channel, ordered by send time (one channel = one connection = one server process).

    A request reads the model at its start, so a request sent before a swap may
    legitimately *finish* after a newer reply; ordering by send time avoids
    calling that a regression. Version names sort by age."""
    by_channel: dict[int, list[Sample]] = {}
    for s in samples:
        if s.version:
            by_channel.setdefault(s.channel, []).append(s)
    out = []
    for channel in sorted(by_channel):
        sequence: list[str] = []
        newest = ""
        regressions = 0
        for s in sorted(by_channel[channel], key=lambda s: s.sent):
            if s.version < newest:
                regressions += 1
                continue
            newest = s.version
            if not sequence or sequence[-1] != s.version:
                sequence.append(s.version)
        out.append(ChannelVersions(channel, sequence, regressions))
    return out


@dataclass(frozen=True)
class SwapWindow:
    version: str
    published: float  # perf_counter when the rename happened
    served: float | None  # when every channel that kept talking had a reply of it

    @property
    def seconds(self) -> float | None:
        return None if self.served is None else self.served - self.published


def swap_windows(
    samples: Sequence[Sample], published: Sequence[tuple[str, float]]
) -> list[SwapWindow]:
    """From each publish until the last channel's first reply carrying that version (or newer)."""
    channels = {s.channel for s in samples if s.version}
    windows = []
    for version, at in published:
        firsts: dict[int, float] = {}
        for s in samples:
            if s.version and s.version >= version and s.done >= at:
                firsts[s.channel] = min(firsts.get(s.channel, s.done), s.done)
        served = max(firsts.values()) if channels and set(firsts) >= channels else None
        windows.append(SwapWindow(version, at, served))
    return windows


def in_windows(t: float, windows: Sequence[SwapWindow], end: float) -> bool:
    """Whether time ``t`` falls inside a swap window (an unfinished one lasts until ``end``)."""
    return any(w.published <= t <= (w.served if w.served is not None else end) for w in windows)
