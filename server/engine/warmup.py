"""Warm-up: run the trainer's chosen queries through every pipeline before serving.

A bundle that cannot answer them is rejected, and the first real requests do
not pay for page faults and lazy initialisation.
"""

from __future__ import annotations

from server.engine.bundle import Bundle, warmup_queries
from server.engine.cold_start import cold_start
from server.engine.recommend import recommend
from server.engine.similar import similar
from server.engine.types import Filters, SimilarMode

# Not a trainer's user id (they come from the data): a user the model does not know.
NEW_USER = "warmup:new-user"


def run_warmup(bundle: Bundle) -> None:
    queries = warmup_queries(bundle)
    none = Filters()
    for user in queries["user_ids"]:
        recommend(bundle, user, 10, none, explain=True)
    # A user the model does not know, with two ratings (fold-in when the trainer serves it).
    rated = dict.fromkeys(queries["book_ids"][:2], 10)
    recommend(bundle, NEW_USER, 10, none, explain=True, new_ratings=rated)
    for book in queries["book_ids"]:
        for mode in SimilarMode:
            similar(bundle, book, 10, mode, 0.5, none, explain=True)
    cold_start(bundle, queries["subject_ids"][:3], None, 10, none, explain=True)
