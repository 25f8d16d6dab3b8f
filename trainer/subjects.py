"""Reduce raw subject strings to a compact vocabulary.

Open Library subjects are free text: case and punctuation variants, compound
strings ("Fiction, science fiction, general") and generic shelves. Each raw
string is split into parts, each part normalised (case, punctuation), generic
parts dropped, and parts carried by fewer than ``min_books`` books dropped.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Shelves that say nothing about a book's content; never a subject of their own.
GENERIC = frozenset(
    {
        "fiction",
        "general",
        "literature",
        "juvenile literature",
        "juvenile fiction",
        "fiction general",
        "novel",
        "novels",
        "books",
        "accessible book",
        "protected daisy",
        "in library",
        "english",
        "large type books",
        "reading level grade",
    }
)
_SPLIT = re.compile(r"\s*(?:,|;|/|--|\|)\s*")
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalize_part(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    folded = folded.replace("'", "")  # children's -> childrens, not children s
    return _NON_ALNUM.sub(" ", folded.lower()).strip()


def split_subject(raw: str) -> list[str]:
    """Normalised, non-generic parts of one raw subject string, in order."""
    parts = (normalize_part(p) for p in _SPLIT.split(raw))
    return [p for p in parts if p and p not in GENERIC]


@dataclass(frozen=True)
class SubjectVocab:
    slugs: tuple[str, ...]  # subject_idx -> "science-fiction"
    names: tuple[str, ...]  # subject_idx -> "Science fiction"
    index: dict[str, int]  # normalised part -> subject_idx

    def encode(self, raw_subjects: Iterable[str], limit: int) -> list[int]:
        """Subject indices of one book, first-mentioned first, deduplicated."""
        out: list[int] = []
        for raw in raw_subjects:
            for part in split_subject(raw):
                idx = self.index.get(part)
                if idx is not None and idx not in out:
                    out.append(idx)
        return out[:limit]


def build_vocab(
    books_raw_subjects: Sequence[Iterable[str]], min_books: int = 2, max_subjects: int = 1000
) -> SubjectVocab:
    """Most common parts first; ties broken by name so the vocabulary is reproducible."""
    counts: Counter[str] = Counter()
    for raws in books_raw_subjects:
        counts.update({part for raw in raws for part in split_subject(raw)})
    kept = sorted((p for p, c in counts.items() if c >= min_books), key=lambda p: (-counts[p], p))
    kept = kept[:max_subjects]
    return SubjectVocab(
        slugs=tuple(p.replace(" ", "-") for p in kept),
        names=tuple(p.capitalize() for p in kept),
        index={p: i for i, p in enumerate(kept)},
    )
