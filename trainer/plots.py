"""The NDCG@K plot of every evaluated strategy (PNG, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


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
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
