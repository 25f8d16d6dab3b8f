"""Markdown tables and PNG plots of load results (matplotlib, Agg: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.analysis import SwapWindow
from bench.loadgen import Sample
from bench.workload import FLOOR

LATENCY_COLUMNS = ("p50_ms", "p90_ms", "p99_ms", "p99.9_ms")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "0"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """``columns``: (header, key) pairs; a key may reach into a nested dict as 'a.b'."""

    def get(row: dict[str, Any], key: str) -> Any:
        if key in row:
            return row[key]
        head, _, rest = key.partition(".")
        inner = row.get(head)
        return get(inner, rest) if isinstance(inner, dict) and rest else None

    lines = [
        "| " + " | ".join(h for h, _ in columns) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|",
    ]
    lines += ["| " + " | ".join(_fmt(get(r, k)) for _, k in columns) + " |" for r in rows]
    return "\n".join(lines)


def with_floor(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the RPCs (the floor's own row dropped) with the floor's figures beside them."""
    floor = next((r for r in rows if r["rpc"] == FLOOR), None)
    out = []
    for r in rows:
        if r["rpc"] == FLOOR:
            continue
        latency = floor["latency"] if floor else {}
        out.append(
            {
                **r,
                "floor_p50_ms": latency.get("p50_ms"),
                "floor_p99_ms": latency.get("p99_ms"),
            }
        )
    return out


def error_notes(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One line per (RPC, code) with the server's first message, for the tables' errors."""
    seen: dict[tuple[str, str], str] = {}
    for r in rows:
        for code, detail in (r.get("error_examples") or {}).items():
            seen.setdefault((r.get("rpc", "?"), code), detail)
    return [f"- {rpc} {code}: {detail or '(no details)'}" for (rpc, code), detail in seen.items()]


LOAD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("rpc", "rpc"),
    ("offered/s", "offered_rps"),
    ("achieved/s", "achieved_rps"),
    ("requests", "requests"),
    ("errors", "errors"),
    ("p50 ms", "latency.p50_ms"),
    ("p90 ms", "latency.p90_ms"),
    ("p99 ms", "latency.p99_ms"),
    ("p99.9 ms", "latency.p99.9_ms"),
    ("floor p50", "floor_p50_ms"),
    ("floor p99", "floor_p99_ms"),
)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_knee(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """p50 and p99 against offered rate, one colour per RPC, floor p99 dashed."""
    _plot_latency_by(
        rows,
        "target_rps",
        path,
        "offered requests/s",
        "open-loop latency by rate (dashed: health-check floor p99, same run)",
    )


def _plot_latency_by(
    rows: Sequence[dict[str, Any]], x: str, path: Path, xlabel: str, title: str
) -> None:
    """p99 (solid), p50 (dotted) and the floor's p99 (dashed) against ``x``, a colour
    per RPC, both axes logarithmic."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for rpc in sorted({r["rpc"] for r in rows}):
        mine = sorted((r for r in rows if r["rpc"] == rpc), key=lambda r: r[x])
        xs = [r[x] for r in mine]
        (line,) = ax.plot(xs, [r["latency"]["p99_ms"] for r in mine], "o-", label=f"{rpc} p99")
        colour = line.get_color()
        ax.plot(xs, [r["latency"]["p50_ms"] for r in mine], ".:", color=colour, label=f"{rpc} p50")
        ax.plot(xs, [r["floor_p99_ms"] for r in mine], "--", color=colour, alpha=0.5)
    ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="latency ms")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_percentiles(samples: Sequence[Sample], path: Path, title: str) -> None:
    """Latency by percentile (log 'nines' axis), one line per RPC kind."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    kinds = sorted({s.kind for s in samples}, key=lambda k: (k == FLOOR, k))
    for kind in kinds:
        lat = np.sort([s.latency * 1000 for s in samples if s.kind == kind and s.code == "OK"])
        if len(lat) == 0:
            continue
        q = (np.arange(1, len(lat) + 1) - 0.5) / len(lat)
        ax.plot(1.0 / (1.0 - q), lat, label=kind, linestyle="--" if kind == FLOOR else "-")
    ax.set(xscale="log", yscale="log", xlabel="percentile", ylabel="latency ms", title=title)
    ax.set_xticks([1, 2, 10, 100, 1000], ["0%", "50%", "90%", "99%", "99.9%"])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_reload(
    samples: Sequence[Sample],
    windows: Sequence[SwapWindow],
    rss: Sequence[tuple[float, int]],
    start: float,
    path: Path,
) -> None:
    """Latency of every request over time, swap windows shaded, server RSS below."""
    plt = _pyplot()
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, height_ratios=(3, 1))
    ok = [s for s in samples if s.code == "OK"]
    ax.scatter([s.intended - start for s in ok], [s.latency * 1000 for s in ok], s=2, alpha=0.4)
    bad = [s for s in samples if s.code != "OK"]
    if bad:
        ax.scatter([s.intended - start for s in bad], [1.0] * len(bad), s=12, c="red")
    for w in windows:
        end = w.served if w.served is not None else w.published + 1.0
        for a in (ax, ax2):
            a.axvspan(w.published - start, end - start, color="orange", alpha=0.3)
    ax.set(yscale="log", ylabel="latency ms", title="reload under load (orange: swap windows)")
    ax.grid(True, alpha=0.3)
    ax2.plot([t - start for t, _ in rss], [b / 2**20 for _, b in rss])
    ax2.set(xlabel="seconds", ylabel="server RSS MiB")
    ax2.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scale(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """p50 and p99 against the number of books, one colour per RPC, floor p99 dashed."""
    _plot_latency_by(
        rows,
        "books",
        path,
        "books in the artifact",
        "latency by catalogue size (open loop, fixed rate; dashed: floor p99)",
    )
