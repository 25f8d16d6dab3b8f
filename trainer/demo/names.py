"""Distinct author, series and publisher names and plausible titles from word templates.

Why: joins and de-duplication in the trainer key on names and titles, so the generator
needs many distinct, natural-looking strings quickly and deterministically; filling
templates column-wise from WORD_POOLS does that without a Python loop per word.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

import numpy as np

from trainer.demo.words import (
    ADJECTIVES,
    FIRST_NAMES,
    LAST_NAMES,
    NOUNS,
    PLACES,
    PUBLISHER_SUFFIXES,
    SERIES_SUFFIXES,
    VERBS,
)


def _unique_strings(
    rng: np.random.Generator, n: int, templates: Sequence[Sequence[str]]
) -> list[str]:
    """``n`` distinct strings from word templates; each retry round uses the next (roomier)
    template set, so collisions end quickly and the result stays deterministic."""
    seen: set[str] = set()
    out: list[str] = []
    for attempt in range(100):
        batch = _fill(
            rng, int((n - len(out)) * 1.2) + 8, templates[min(attempt, len(templates) - 1)]
        )
        for name in batch:
            if name not in seen:
                seen.add(name)
                out.append(name)
                if len(out) == n:
                    return out
    raise RuntimeError("name space exhausted")  # pragma: no cover - spaces are far larger


LETTERS = tuple(string.ascii_uppercase)
# Word pools by template field; {m} and {l2}/{l3} are second draws from the same pools.
WORD_POOLS: dict[str, tuple[str, ...]] = {
    "a": ADJECTIVES,
    "n": NOUNS,
    "m": NOUNS,
    "p": PLACES,
    "f": FIRST_NAMES,
    "l": LAST_NAMES,
    "l2": LAST_NAMES,
    "l3": LAST_NAMES,
    "v": VERBS,
    "s": SERIES_SUFFIXES[:5],  # Quartet/Trilogy would promise a length
    "u": PUBLISHER_SUFFIXES,
    "i": LETTERS,
    "j": LETTERS,
}


def _fill(
    rng: np.random.Generator,
    k: int,
    templates: Sequence[str],
    weights: Sequence[float] | None = None,
) -> list[str]:
    """``k`` strings, each a random template filled with random words from WORD_POOLS."""
    p = None if weights is None else np.asarray(weights) / sum(weights)
    pick = rng.choice(len(templates), size=k, p=p).tolist()
    # Positional templates ("{0} {3}") format from a tuple: no dict per row.
    positions = {field: f"{{{i}}}" for i, field in enumerate(WORD_POOLS)}
    positional = [t.format_map(positions) for t in templates]
    cols = [
        [pool[i] for i in rng.integers(len(pool), size=k).tolist()] for pool in WORD_POOLS.values()
    ]
    return [
        positional[t].format(*row) for t, row in zip(pick, zip(*cols, strict=True), strict=True)
    ]


AUTHOR_TEMPLATES = (
    ("{f} {l}", "{f} {i}. {l}"),
    ("{f} {i}. {l}", "{f} {i}. {j}. {l}"),
    ("{f} {i}. {j}. {l}",),
)
SERIES_TEMPLATES = (
    ("The {n} {s}", "The {a} {n} {s}", "{p} {s}", "The {n} of {p} {s}"),
    ("The {a} {n} {s}", "The {n} of {p} {s}"),
    ("The {a} {n} of {p} {s}",),
)
PUBLISHER_TEMPLATES = (
    (
        "{l} {u}",
        "{l} &amp; {l2}",  # BX stores '&' as an HTML entity
        "{n} {u}",
        "{a} {n} {u}",
        "{p} University Press",
        "{l}, {l2} and {l3}",
    ),
    ("{l} &amp; {l2}", "{a} {n} {u}", "{l}, {l2} and {l3}"),
    ("{a} {n} {l} {u}",),
)


# Title patterns and their weights; {a} adjective, {n}/{m} nouns, {p} place, {f} first name.
TITLE_PATTERNS = (
    ("The {a} {n}", 0.26),
    ("The {n} of {p}", 0.08),
    ("{n} of the {m}", 0.12),
    ("The {n}'s {m}", 0.07),
    ("{f}'s {n}", 0.06),
    ("A {n} in {p}", 0.06),
    ("{a} {n}", 0.10),
    ("{n} &amp; {m}", 0.03),
    ("The {n} and the {m}", 0.05),
    ("Letters from {p}", 0.02),
    ("{n}: A Novel", 0.05),
    ("When the {n} {v}", 0.05),
    ("The {n}", 0.05),
)


def _titles(rng: np.random.Generator, n: int) -> list[str]:
    """Plausible titles from word lists (with BX's ``&amp;`` where a title has '&')."""
    return _fill(rng, n, [t for t, _ in TITLE_PATTERNS], [w for _, w in TITLE_PATTERNS])
