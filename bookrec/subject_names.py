"""The one normalisation of subject text, shared by the trainer and the server.

The trainer builds its subject vocabulary from normalised parts
(trainer/cleaning/subjects.py); the server resolves a request's subject (an id such as
``science-fiction``, a name such as ``Science fiction``, or the raw spelling of
the data such as ``Children's``) by normalising both its keys and the query with
this same function, so every spelling the trainer merged into one subject finds
it again:

    normalize("Children's") == normalize("CHILDREN\\u2019S") == normalize("childrens")
    normalize("Science-Fiction.") == normalize("science fiction") == "science fiction"

Steps: NFKD-fold to ASCII (accents dropped: "Études" -> "etudes"; characters
without an ASCII decomposition, curly apostrophes included, vanish), drop ASCII
apostrophes ("children's" -> "childrens", not "children s"), lower-case, turn each
run of other non-alphanumerics into one space, strip. The trainer's stored keys
(fallback work ids hash normalised titles) depend on these exact steps: change
them only with a migration.
"""

from __future__ import annotations

import re
import unicodedata

_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalize(text: str) -> str:
    """``text`` folded to lower-case ASCII words separated by single spaces."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    folded = folded.replace("'", "")  # children's -> childrens, not children s
    return _NON_ALNUM.sub(" ", folded.lower()).strip()
