"""Clean rating rows: who read which edition of which work, and the value they gave.

Why: ratings carry the planted signal (taste x popularity draws, series read in order,
explicit values that follow taste match), sampled in vectorised rounds so the bookcrossing
scale stays fast and (nearly) every user reaches their planned count.  Rows are clean here;
trainer/demo/bx_files.py adds the dirt when it writes BX-Book-Ratings.csv.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainer.demo.catalogue import _Catalogue
from trainer.demo.sampling import FloatArray, IntArray, _group_cdf, _sample_groups
from trainer.demo.users import _Users


@dataclass(frozen=True)
class _Ratings:
    """Clean rating rows before the dirt pass."""

    user: IntArray  # index into _Users
    work: IntArray
    isbn: IntArray
    rating: IntArray


@dataclass(frozen=True)
class _DrawTables:
    """Sampling tables shared by every round of rating draws."""

    global_cdf: FloatArray
    subject_keys: FloatArray  # _group_cdf keys over (subject, work) pairs
    subject_work: IntArray
    author_keys: FloatArray  # _group_cdf keys over works, which are grouped by author


def _draw_tables(cat: _Catalogue) -> _DrawTables:
    pw, pc = np.nonzero(cat.work_subjects >= 0)
    ps = cat.work_subjects[pw, pc]
    order = np.lexsort((pw, ps))
    pw, pc, ps = pw[order], pc[order], ps[order]
    weight = cat.work_pop[pw] * np.where(pc == 0, 1.0, 0.3)  # primary subjects weighted up
    return _DrawTables(
        global_cdf=np.cumsum(cat.work_pop),
        subject_keys=_group_cdf(ps.astype(np.int64), weight, len(cat.subjects)),
        subject_work=pw.astype(np.int64),
        author_keys=_group_cdf(cat.work_author, cat.work_pop, len(cat.author_name)),
    )


def _draw_reads(
    rng: np.random.Generator, cat: _Catalogue, users: _Users, tab: _DrawTables, user: IntArray
) -> tuple[IntArray, IntArray, IntArray]:
    """One draw per entry of ``user`` plus the series runs it triggers: (user, work, order key).

    Each draw picks a favourite subject, a favourite author or plain popularity; a draw that
    lands in a series usually brings a run of it, from volume 1 or from the drawn volume on.
    """
    n = user.size
    mix = rng.random(n)
    n_fav_a = (users.fav_authors >= 0).sum(axis=1)[user]
    by_subject = mix < 0.55
    by_author = (mix >= 0.55) & (mix < 0.72) & (n_fav_a > 0)
    work = np.searchsorted(tab.global_cdf, rng.random(n) * tab.global_cdf[-1], side="right")
    work = np.minimum(work, cat.n_works - 1).astype(np.int64)

    idx = np.flatnonzero(by_subject)
    n_fav_s = (users.fav_subjects >= 0).sum(axis=1)[user[idx]]
    slot = (rng.random(idx.size) * n_fav_s).astype(np.int64)
    subj = users.fav_subjects[user[idx], slot]
    work[idx] = tab.subject_work[_sample_groups(tab.subject_keys, subj, rng.random(idx.size))]

    idx = np.flatnonzero(by_author)
    slot = (rng.random(idx.size) * n_fav_a[idx]).astype(np.int64)
    author = users.fav_authors[user[idx], slot]
    work[idx] = _sample_groups(tab.author_keys, author, rng.random(idx.size))
    return _with_series_runs(rng, cat, user, work)


def _with_series_runs(
    rng: np.random.Generator, cat: _Catalogue, user: IntArray, work: IntArray
) -> tuple[IntArray, IntArray, IntArray]:
    """Append the series runs that draws trigger; keys keep each run right after its draw."""
    key = np.arange(user.size, dtype=np.int64) * 16
    ser = cat.work_series[work]
    idx = np.flatnonzero((ser >= 0) & (rng.random(user.size) < 0.75))
    s = ser[idx]
    vol = cat.work_volume[work[idx]]
    start = np.where(rng.random(idx.size) < 0.5, 0, vol)
    end = np.maximum(vol, start + rng.binomial(cat.series_length[s] - 1 - start, 0.7))
    run = end - start + 1
    seed_of = np.repeat(idx, run)
    offset = np.arange(int(run.sum())) - np.repeat(np.cumsum(run) - run, run)
    run_work = cat.series_first_work[np.repeat(s, run)] + np.repeat(start, run) + offset
    return (
        np.concatenate([user, user[seed_of]]),
        np.concatenate([work, run_work]),
        np.concatenate([key, key[seed_of] + 1 + offset]),
    )


def _first_reads(
    user: IntArray, work: IntArray, key: IntArray, n_works: int, limit: IntArray
) -> tuple[IntArray, IntArray, IntArray]:
    """One row per (user, work), the earliest key winning; then each user's first ``limit``
    rows by key.  Result is sorted by (user, key)."""
    pair = user * n_works + work
    order = np.lexsort((key, pair))
    first = order[np.r_[True, pair[order][1:] != pair[order][:-1]]]
    first = first[np.lexsort((key[first], user[first]))]
    user, work, key = user[first], work[first], key[first]
    rank = np.arange(user.size) - np.searchsorted(user, user)
    keep = rank < limit[user]
    return user[keep], work[keep], key[keep]


def _sample_ratings(rng: np.random.Generator, cat: _Catalogue, users: _Users) -> _Ratings:
    """Taste x popularity draws, series read together, trimmed to each user's appetite.

    Users whose favourite shelves run dry get further rounds; the last round is uniform over
    all works, so (nearly) every user reaches their planned number of ratings.
    """
    n_users = users.user_id.size
    tab = _draw_tables(cat)
    users_idx = np.arange(n_users, dtype=np.int64)
    user = work = key = np.empty(0, dtype=np.int64)
    need = users.n_ratings.copy()
    base = 0
    for round_ in range(6):
        factor = 1.5 if round_ == 0 else 3.0
        per_user = np.where(need > 0, np.ceil(need * factor) + 3, 0).astype(np.int64)
        drawn_for = np.repeat(users_idx, per_user)
        if round_ < 5:
            u2, w2, k2 = _draw_reads(rng, cat, users, tab, drawn_for)
        else:
            w_any = rng.integers(0, cat.n_works, size=drawn_for.size).astype(np.int64)
            u2, w2, k2 = drawn_for, w_any, np.arange(drawn_for.size, dtype=np.int64) * 16
        user = np.concatenate([user, u2])
        work = np.concatenate([work, w2])
        key = np.concatenate([key, k2 + base])
        base += int(k2.max(initial=0)) + 16
        user, work, key = _first_reads(user, work, key, cat.n_works, users.n_ratings)
        need = users.n_ratings - np.bincount(user, minlength=n_users)
        if not need.any():
            break
    n = user.size

    # Editions: the first edition gets most of a work's ratings.
    cum = np.array([[1.0, 1.0], [0.7, 1.0], [0.6, 0.88]])[cat.work_n_editions[work] - 1]
    u = rng.random(n)
    edition = (u >= cum[:, 0]).astype(np.int64) + (u >= cum[:, 1])
    isbn = cat.work_isbn_start[work] + edition

    # Explicit values follow taste match; ~60% of rows are implicit (0).
    subj_w = cat.work_subjects[work]
    fav_s = users.fav_subjects[user]
    m_primary = (fav_s == subj_w[:, :1]).any(axis=1)
    m_other = ((subj_w[:, 1:, None] == fav_s[:, None, :]) & (subj_w[:, 1:, None] >= 0)).any(
        axis=(1, 2)
    )
    m_author = (users.fav_authors[user] == cat.work_author[work][:, None]).any(axis=1)
    value = (
        6.7
        + 1.8 * m_primary
        + 0.7 * (m_other & ~m_primary)
        + 1.0 * m_author
        + users.bias[user]
        + cat.work_quality[work]
        + rng.normal(0.0, 1.2, n)
    )
    explicit = np.clip(np.rint(value), 1, 10).astype(np.int64)
    implicit = rng.random(n) < users.p_implicit[user]
    rating = np.where(implicit, 0, explicit).astype(np.int64)
    return _Ratings(user=user, work=work, isbn=isbn.astype(np.int64), rating=rating)
