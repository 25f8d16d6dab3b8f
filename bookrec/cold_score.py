"""The cold-start score, shared by the trainer's evaluation and the server: one function,
so what is evaluated is what is served.

    score = (1 - w) * similarity + w * prior01

- ``prior01``: the Bayesian popularity prior (trainer/models/popularity.py) min-max rescaled to
  [0, 1] (``rescale_prior``).
- ``similarity``: cosine of the pooled favourite subjects and each book's pooled subjects
  (the attention-pooled subject embeddings of trainer/models/subject_model.py), plus the
  subject **lift** ``log(1 + LIFT_STRENGTH * mean over favourites s of [s in book] / share_s)``,
  with ``share_s`` the share of training interactions whose book carries subject ``s``.
  ``[s in book] / share_s`` is how much more likely a reader of ``s`` is to pick a book of
  ``s`` than a random reader, so a match on a narrow subject ("sailing") lifts a book more
  than a match on a subject that a fifth of all books carry ("romance"). The cosine alone
  gives every match about the same weight whatever its subject's reach.

Everything here is numpy on exported arrays (``book_subject_vectors``, ``book_subjects``,
``rating_count``, ``popularity``), so the server needs nothing the artifact lacks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

F32 = npt.NDArray[np.float32]

LIFT_STRENGTH = 0.1


def rescale_prior(prior: npt.NDArray[np.floating]) -> F32:
    """The prior min-max rescaled to [0, 1], the scale the blend weight is chosen on."""
    p = np.asarray(prior, dtype=np.float32)
    if p.size == 0:
        return p
    span = max(float(p.max() - p.min()), 1e-9)
    out: F32 = ((p - p.min()) / span).astype(np.float32)
    return out


def inverse_shares(
    book_subjects: npt.NDArray[np.integer], counts: npt.NDArray[np.integer], n: int
) -> npt.NDArray[np.float64]:
    """1 / share_s for every subject: the share of training interactions whose book
    carries it (all that the lift needs beyond which books carry what)."""
    bs = np.asarray(book_subjects)
    rows, cols = np.nonzero(bs >= 0)
    reads = np.asarray(counts, dtype=np.float64)
    total = max(float(reads.sum()), 1.0)
    share = np.bincount(bs[rows, cols], weights=reads[rows], minlength=n) / total
    # a subject no training interaction reached gets the smallest observed share's lift
    floor = float(share[share > 0].min()) if (share > 0).any() else 1.0
    out: npt.NDArray[np.float64] = 1.0 / np.maximum(share, floor)
    return out


def favourite_weights(
    inverse_share: npt.NDArray[np.float64], favourites: Sequence[int]
) -> dict[int, float]:
    """What each favourite adds to the lift sum of a book carrying it."""
    members = _members(favourites)
    return {int(s): float(inverse_share[s]) / len(members) for s in members.tolist()}


class SubjectLift:
    """The subject-lift term for any set of favourite subjects (built once per model)."""

    def __init__(
        self, book_subjects: npt.NDArray[np.integer], counts: npt.NDArray[np.integer], n: int
    ) -> None:
        bs = np.asarray(book_subjects)
        rows, cols = np.nonzero(bs >= 0)
        self.n_subjects = n
        # books x subjects, 1 where the book carries the subject; CSR sums each book's
        # subjects in column order whatever the number of users scored at once.
        self.books = sp.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, bs[rows, cols])), shape=(bs.shape[0], n)
        )
        self.books.sort_indices()
        self.inverse_share = inverse_shares(bs, counts, n)
        # Each book's subjects in the CSR's (ascending) order, padded with n (weight 0):
        # ``at`` sums them in that order with plain numpy, equal to the CSR product bit
        # for bit and ~10x cheaper than scipy's fancy row indexing for a few hundred rows.
        self.sorted_subjects = np.sort(np.where(bs >= 0, bs, n), axis=1).astype(np.int64)

    def _weights(self, favourites: Sequence[Sequence[int]]) -> npt.NDArray[np.float32]:
        w = np.zeros((len(favourites), self.n_subjects), dtype=np.float32)
        for r, fav in enumerate(favourites):
            for s, weight in favourite_weights(self.inverse_share, fav).items():
                w[r, s] = weight
        return w

    def __call__(self, favourites: Sequence[Sequence[int]]) -> F32:
        """(len(favourites), n_books) lift; a set without subjects gets zeros."""
        return self.of_sums(np.asarray(self.books @ self._weights(favourites).T, np.float32).T)

    def at(self, favourites: Sequence[int], rows: npt.NDArray[np.integer]) -> F32:
        """The lift of one favourite set for some books: equal, bit for bit, to the
        same rows of ``self([favourites])[0]`` (each book's subjects summed in the
        same order)."""
        weights = np.append(self._weights([favourites])[0], np.float32(0))
        subjects = self.sorted_subjects[rows]
        lift = np.zeros(len(subjects), dtype=np.float32)
        for j in range(subjects.shape[1]):
            lift = lift + weights[subjects[:, j]]
        return self.of_sums(lift)

    @staticmethod
    def of_sums(sums: F32) -> F32:
        """The lift of books whose favourites' weights sum to ``sums``."""
        out: F32 = np.log1p(np.float32(LIFT_STRENGTH) * sums)
        return out


def _members(subjects: Sequence[int]) -> npt.NDArray[np.int64]:
    members = np.unique(np.asarray(list(subjects), dtype=np.int64))
    out: npt.NDArray[np.int64] = members[members >= 0]
    return out


def similarity(user_vectors: F32, book_vectors: F32, lift: F32) -> F32:
    """(users, books): cosine of pooled subjects plus the subject lift."""
    cos = np.asarray(np.atleast_2d(user_vectors) @ np.asarray(book_vectors).T, dtype=np.float32)
    out: F32 = (cos + lift).astype(np.float32)
    return out


def blend(sim: F32, prior01: F32, w: float) -> F32:
    """``(1 - w) * similarity + w * prior01``, float32."""
    out: F32 = ((1.0 - w) * sim + w * prior01).astype(np.float32)
    return out
