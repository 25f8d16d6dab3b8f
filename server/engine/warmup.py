"""Warm-up: run the trainer's chosen queries through every pipeline before serving.

A bundle that cannot answer them is rejected, and the first real requests do
not pay for page faults and lazy initialisation. An empty answer is a failure
too: a broken array (a NaN prior, no book with an ALS vector) shows up as OK
replies with no items, which no client can tell from a real answer. Except a
Similar answered from subjects alone: a book may carry no subject (a catalogue
without them, or a book without), and then nothing is the honest answer.
"""

from __future__ import annotations

from bookrec.artifact import ArtifactError
from server.engine.bundle import Bundle, warmup_queries
from server.engine.cold_start import cold_start
from server.engine.recommend import recommend
from server.engine.similar import similar
from server.engine.types import Filters, RankedList, SimilarMode, Source

# Not a trainer's user id (they come from the data): a user the model does not know.
NEW_USER = "warmup:new-user"


class WarmupFailed(ArtifactError):
    """A warm-up query answered nothing: the version must not serve."""


def _some(answer: RankedList, query: str) -> None:
    if not answer.items:
        raise WarmupFailed(f"warm-up query {query} answered no items")


def run_warmup(bundle: Bundle) -> None:
    """Raise ``WarmupFailed`` (or the pipeline's own error) unless every query answers."""
    queries = warmup_queries(bundle)
    none = Filters()
    for user in queries["user_ids"]:
        _some(recommend(bundle, user, 10, none, explain=True), f"Recommend(user={user!r})")
    # A user the model does not know, with two ratings (fold-in when the trainer serves it).
    rated = dict.fromkeys(queries["book_ids"][:2], 10)
    _some(
        recommend(bundle, NEW_USER, 10, none, explain=True, new_ratings=rated),
        "Recommend(new user with two ratings)",
    )
    for book in queries["book_ids"]:
        for mode in SimilarMode:
            answer = similar(bundle, book, 10, mode, 0.5, none, explain=True)
            if answer.source is not Source.SUBJECT:
                _some(answer, f"Similar(book={book!r}, mode={mode.value})")
    subjects = queries["subject_ids"][:3]
    _some(
        cold_start(bundle, subjects, None, 10, none, explain=True),
        f"ColdStart(subjects={subjects!r})",
    )
    # SearchBooks' word index: built here, in the loader thread, not by the first search.
    bundle.search_text.index()
