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

    def encode(self, parts: Iterable[str], limit: int) -> list[int]:
        """Subject indices of one book, in the book's order, deduplicated."""
        out: list[int] = []
        for part in parts:
            idx = self.index.get(part)
            if idx is not None and idx not in out:
                out.append(idx)
        return out[:limit]


def slug_of(part: str) -> str:
    return part.replace(" ", "-")


def build_vocab(
    books_parts: Sequence[Iterable[str]], min_books: int = 2, max_subjects: int = 1000
) -> SubjectVocab:
    """Parts carried by at least ``min_books`` of the given books, most common first
    (ties by name, so the vocabulary is reproducible), at most ``max_subjects``.

    Pass only books seen in the training split: the vocabulary is a feature."""
    counts: Counter[str] = Counter()
    for parts in books_parts:
        counts.update(set(parts))
    kept = sorted((p for p, c in counts.items() if c >= min_books), key=lambda p: (-counts[p], p))
    kept = kept[:max_subjects]
    return SubjectVocab(
        slugs=tuple(slug_of(p) for p in kept),
        names=tuple(p.capitalize() for p in kept),
        index={p: i for i, p in enumerate(kept)},
    )
