""" "Did you mean": the known names closest to an unknown one, for error messages.

difflib alone misses abbreviations (``sci-fi`` is 0.57 similar to ``science
fiction``, under its 0.6 cut-off), so names whose words each start with the query's
words (``sci fi`` -> ``science fiction``) come first, then difflib's close matches.
Runs on the error path only."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def _word_prefixes(query: list[str], name: str) -> bool:
    words = name.split()
    return len(words) == len(query) and all(
        w.startswith(q) for q, w in zip(query, words, strict=True)
    )


def close_names(query: str, names: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` of ``names`` a user typing ``query`` most likely meant (both sides
    already normalised the same way), best first."""
    pool = list(names)
    words = query.split()
    found = [name for name in pool if words and _word_prefixes(words, name)][:n]
    for name in difflib.get_close_matches(query, pool, n=n):
        if name not in found:
            found.append(name)
    return found[:n]
