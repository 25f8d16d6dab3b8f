"""ALS's user step for one user: shared by the server (new ratings, users the model
has not met) and the trainer (scoring those users), so both solve the same thing.

    x_u = (YᵀY + λI + Σ_i (c_ui - 1) y_i y_iᵀ)⁻¹ Σ_i c_ui y_i

over the user's rated items with the confidences c of bookrec/confidence.py and
the trained λ; this is implicit's ``recalculate_user``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]


def fold_in(item_factors: F32, yty: F64, regularization: float, items: I32, conf: F32) -> F32:
    """The least-squares user vector for ``items`` rated with confidences ``conf``."""
    y = np.asarray(item_factors[items], dtype=np.float64)
    c = np.asarray(conf, dtype=np.float64)
    a = yty + regularization * np.eye(yty.shape[0]) + (y.T * (c - 1.0)) @ y
    b = c @ y
    out: F32 = np.linalg.solve(a, b).astype(np.float32)
    return out
