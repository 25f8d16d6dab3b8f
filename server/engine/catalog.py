"""Catalogue queries: search by words in title/author, list subjects."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from bookrec.subject_names import normalize as normalize_subject
from server.engine.bundle import Bundle
from server.engine.deadline import Deadline
from server.engine.ranking import allowed_mask
from server.engine.types import Filters


def query_words(query: str) -> list[str]:
    """The words a query must match, each once: lower-case, distinct, and none that is
    part of another (a book holding "tolkien" holds "tol" too), longest first."""
    words = sorted(set(query.lower().split()), key=lambda w: (-len(w), w))
    kept: list[str] = []
    for word in words:
        if not any(word in longer for longer in kept):
            kept.append(word)
    return kept


def search_books(
    bundle: Bundle, query: str, filters: Filters, deadline: Deadline | None = None
) -> npt.NDArray[np.int64]:
    """All matching books, most popular first (the caller pages through them): one
    pass of the word index per distinct word (words.py), stopping between passes
    once the call is abandoned (``deadline``)."""
    deadline = deadline or Deadline()
    deadline.check("filters")
    mask = allowed_mask(bundle, filters)
    words = query_words(query)
    for n, word in enumerate(words, 1):
        if mask is not None and not mask.any():
            break  # nothing left for the other words to keep
        deadline.check(f"word {n} of {len(words)}")
        found = bundle.search_text.index().books_with(word)
        mask = found if mask is None else mask & found
    deadline.check("order")
    # prior_order: by descending served popularity (prior01, the form the trainer chose),
    # ties by row (a stable sort): sorted(hits, key=(-prior01, row)).
    order = bundle.prior_order
    return order if mask is None else order[mask[order]]


def list_subjects(bundle: Bundle, query: str) -> list[tuple[int, int]]:
    """(subject_idx, book_count) matching the query, most common first. The query is
    compared with the subjects' ids and names after bookrec.subject_names.normalize
    (their keys in ``subject_lookup``), so "munchen" finds "München" and "baden
    wurttemberg" "Baden-Württemberg"; a name also matches the query lower-cased as
    typed (a name in a script the normalisation drops)."""
    counts = np.diff(bundle.subject_books_indptr)
    typed = query.strip().lower()
    if not typed:
        matched: set[int] = set(range(bundle.n_subjects))
    else:
        key = normalize_subject(query)
        matched = {s for k, s in bundle.subject_lookup.items() if key and key in k}
        matched.update(
            s for s in range(bundle.n_subjects) if typed in bundle.subject_names[s].lower()
        )
    return sorted(((s, int(counts[s])) for s in matched), key=lambda t: (-t[1], t[0]))
