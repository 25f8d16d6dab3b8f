"""ALS points written as a grid, which the settings study tries first (--als-grid).

A grid is written ``"factors=64,128;alpha=5,20;scheme=rating,log"``: one
``name=v1,v2`` group per ALSParams field; every combination is one point.
"""

from __future__ import annotations

import itertools
from dataclasses import fields, replace
from typing import Any

from trainer.errors import InputError
from trainer.models.als import ALSParams


def parse_grid(text: str, base: ALSParams) -> list[ALSParams]:
    kinds = {f.name: type(getattr(base, f.name)) for f in fields(ALSParams)}
    axes: list[list[tuple[str, Any]]] = []
    for group in filter(None, (g.strip() for g in text.split(";"))):
        name, _, values = group.partition("=")
        name = name.strip()
        if name not in kinds or name in ("seed", "threads", "engine", "regularization_scaling"):
            raise InputError(f"ALS grid: unknown field {name!r} in {group!r}")
        try:
            axes.append([(name, kinds[name](v.strip())) for v in values.split(",") if v.strip()])
        except ValueError as e:
            raise InputError(f"ALS grid: bad value in {group!r}: {e}") from e
    return [replace(base, **dict(combo)) for combo in itertools.product(*axes)] or [base]
