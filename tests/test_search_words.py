"""SearchBooks' word index (server/engine/words.py) finds exactly the books the old
per-book scan found (``all(word in text for word in words)`` over the lower-case
"title author"), in the same order, for any titles and any query."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.engine import catalog
from server.engine.bundle import Bundle
from server.engine.deadline import Deadline, DeadlinePassed
from server.engine.types import Filters
from server.engine.words import WordIndex


def reference_books(titles: list[str], authors: list[str], query: str) -> list[int]:
    """The scan SearchBooks did before the index: one ``in`` per word per book."""
    words = query.lower().split()
    rows = [f"{t} {a}".lower() for t, a in zip(titles, authors, strict=True)]
    return [i for i, text in enumerate(rows) if all(w in text for w in words)]


def index_books(index: WordIndex, query: str) -> list[int]:
    mask = np.ones(index.n_books, dtype=bool)
    for word in catalog.query_words(query):
        mask &= index.books_with(word)
    return np.flatnonzero(mask).tolist()


# Few letters, so words often hit; whitespace of several kinds; non-ASCII letters whose
# UTF-8 bytes share prefixes (é, è, ß) and a case pair whose lower() changes length (İ).
_text = st.text(alphabet="abcé èßİ\t\u00a0-1", max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    titles=st.lists(_text, min_size=1, max_size=12),
    authors_seed=st.lists(_text, min_size=1, max_size=12),
    query=st.text(alphabet="abcé èßİ\u00a0-1 i̇", max_size=10),
)
def test_the_index_finds_what_the_scan_found(
    titles: list[str], authors_seed: list[str], query: str
) -> None:
    authors = [authors_seed[i % len(authors_seed)] for i in range(len(titles))]
    index = WordIndex.build(titles, authors)
    assert index_books(index, query) == reference_books(titles, authors, query)


def test_query_words_drop_repeats_and_words_inside_others() -> None:
    assert catalog.query_words("Tol tolkien TOLKIEN the lord  of the rings ring") == [
        "tolkien",
        "rings",
        "lord",
        "the",
        "of",
    ]
    assert catalog.query_words("   ") == []


def test_search_on_a_real_bundle_matches_the_scan_in_popularity_order(
    tiny_artifact: Path,
) -> None:
    bundle = Bundle.open(tiny_artifact, check_hashes=False)
    titles, authors = bundle.titles.to_list(), bundle.authors.to_list()
    pop = np.asarray(bundle.prior01)  # the served popularity (the trainer's chosen form)
    words = " ".join(titles[:40]).split()[:30]
    for query in ["", *words, " ".join(words[:3]), "e a", words[0][1:3], "zzzz"]:
        want = sorted(reference_books(titles, authors, query), key=lambda i: (-float(pop[i]), i))
        assert catalog.search_books(bundle, query, Filters()).tolist() == want, query


def test_a_search_past_its_deadline_stops_between_words(tiny_artifact: Path) -> None:
    bundle = Bundle.open(tiny_artifact, check_hashes=False)
    with pytest.raises(DeadlinePassed, match="before filters: deadline"):
        catalog.search_books(bundle, "a b", Filters(), Deadline(at=0.0, rpc="SearchBooks"))
