"""ISBN-10s for the catalogue: realistic registration groups, valid check digits.

Why: the readers validate and normalise ISBNs, so the clean ones must be valid and unique,
and the invalid ones the dirt plants (trainer/demo/dirt.py) must be derived from real ones.
The Open Library dump also lists ISBN-13s, hence ``_isbn13``.
"""

from __future__ import annotations

import numpy as np

from trainer.demo.sampling import IntArray, _unique_draws

# Registration-group ranges of 9-digit ISBN bodies and their shares (English-heavy, like BX).
ISBN_GROUPS = (
    (0, 100_000_000, 0.68),  # 0: English
    (100_000_000, 200_000_000, 0.14),  # 1: English
    (200_000_000, 300_000_000, 0.04),  # 2: French
    (300_000_000, 400_000_000, 0.07),  # 3: German
    (840_000_000, 850_000_000, 0.04),  # 84: Spain
    (880_000_000, 890_000_000, 0.015),  # 88: Italy
    (900_000_000, 910_000_000, 0.015),  # 90: Netherlands
)


def _isbn_strings(digits: IntArray) -> list[str]:
    """ISBN-10 strings from (n, 10) digit rows, 10 meaning the check character X."""
    codes = (digits + ord("0")).astype(np.uint8)
    codes[:, 9] = np.where(digits[:, 9] == 10, ord("X"), codes[:, 9])
    raw = np.ascontiguousarray(codes).view("S10").ravel()
    out: list[str] = raw.astype("U10").tolist()
    return out


def _check_digit(body: IntArray) -> IntArray:
    """ISBN-10 check digits (10 = X) of (n, 9) digit rows."""
    s = body @ np.arange(10, 1, -1, dtype=np.int64)
    out: IntArray = (11 - s % 11) % 11
    return out


def _isbn13(isbn10: str) -> str:
    """The 978-prefixed ISBN-13 of an ISBN-10, as Open Library also lists it."""
    body = "978" + isbn10[:9]
    total = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(body))
    return body + str((10 - total % 10) % 10)


def _isbn_digits(rng: np.random.Generator, n: int, avoid: IntArray | None = None) -> IntArray:
    """``n`` distinct ISBN-10s (as digit rows, valid check digit) from realistic groups,
    none of whose bodies is in ``avoid``."""
    lo = np.array([g[0] for g in ISBN_GROUPS], dtype=np.int64)
    hi = np.array([g[1] for g in ISBN_GROUPS], dtype=np.int64)
    p = np.array([g[2] for g in ISBN_GROUPS])
    p /= p.sum()
    skip = np.empty(0, dtype=np.int64) if avoid is None else avoid

    def draw(k: int) -> IntArray:
        g = rng.choice(len(ISBN_GROUPS), size=k, p=p)
        return (lo[g] + rng.integers(0, hi[g] - lo[g])).astype(np.int64)

    bodies = np.empty(0, dtype=np.int64)
    margin = 16
    while bodies.size < n:  # a clash with ``avoid`` is rare: redraw with a wider margin
        bodies = _unique_draws(n + margin, draw)
        bodies = bodies[~np.isin(bodies, skip)][:n]
        margin *= 4
    body = (bodies[:, None] // 10 ** np.arange(8, -1, -1, dtype=np.int64)) % 10
    out: IntArray = np.concatenate([body, _check_digit(body)[:, None]], axis=1)
    return out


def _bodies(digits: IntArray) -> IntArray:
    out: IntArray = digits[:, :9] @ 10 ** np.arange(8, -1, -1, dtype=np.int64)
    return out
