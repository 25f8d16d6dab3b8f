"""Reduce raw subject strings to a compact vocabulary.

Open Library subjects are free text: case and punctuation variants, compound
strings ("Fiction, science fiction, general") and generic shelves. Each raw
string is split into parts, each part normalised (case, punctuation), generic
parts dropped, and parts carried by fewer than ``min_books`` books dropped.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bookrec import subject_names

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

# The server resolves requests with this same function (bookrec/subject_names.py).
normalize_part = subject_names.normalize


def split_subject(raw: str) -> list[str]:
    """Normalised, non-generic parts of one raw subject string, in order."""
    parts = (normalize_part(p) for p in _SPLIT.split(raw))
    return [p for p in parts if p and p not in GENERIC]


# Keys of the subject report (``SubjectVocab.encode_books``), flat so that the
# artifact manifest's ``counts`` can carry them as they are.
SUBJECT_PAIRS = "subject_pairs"  # distinct (book, normalised part) pairs, before any drop
DROPPED_RARE = "subject_pairs_dropped_rare"  # part on < min_books training books
DROPPED_BEYOND_MAX = "subject_pairs_dropped_beyond_max_subjects"  # part ranked past max_subjects
DROPPED_CAP = "subject_pairs_dropped_per_book_cap"  # the book's subjects past the per-book cap
BOOKS_OVER_CAP = "books_over_subject_cap"  # books that lost a subject to the cap
BOOKS_LOSING = "books_losing_subjects"  # books that lost a pair to any of the three rules
# vocabulary subjects the cap took from every book that carried them (listed, never served)
SUBJECTS_UNUSED = "subjects_without_books"
REPORT_KEYS = (SUBJECT_PAIRS, DROPPED_RARE, DROPPED_BEYOND_MAX, DROPPED_CAP, BOOKS_OVER_CAP,
               BOOKS_LOSING, SUBJECTS_UNUSED)  # fmt: skip


@dataclass(frozen=True)
class SubjectVocab:
    slugs: tuple[str, ...]  # subject_idx -> "science-fiction"
    names: tuple[str, ...]  # subject_idx -> "Science fiction"
    index: dict[str, int]  # normalised part -> subject_idx
    # parts common enough (>= min_books) that only max_subjects kept out
    overflow: frozenset[str] = frozenset()

    def encode(self, parts: Iterable[str], limit: int) -> list[int]:
        """Subject indices of one book, in the book's order, deduplicated."""
        out: list[int] = []
        for part in parts:
            idx = self.index.get(part)
            if idx is not None and idx not in out:
                out.append(idx)
        return out[:limit]

    def encode_books(
        self, books_parts: Sequence[Iterable[str]], limit: int
    ) -> tuple[list[list[int]], dict[str, int]]:
        """``encode`` of every book, and how many of their parts each rule dropped
        (the ``REPORT_KEYS`` counts): a part outside the vocabulary is ``rare`` or
        ``beyond_max_subjects``; a vocabulary subject past the book's first
        ``limit`` is dropped by the per-book cap. A part repeated within a book is
        one pair (merged, not dropped). ``subjects_without_books`` counts vocabulary
        subjects no book keeps (the vocabulary is counted before the cap)."""
        report = dict.fromkeys(REPORT_KEYS, 0)
        rows: list[list[int]] = []
        used: set[int] = set()
        for parts in books_parts:
            distinct = dict.fromkeys(parts)
            out: list[int] = []
            for part in distinct:
                idx = self.index.get(part)
                if idx is not None:
                    out.append(idx)
                elif part in self.overflow:
                    report[DROPPED_BEYOND_MAX] += 1
                else:
                    report[DROPPED_RARE] += 1
            over = max(len(out) - limit, 0)
            report[SUBJECT_PAIRS] += len(distinct)
            report[DROPPED_CAP] += over
            report[BOOKS_OVER_CAP] += int(over > 0)
            report[BOOKS_LOSING] += int(len(out) - over < len(distinct))
            rows.append(out[:limit])
            used.update(out[:limit])
        report[SUBJECTS_UNUSED] = len(self.slugs) - len(used)
        return rows, report


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
    common = sorted((p for p, c in counts.items() if c >= min_books), key=lambda p: (-counts[p], p))
    kept = common[:max_subjects]
    return SubjectVocab(
        slugs=tuple(slug_of(p) for p in kept),
        names=tuple(p.capitalize() for p in kept),
        index={p: i for i, p in enumerate(kept)},
        overflow=frozenset(common[max_subjects:]),
    )
