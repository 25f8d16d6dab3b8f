"""The plots an artifact carries (PNG, no display needed): the NDCG@K of every
evaluated strategy, and each settings study's trials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def ndcg_curves(curves: dict[str, tuple[float, ...]], path: Path, title: str) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=False)
    for ax, group in zip(axes, ("warm", "cold"), strict=True):
        for name, curve in sorted(curves.items()):
            if name.startswith(group + "/"):
                ax.plot(range(1, len(curve) + 1), curve, label=name.split("/", 1)[1])
        ax.set_title(f"{group} users")
        ax.set_xlabel("K")
        ax.set_ylabel("NDCG@K")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def study_plot(studies: dict[str, Any], path: Path) -> None:
    """Each study's trials: score by trial (best so far as a line), pruned ones marked."""
    fig, axes = plt.subplots(1, max(len(studies), 1), figsize=(5.5 * max(len(studies), 1), 4))
    for ax, (name, study) in zip(np.atleast_1d(axes), sorted(studies.items()), strict=False):
        done = [t for t in study.trials if t["value"] is not None]
        pruned = [t for t in study.trials if t["state"] == "PRUNED"]
        xs = [t["number"] for t in done]
        ys = [t["value"] for t in done]
        ax.scatter(xs, ys, s=14, label="completed")
        if pruned:
            ax.scatter(
                [t["number"] for t in pruned],
                [next(iter(t["intermediate"].values()), 0.0) for t in pruned],
                s=14,
                marker="x",
                label="pruned (its checkpoint score)",
            )
        if ys:
            ax.plot(xs, np.maximum.accumulate(ys), color="black", lw=1, label="best so far")
        ax.set_title(f"{name} study ({len(study.trials)} trials, {study.stopped_by} budget)")
        ax.set_xlabel("trial")
        ax.set_ylabel("NDCG@10, tune half")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
