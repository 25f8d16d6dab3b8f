"""Catalogue queries: search by words in title/author, list subjects."""

from __future__ import annotations

import numpy as np

from server.engine.bundle import Bundle
from server.engine.ranking import allowed_mask
from server.engine.types import Filters


def search_books(bundle: Bundle, query: str, filters: Filters) -> list[int]:
    """All matching books, most popular first (the caller pages through them)."""
    words = query.lower().split()
    mask = allowed_mask(bundle, filters)
    hits = [
        i
        for i, text in enumerate(bundle.search_text.rows())
        if all(w in text for w in words) and (mask is None or mask[i])
    ]
    pop = np.asarray(bundle.popularity)
    return sorted(hits, key=lambda i: (-float(pop[i]), i))


def list_subjects(bundle: Bundle, query: str) -> list[tuple[int, int]]:
    """(subject_idx, book_count) matching the query, most common first."""
    counts = np.diff(bundle.subject_books_indptr)
    q = query.strip().lower()
    hits = [
        (s, int(counts[s]))
        for s in range(bundle.n_subjects)
        if not q or q in bundle.subject_names[s].lower() or q in bundle.subject_ids[s]
    ]
    return sorted(hits, key=lambda t: (-t[1], t[0]))
