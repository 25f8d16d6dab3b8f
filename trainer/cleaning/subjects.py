"""Reduce raw subject strings to a compact vocabulary.

Open Library subjects are free text: case and punctuation variants, compound
strings ("Fiction, science fiction, general") and generic shelves. Each raw
string is split into parts, each part normalised (case, punctuation), generic
parts dropped, and parts carried by fewer than ``min_books`` books dropped.

Normalising is for matching only. What a reply shows is the data's own spelling
of a part (``best_spelling``): the one most books carry ("Latin American
fiction", "München"), in sentence case when the data writes it as a tag
("young-adult" -> "Young adult") or in capitals ("SCIENCE FICTION.").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
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
    return [part for part, _ in split_subject_spelled(raw)]


def split_subject_spelled(raw: str) -> list[tuple[str, str]]:
    """``split_subject`` with each part as the data wrote it: (part, spelling)."""
    out: list[tuple[str, str]] = []
    for piece in _SPLIT.split(raw):
        part = normalize_part(piece)
        if part and part not in GENERIC:
            out.append((part, tidy_spelling(piece)))
    return out


_SPACES = re.compile(r"\s+")
_SEPARATORS = re.compile(r"[\s_-]+")


def tidy_spelling(piece: str) -> str:
    """One part as written, without its stray edges: "_sachbücher" -> "sachbücher",
    "Science fiction." -> "Science fiction" (a dot stays where it is not the only one)."""
    text = _SPACES.sub(" ", piece).strip(" -_")
    if text.endswith(".") and text.count(".") == 1:
        text = text[:-1].rstrip(" -_")
    return text


def _name_cased(text: str) -> bool:
    """Written as a name: a capital first letter, and not all capitals."""
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and letters[0].isupper() and any(c.islower() for c in letters)


def _sentence_case(text: str) -> str:
    """A tag or capitals as a name: "young-adult" -> "Young adult", "MÜNCHEN" -> "München"."""
    words = _SEPARATORS.sub(" ", text).strip().lower()
    return words[:1].upper() + words[1:]


def best_spelling(part: str, spellings: Mapping[str, int]) -> str:
    """The display name of ``part``: the spelling most books carry (ties: one written as a
    name, then the one with more accents kept, then the first alphabetically), in
    sentence case unless the data writes it as a name. It always normalises back to
    ``part``, so the server finds the subject by it."""
    ranked = sorted(
        spellings.items(),
        key=lambda kv: (
            -kv[1],
            not _name_cased(kv[0]),
            -sum(not c.isascii() for c in kv[0]),
            kv[0],
        ),
    )
    for spelling, _ in ranked:
        shown = spelling if _name_cased(spelling) else _sentence_case(spelling)
        if normalize_part(shown) == part:
            return shown
    return part.capitalize()


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
    names: tuple[str, ...]  # subject_idx -> "Science fiction" (best_spelling)
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
    books_parts: Sequence[Iterable[str]],
    min_books: int = 2,
    max_subjects: int = 1000,
    spellings: Mapping[str, str] | None = None,
) -> SubjectVocab:
    """Parts carried by at least ``min_books`` of the given books, most common first
    (ties by name, so the vocabulary is reproducible), at most ``max_subjects``;
    ``spellings`` (part -> the data's display name) names them, else the part capitalised.

    Pass only books seen in the training split: the vocabulary is a feature."""
    counts: Counter[str] = Counter()
    for parts in books_parts:
        counts.update(set(parts))
    common = sorted((p for p, c in counts.items() if c >= min_books), key=lambda p: (-counts[p], p))
    kept = common[:max_subjects]
    return SubjectVocab(
        slugs=tuple(slug_of(p) for p in kept),
        names=tuple((spellings or {}).get(p) or p.capitalize() for p in kept),
        index={p: i for i, p in enumerate(kept)},
        overflow=frozenset(common[max_subjects:]),
    )
