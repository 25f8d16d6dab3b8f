"""ALS confidence of one interaction: shared so the server's fold-in weighs a new
rating exactly as training weighed the old ones.

With s = rating / 5 for an explicit rating 1..10 (a 10 counts twice an
implicit read, a 1 a fifth of it) and, for an implicit interaction (rating 0),
s = its weight: the count an implicit source gave (plays, clicks), 1 when it
gave none (a Book-Crossing "read", a RateBook 0):

- ``rating``: c = 1 + alpha * s
- ``log``:    c = 1 + alpha * log(1 + s)   (flattens the explicit scale)
- ``binary``: c = 1 + alpha                (ignores the rating value)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

SCHEMES = ("rating", "log", "binary")


def confidence(
    ratings: npt.ArrayLike, alpha: float, scheme: str, weights: npt.ArrayLike | None = None
) -> npt.NDArray[np.float32]:
    r = np.asarray(ratings)
    implicit = np.float32(1.0) if weights is None else np.asarray(weights, dtype=np.float32)
    strength = np.where(r > 0, r.astype(np.float32) / 5.0, implicit)
    if scheme == "rating":
        conf = 1.0 + alpha * strength
    elif scheme == "log":
        conf = 1.0 + alpha * np.log1p(strength)
    elif scheme == "binary":
        conf = np.full(r.shape, 1.0 + alpha)
    else:
        raise ValueError(f"unknown confidence scheme {scheme!r}: use one of {', '.join(SCHEMES)}")
    out: npt.NDArray[np.float32] = conf.astype(np.float32)
    return out
