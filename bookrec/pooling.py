"""Pooling a set of subjects into one vector, with numpy: the serving half of the
subject model (trainer/models/subject_model.py trains it with torch; tests check both
agree to 1e-5). Weights per pooling are documented there and stored in the
artifact as ``subject_pool_<name>.npy``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

POOLINGS = ("scalar", "vector", "attention")
_NORM_EPS = 1e-12  # as F.normalize's default: x / max(|x|, eps), so zero rows stay zero
_CHUNK = 16384  # rows pooled at once by numpy: bounds memory to ~50 MiB at dim 32

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.integer]


def weight_shapes(pooling: str, n_subjects: int, dim: int) -> dict[str, tuple[int, ...]]:
    """Names and shapes of a pooling's weights: what a loader must find on disk."""
    check_pooling(pooling)
    if pooling == "scalar":
        return {"logits": (n_subjects,)}
    if pooling == "vector":
        return {"logits": (n_subjects, dim)}
    return {"key": (dim, dim), "value": (dim, dim), "query": (dim,)}


def check_pooling(pooling: str) -> None:
    if pooling not in POOLINGS:
        raise ValueError(
            f"unknown subject pooling {pooling!r}: choose one of {', '.join(POOLINGS)}"
        )


def check_lists(name: str, lists: npt.NDArray[np.generic], n_subjects: int) -> None:
    if lists.ndim != 2 or not np.issubdtype(lists.dtype, np.integer):
        raise ValueError(f"{name} must be a 2-D integer array, got {lists.dtype} {lists.shape}")
    if lists.size and (int(lists.min()) < -1 or int(lists.max()) >= n_subjects):
        raise ValueError(
            f"{name} holds subject indices outside [-1, {n_subjects}): "
            f"min {int(lists.min())}, max {int(lists.max())}"
        )


def check_weights(
    pooling: str, subject_vectors: npt.NDArray[np.generic], weights: Mapping[str, np.ndarray]
) -> None:
    if subject_vectors.ndim != 2:
        raise ValueError(f"subject_vectors must be 2-D, got shape {subject_vectors.shape}")
    n_subjects, dim = subject_vectors.shape
    expected = weight_shapes(pooling, n_subjects, dim)
    if set(weights) != set(expected):
        raise ValueError(
            f"{pooling} pooling needs weights {sorted(expected)}, got {sorted(weights)}"
        )
    for name, shape in expected.items():
        if tuple(weights[name].shape) != shape:
            raise ValueError(
                f"{pooling} pooling weight {name!r} must have shape {shape}, "
                f"got {tuple(weights[name].shape)}"
            )


# ---------------------------------------------------------------- numpy (serving) side


def _np_masked_softmax(logits: FloatArray, mask: npt.NDArray[np.bool_], axis: int) -> FloatArray:
    filled = np.where(mask, logits, np.float32(-np.inf))
    top = filled.max(axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, np.float32(0.0))
    e = np.exp(filled - top)
    out: FloatArray = e / np.maximum(e.sum(axis=axis, keepdims=True), np.float32(1e-30))
    return out


def _np_pool_chunk(
    pooling: str, vectors: FloatArray, weights: Mapping[str, FloatArray], lists: IntArray
) -> FloatArray:
    mask = lists >= 0
    if len(vectors) == 0:  # a model without subjects: every list is empty
        return np.zeros((len(lists), vectors.shape[1]), dtype=np.float32)
    idx = np.where(mask, lists, 0)
    x = vectors[idx]  # (n, S, dim)
    if pooling == "scalar":
        p = _np_masked_softmax(weights["logits"][idx], mask, axis=1)
        out: FloatArray = (p[:, :, None] * x).sum(axis=1)
        return out
    if pooling == "vector":
        p = _np_masked_softmax(weights["logits"][idx], mask[:, :, None], axis=1)
        out = (p * x).sum(axis=1)
        return out
    dim = vectors.shape[1]
    keys = x @ weights["key"]
    values = x @ weights["value"]
    scores = ((keys @ weights["query"]) / np.float32(math.sqrt(dim))).astype(np.float32)
    p = _np_masked_softmax(scores, mask, axis=1)
    m = mask[:, :, None].astype(np.float32)
    mean = (x * m).sum(axis=1) / np.maximum(m.sum(axis=1), np.float32(1.0))
    out = (p[:, :, None] * values).sum(axis=1) + mean
    return out


def pool(
    pooling: str,
    subject_vectors: FloatArray,
    weights: Mapping[str, FloatArray],
    subject_lists: IntArray,
) -> FloatArray:
    """Pool each row of ``subject_lists`` ((n, S), -1 padded) into a (n, dim) float32 vector.

    Numpy only and needs nothing but the exported arrays, so the server can use it on
    the loaded ``subject_pool_<name>.npy`` files; equal to the training forward pass."""
    check_pooling(pooling)
    check_weights(pooling, subject_vectors, weights)
    lists = np.asarray(subject_lists)
    check_lists("subject_lists", lists, subject_vectors.shape[0])
    vectors = np.asarray(subject_vectors, dtype=np.float32)
    w = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
    out = np.zeros((lists.shape[0], vectors.shape[1]), dtype=np.float32)
    if lists.shape[1] == 0:
        return out
    for start in range(0, lists.shape[0], _CHUNK):
        out[start : start + _CHUNK] = _np_pool_chunk(
            pooling, vectors, w, lists[start : start + _CHUNK]
        )
    return out


def normalise(x: FloatArray) -> FloatArray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: FloatArray = (x / np.maximum(norms, np.float32(_NORM_EPS))).astype(np.float32)
    return out


def pooled_user_vector(
    pooling: str,
    subject_vectors: FloatArray,
    weights: Mapping[str, FloatArray],
    subjects: Sequence[int],
) -> FloatArray:
    """A set of favourite subjects as one L2-normalised (dim,) vector; none gives zeros."""
    members = np.unique(np.asarray(list(subjects), dtype=np.int64))
    members = members[members >= 0].reshape(1, -1)
    out: FloatArray = normalise(pool(pooling, subject_vectors, weights, members))[0]
    return out
