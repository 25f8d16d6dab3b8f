"""The journeys new and light users take, built from the frozen split: the trainer's
protocol for every decision about users the model does not know.

Public API (also used by bench/model_quality.py):

- ``build(snap, book_subjects, seed, folds=FOLDS, ns=NS, max_users=None) -> Journeys``:
  every user of the snapshot (any part) is given a fold by a seeded hash of their id;
  ``Journeys.journeys`` maps a name to a ``Journey``:

  - ``"subjects"`` (only when books carry subjects): ColdStart with favourite subjects
    only. The favourites stand for what a user picks at sign-up: the most frequent
    subjects (up to ``N_FAVOURITES``) of their first ``SUBJECT_SEED`` positive ratings.
    Those first ratings are not told to the service (they are only excluded from the
    list); the rest are the targets.
  - ``"n=1"``, ``"n=3"``, ``"n=5"``, ``"n=10"``: a user with n rated items, then
    Recommend. The known items are their earliest n by time when every interaction has
    a timestamp, a seeded random n otherwise (``Journeys.timed`` says which); every
    other interaction of theirs is a target. Eligible: users with more than n.

- ``fit_mask(snap, journeys, fold) -> bool mask``: the rows a fold's models may be
  fitted on: the training part of every user outside the fold. A journey user's own
  rows never reach the model that scores them, so every eligible user is scored once,
  by a model that never saw them (k-fold over users, not a sample).
  A journey no user can take (nobody rated more than n) is left out.
- ``known_items(snap, journey) -> list[I32]``: the item rows each user told the
  service (history for ``n=*``; the excluded seed for ``subjects``).
- ``Journey.in_fold(fold) -> positions``: the positions of one fold's users.

Users are the unit of every interval (trainer/evaluation/bootstrap.py ``paired``).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from trainer.evaluation.split import TRAIN
from trainer.snapshot import Snapshot

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
NS = (1, 3, 5, 10)  # ratings known in the Recommend journeys
FOLDS = 3  # each fold refits ALS and item-item: 5 took 730 s on Last.fm under load
SUBJECT_SEED = 3  # the first positive ratings whose subjects stand for the favourites
N_FAVOURITES = 3
SUBJECTS = "subjects"


def journey_name(n: int) -> str:
    return f"n={n}"


@dataclass(frozen=True)
class Journey:
    name: str
    n: int  # ratings the service knows (0: favourite subjects only)
    users: I32  # snapshot user rows
    folds: I32  # each user's fold
    known: list[I64]  # snapshot rows the user told the service (subjects: the seed)
    favourites: list[list[int]]  # subject rows, most frequent first ("subjects" only)
    targets: list[set[int]]  # item rows

    def in_fold(self, fold: int) -> npt.NDArray[np.intp]:
        return np.flatnonzero(self.folds == fold)

    def take(self, pos: npt.NDArray[np.intp]) -> Journey:
        """The journey restricted to positions ``pos`` (in that order)."""
        idx = pos.tolist()
        return Journey(
            self.name,
            self.n,
            self.users[pos],
            self.folds[pos],
            [self.known[i] for i in idx],
            [self.favourites[i] for i in idx] if self.favourites else [],
            [self.targets[i] for i in idx],
        )


@dataclass(frozen=True)
class Journeys:
    folds: int
    timed: bool  # known items are each user's earliest (else a seeded random draw)
    fold_of: I32  # (n_users,) every user's fold
    journeys: dict[str, Journey]


def _hash(seed: int, *parts: str) -> bytes:
    return hashlib.blake2b(
        "|".join((str(seed), "journey", *parts)).encode(), digest_size=8
    ).digest()


def user_folds(user_ids: list[str], seed: int, folds: int) -> I32:
    """A seeded fold per user, from their external id only."""
    out = np.array(
        [int.from_bytes(_hash(seed, "fold", u), "big") % folds for u in user_ids], dtype=np.int32
    )
    return out


def ordered_rows(snap: Snapshot, seed: int) -> tuple[list[I64], bool]:
    """Each user's rows, earliest first when every row has a timestamp, else in a
    seeded random order (ties by item id)."""
    timed = len(snap.timestamps) > 0 and bool((snap.timestamps >= 0).all())
    order = np.argsort(snap.users, kind="stable")
    bounds = np.searchsorted(snap.users[order], np.arange(snap.n_users + 1))
    out: list[I64] = []
    for u in range(snap.n_users):
        rows = order[bounds[u] : bounds[u + 1]].astype(np.int64)
        if timed:
            key = sorted(
                rows.tolist(),
                key=lambda r: (int(snap.timestamps[r]), snap.work_ids[snap.items[r]]),
            )
        else:
            uid = snap.user_ids[u]
            key = sorted(
                rows.tolist(),
                key=lambda r: (_hash(seed, uid, snap.work_ids[snap.items[r]]), r),
            )
        out.append(np.array(key, dtype=np.int64))
    return out, timed


def _cap(users: list[int], max_users: int | None, seed: int, ids: list[str]) -> list[int]:
    if max_users is None or len(users) <= max_users:
        return users
    keys = sorted(users, key=lambda u: _hash(seed, "cap", ids[u]))
    return sorted(keys[:max_users])


def build(
    snap: Snapshot,
    book_subjects: npt.NDArray[np.integer],
    seed: int,
    folds: int = FOLDS,
    ns: tuple[int, ...] = NS,
    max_users: int | None = None,
) -> Journeys:
    """Every journey on every eligible user (``max_users``: a seeded cap per journey)."""
    rows_of, timed = ordered_rows(snap, seed)
    fold_of = user_folds(snap.user_ids, seed, folds)
    out: dict[str, Journey] = {}
    if bool((np.asarray(book_subjects) >= 0).any()):
        subjects = _subjects(snap, book_subjects, rows_of, fold_of, seed, max_users)
        if len(subjects.users):
            out[SUBJECTS] = subjects
    for n in ns:
        users = [u for u in range(snap.n_users) if len(rows_of[u]) > n]
        users = _cap(users, max_users, seed, snap.user_ids)
        if not users:  # no user rated more than n: no such journey
            continue
        known = [rows_of[u][:n] for u in users]
        targets = [{int(i) for i in snap.items[rows_of[u][n:]].tolist()} for u in users]
        ua = np.array(users, dtype=np.int32)
        out[journey_name(n)] = Journey(journey_name(n), n, ua, fold_of[ua], known, [], targets)
    return Journeys(folds, timed, fold_of, out)


def _subjects(
    snap: Snapshot,
    book_subjects: npt.NDArray[np.integer],
    rows_of: list[I64],
    fold_of: I32,
    seed: int,
    max_users: int | None,
) -> Journey:
    users, seeds, favs, targets = [], [], [], []
    bs = np.asarray(book_subjects)
    for u in range(snap.n_users):
        rows = rows_of[u]
        positive = [r for r in rows.tolist() if snap.ratings[r] == 0 or snap.ratings[r] >= 6][
            :SUBJECT_SEED
        ]
        if not positive:
            continue
        last = rows.tolist().index(positive[-1])
        rest = rows[last + 1 :]
        if len(rest) == 0:
            continue
        counts = Counter(int(s) for r in positive for s in bs[snap.items[r]].tolist() if s >= 0)
        fav = [s for s, _ in sorted(counts.items(), key=lambda t: (-t[1], t[0]))[:N_FAVOURITES]]
        if not fav:
            continue
        users.append(u)
        seeds.append(rows[: last + 1])
        favs.append(fav)
        targets.append({int(i) for i in snap.items[rest].tolist()})
    keep = set(_cap(users, max_users, seed, snap.user_ids))
    idx = [i for i, u in enumerate(users) if u in keep]
    ua = np.array([users[i] for i in idx], dtype=np.int32)
    return Journey(
        SUBJECTS,
        0,
        ua,
        fold_of[ua],
        [seeds[i] for i in idx],
        [favs[i] for i in idx],
        [targets[i] for i in idx],
    )


def fit_mask(snap: Snapshot, journeys: Journeys, fold: int) -> npt.NDArray[np.bool_]:
    """Rows a fold's models are fitted on: the training part of users outside the fold."""
    out: npt.NDArray[np.bool_] = (snap.parts == TRAIN) & (journeys.fold_of[snap.users] != fold)
    return out


def known_items(snap: Snapshot, journey: Journey) -> list[I32]:
    return [snap.items[rows].astype(np.int32) for rows in journey.known]
