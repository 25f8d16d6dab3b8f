"""Users with planted tastes (favourite subjects and authors) and rating habits.

Why: the tastes are what personalised models must find and what demo_truth.json records;
the heavy-tailed number of ratings per user and the share of implicit (0) ratings mimic
Book-Crossing, where most users rate a handful of books and a few rate thousands.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainer.demo.catalogue import _Catalogue
from trainer.demo.sampling import FloatArray, IntArray, _distinct_rows, _group_cdf, _sample_groups
from trainer.demo.scales import Scale


@dataclass(frozen=True)
class _Users:
    """Users, their planted tastes and their rating habits."""

    user_id: IntArray
    fav_subjects: IntArray  # (n_users, 3), valid entries first, -1 = none
    fav_authors: IntArray  # (n_users, 4), valid entries first, -1 = none
    n_ratings: IntArray  # target rows per user, 0 for users who never rate
    p_implicit: FloatArray
    bias: FloatArray


def _make_users(rng: np.random.Generator, sc: Scale, cat: _Catalogue) -> _Users:
    """Users with favourite subjects and authors and a heavy-tailed appetite for books."""
    n = sc.n_users
    n_subj = len(cat.subjects)
    user_id = np.sort(rng.choice(int(n * 2.65) + 1, size=n, replace=False) + 1).astype(np.int64)

    # Favourite subjects follow subject popularity, among subjects that have works.
    has_works = np.bincount(cat.work_subjects[:, 0], minlength=n_subj) > 0
    p = np.where(has_works, cat.subject_p, 0.0)
    cand = rng.choice(n_subj, size=(n, 3), p=p / p.sum()).astype(np.int64)
    k_subj = rng.choice([1, 2, 3], size=n, p=[0.35, 0.4, 0.25])
    fav_subjects = _distinct_rows(cand, np.arange(3)[None, :] < k_subj[:, None])
    n_fav = (fav_subjects >= 0).sum(axis=1)

    # Favourite authors: popular authors of a favourite subject (primary subject of the author).
    a_subj = cat.author_subjects[:, 0]
    order = np.argsort(a_subj, kind="stable")
    keys = _group_cdf(a_subj[order], cat.author_pop[order], n_subj)
    slot = (rng.random((n, 4)) * n_fav[:, None]).astype(np.int64)
    subj = np.take_along_axis(fav_subjects, slot, axis=1)
    authored = np.bincount(a_subj, minlength=n_subj) > 0
    pos = _sample_groups(keys, subj.ravel(), rng.random(n * 4)).reshape(n, 4)
    cand_a = np.where(authored[subj], order[pos], -1).astype(np.int64)
    k_auth = rng.choice(5, size=n, p=[0.2, 0.3, 0.25, 0.15, 0.1])
    fav_authors = _distinct_rows(cand_a, np.arange(4)[None, :] < k_auth[:, None])

    # Ratings per user: 1 + lognormal share of the rest, capped, for the ~97% who rate.
    active = rng.random(n) >= 0.03
    n_active = int(active.sum())
    w = rng.lognormal(0.0, sc.activity_sigma, n_active)
    counts = 1 + rng.multinomial(max(sc.n_ratings - n_active, 0), w / w.sum()).astype(np.int64)
    cap = max(20, int(0.3 * cat.n_works))
    for _ in range(5):
        excess = int(np.maximum(counts - cap, 0).sum())
        if excess == 0:
            break
        counts = np.minimum(counts, cap)
        free = counts < cap
        counts[free] += rng.multinomial(excess, w[free] / w[free].sum())
    n_ratings = np.zeros(n, dtype=np.int64)
    n_ratings[active] = np.minimum(counts, cap)

    return _Users(
        user_id=user_id,
        fav_subjects=fav_subjects,
        fav_authors=fav_authors,
        n_ratings=n_ratings,
        p_implicit=rng.beta(1.5, 1.0, size=n),
        bias=rng.normal(0.0, 0.8, size=n),
    )
