"""Features computed inside a frozen split, from its training part only.

Validation, test and cold-user interactions never reach these functions'
outputs: the subject vocabulary counts only books read in train, aggregates and
the popularity prior count only train ratings, favourite subjects come from
train positives. tests/test_features.py proves it by changing a test rating.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bookrec.log import kv
from bookrec.rerank_features import year_buckets
from trainer.cleaning.subjects import SubjectVocab, build_vocab
from trainer.evaluation.split import TRAIN
from trainer.models.popularity import Popularity, bayesian_prior
from trainer.snapshot import Snapshot

log = logging.getLogger(__name__)

# A book keeps its first MAX_SUBJECTS_PER_BOOK vocabulary subjects (the reader's
# order: main subject first; goodbooks tags most-counted first); the rest are
# dropped and counted in Features.subject_report (docs/data-pipeline.md).
MAX_SUBJECTS_PER_BOOK = 8
FAVOURITE_SUBJECTS = 5
POSITIVE_MIN_RATING = 6  # explicit ratings at or above this, and implicit reads, are positive


@dataclass(frozen=True)
class Aggregates:
    count: npt.NDArray[np.int32]
    mean: npt.NDArray[np.float32]  # mean explicit rating, 0 when none
    std: npt.NDArray[np.float32]


@dataclass(frozen=True)
class Features:
    vocab: SubjectVocab
    book_subjects: npt.NDArray[np.int32]  # (n_items, MAX_SUBJECTS_PER_BOOK), -1 padded
    book: Aggregates
    user: Aggregates
    popularity: Popularity
    favourite_subjects: npt.NDArray[np.int32]  # (n_users, FAVOURITE_SUBJECTS), -1 padded
    year_bucket: npt.NDArray[np.int8]  # per book, see year_buckets
    # book-subject pairs dropped by each rule, books that lost one
    # (trainer.cleaning.subjects.REPORT_KEYS)
    subject_report: dict[str, int]


def aggregates(keys: npt.NDArray[np.int32], ratings: npt.NDArray[np.int8], n: int) -> Aggregates:
    count = np.bincount(keys, minlength=n).astype(np.int32)
    explicit = ratings > 0
    k, r = keys[explicit], ratings[explicit].astype(np.float64)
    n_exp = np.bincount(k, minlength=n).astype(np.float64)
    s1 = np.bincount(k, weights=r, minlength=n)
    s2 = np.bincount(k, weights=r * r, minlength=n)
    mean = np.divide(s1, n_exp, out=np.zeros(n), where=n_exp > 0)
    var = np.divide(s2, n_exp, out=np.zeros(n), where=n_exp > 0) - mean**2
    return Aggregates(
        count, mean.astype(np.float32), np.sqrt(np.maximum(var, 0)).astype(np.float32)
    )


def _padded(rows: list[list[int]], width: int) -> npt.NDArray[np.int32]:
    out = np.full((len(rows), width), -1, dtype=np.int32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r[:width]
    return out


def _favourites(
    users: npt.NDArray[np.int32],
    items: npt.NDArray[np.int32],
    ratings: npt.NDArray[np.int8],
    book_subjects: npt.NDArray[np.int32],
    n_users: int,
    n_subjects: int,
) -> npt.NDArray[np.int32]:
    """Each user's top subjects by number of positive ratings (ties: lower subject_idx)."""
    out = np.full((n_users, FAVOURITE_SUBJECTS), -1, dtype=np.int32)
    positive = (ratings == 0) | (ratings >= POSITIVE_MIN_RATING)
    subj = book_subjects[items[positive]]
    u = np.repeat(users[positive].astype(np.int64), subj.shape[1])
    s = subj.reshape(-1).astype(np.int64)
    keep = s >= 0
    if not keep.any():
        return out
    keys, counts = np.unique(u[keep] * n_subjects + s[keep], return_counts=True)
    uu, ss = keys // n_subjects, keys % n_subjects
    order = np.lexsort((ss, -counts, uu))
    uu, ss = uu[order], ss[order]
    rank = np.arange(len(uu)) - np.searchsorted(uu, uu, side="left")
    top = rank < FAVOURITE_SUBJECTS
    out[uu[top], rank[top]] = ss[top]
    return out


def build_features(
    snap: Snapshot,
    min_subject_books: int = 2,
    max_subjects: int = 1000,
    prior_strength: float = 10.0,
    use_rows: npt.NDArray[np.bool_] | None = None,
    vocab: SubjectVocab | None = None,
) -> Features:
    """From the training part, or from ``use_rows`` (every interaction, for the refit:
    pass the split's ``vocab`` too, which the subject model was trained on)."""
    train = snap.mask(TRAIN) if use_rows is None else use_rows
    users, items, ratings = snap.users[train], snap.items[train], snap.ratings[train]
    seen = np.unique(items)
    if vocab is None:
        vocab = build_vocab(
            [snap.subjects[i] for i in seen.tolist()],
            min_subject_books,
            max_subjects,
            snap.subject_spellings,
        )
    rows, subject_report = vocab.encode_books(snap.subjects, MAX_SUBJECTS_PER_BOOK)
    book_subjects = _padded(rows, MAX_SUBJECTS_PER_BOOK)
    log.info(
        "subjects reduced",
        extra=kv(
            books=snap.n_items,
            subjects=len(vocab.slugs),
            min_subject_books=min_subject_books,
            max_subjects=max_subjects,
            max_subjects_per_book=MAX_SUBJECTS_PER_BOOK,
            **subject_report,
        ),
    )
    favourites = _favourites(users, items, ratings, book_subjects, snap.n_users, len(vocab.slugs))
    return Features(
        vocab=vocab,
        book_subjects=book_subjects,
        book=aggregates(items, ratings, snap.n_items),
        user=aggregates(users, ratings, snap.n_users),
        popularity=bayesian_prior(items, ratings, snap.n_items, prior_strength),
        favourite_subjects=favourites,
        year_bucket=year_buckets(snap.years),
        subject_report=subject_report,
    )
