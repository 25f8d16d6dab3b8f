"""Subject model: the numpy serving path equals the torch training path, pooling ignores
order and padding, and training recovers planted preferences and co-occurrence."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest
import torch

from bookrec.pooling import POOLINGS, pool, weight_shapes
from trainer.models.subject_model import (
    SubjectModel,
    SubjectModelParams,
    book_vectors,
    predict_ratings,
    torch_pool,
    train_subject_model,
    user_vector,
)

# One thread: the test box's two cores are shared, and OpenMP threads waiting for a busy
# core make small steps far slower (two threads were checked bit-identical by hand).
FAST = SubjectModelParams(
    dim=16, epochs=12, batch_size=256, contrastive_batch_size=64, lr=0.02, threads=1
)
Ints = npt.NDArray[np.int32]
Data = tuple[Ints, Ints, tuple[Ints, Ints, npt.NDArray[np.int8]]]


def _random_weights(
    pooling: str, n_subjects: int, dim: int, rng: np.random.Generator
) -> dict[str, npt.NDArray[np.float32]]:
    """Large enough that the softmax weights are far from uniform."""
    return {
        name: (2.0 * rng.standard_normal(shape)).astype(np.float32)
        for name, shape in weight_shapes(pooling, n_subjects, dim).items()
    }


def _lists(rng: np.random.Generator, n: int, n_subjects: int, width: int) -> npt.NDArray[np.int32]:
    """Distinct members per row, -1 padding anywhere in the row, some rows empty."""
    out = np.full((n, width), -1, dtype=np.int32)
    for i in range(n):
        k = int(rng.integers(0, width + 1))
        slots = rng.choice(width, size=k, replace=False)
        out[i, slots] = rng.choice(n_subjects, size=k, replace=False)
    out[0] = -1
    return out


@pytest.mark.parametrize("pooling", POOLINGS)
def test_numpy_pool_equals_torch_forward(pooling: str) -> None:
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((30, 8)).astype(np.float32)
    weights = _random_weights(pooling, 30, 8, rng)
    lists = _lists(rng, 200, 30, 6)
    got = pool(pooling, vectors, weights, lists)
    assert got.dtype == np.float32 and got.shape == (200, 8)
    np.testing.assert_allclose(
        got, torch_pool(pooling, vectors, weights, lists), rtol=1e-5, atol=1e-5
    )
    assert not got[0].any()  # an empty row pools to zeros
    assert np.abs(got[(lists >= 0).any(axis=1)]).sum(axis=1).min() > 0


@pytest.mark.parametrize("pooling", POOLINGS)
def test_pool_ignores_member_order_and_padding(pooling: str) -> None:
    rng = np.random.default_rng(2)
    vectors = rng.standard_normal((25, 8)).astype(np.float32)
    weights = _random_weights(pooling, 25, 8, rng)
    compact = np.full((100, 4), -1, dtype=np.int32)
    wide = np.full((100, 11), -1, dtype=np.int32)
    for i in range(100):
        members = rng.choice(25, size=int(rng.integers(1, 5)), replace=False)
        compact[i, : len(members)] = members
        wide[i, rng.choice(11, size=len(members), replace=False)] = rng.permutation(members)
    np.testing.assert_allclose(
        pool(pooling, vectors, weights, compact), pool(pooling, vectors, weights, wide), atol=1e-5
    )


def _planted(seed: int = 0) -> Data:
    """Users whose favourite subject is A rate books with subject A 9ish, all others 2ish."""
    rng = np.random.default_rng(seed)
    n_subjects, n_books, n_users = 6, 300, 120
    book_subjects = np.full((n_books, 8), -1, dtype=np.int32)
    book_subjects[:, 0] = np.arange(n_books) % n_subjects
    second = rng.random(n_books) < 0.4
    book_subjects[second, 1] = (
        book_subjects[second, 0] + rng.integers(1, n_subjects, second.sum())
    ) % 6
    favourites = np.full((n_users, 5), -1, dtype=np.int32)
    favourites[:, 0] = np.arange(n_users) % n_subjects
    users = np.repeat(np.arange(n_users), 30).astype(np.int32)
    items = rng.integers(0, n_books, len(users)).astype(np.int32)
    likes = (book_subjects[items] == favourites[users, :1]).any(axis=1)
    ratings = (np.where(likes, 9, 2) + rng.integers(-1, 2, len(users))).astype(np.int8)
    return book_subjects, favourites, (users, items, ratings)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_planted_preferences_are_recovered(pooling: str) -> None:
    book_subjects, favourites, (users, items, ratings) = _planted()
    val = np.arange(len(users)) % 5 == 0
    train = ~val
    model = train_subject_model(
        book_subjects, favourites, 6, users[train], items[train], ratings[train],
        replace(FAST, pooling=pooling), val=(users[val], items[val], ratings[val]),
    )  # fmt: skip
    books = book_vectors(model, book_subjects)
    np.testing.assert_allclose(np.linalg.norm(books, axis=1), 1.0, atol=1e-5)
    for a in range(6):
        cos = books @ user_vector(model, [a])
        main_a = book_subjects[:, 0] == a
        assert cos[main_a].mean() > cos[~main_a].mean() + 0.3, (a, cos[main_a].mean())
    baseline = float(np.sqrt(np.mean((ratings[val] - ratings[train].mean()) ** 2)))
    val_rmse = model.history[-1]["val_rmse"]
    assert val_rmse < 0.5 * baseline, (val_rmse, baseline)
    # the numpy rating head reproduces the torch evaluation of the same rows
    pred = predict_ratings(model, favourites, book_subjects, users[val], items[val])
    np.testing.assert_allclose(np.sqrt(np.mean((pred - ratings[val]) ** 2)), val_rmse, rtol=1e-4)
    assert set(model.history[0]) == {"rating_rmse", "contrastive", "val_rmse"}


def _co_occurrence() -> Data:
    """Subjects 2k and 2k+1 always share a book; a third random subject sometimes joins."""
    rng = np.random.default_rng(3)
    n_books = 400
    book_subjects = np.full((n_books, 8), -1, dtype=np.int32)
    k = np.arange(n_books) % 10
    book_subjects[:, 0], book_subjects[:, 1] = 2 * k, 2 * k + 1
    third = rng.random(n_books) < 0.3
    book_subjects[third, 2] = (2 * k[third] + rng.integers(2, 20, third.sum())) % 20
    favourites = rng.integers(0, 20, (50, 5)).astype(np.int32)
    users = rng.integers(0, 50, 500).astype(np.int32)
    items = rng.integers(0, n_books, 500).astype(np.int32)
    ratings = rng.integers(1, 11, 500).astype(np.int8)
    return book_subjects, favourites, (users, items, ratings)


def test_co_occurring_subjects_end_closer() -> None:
    book_subjects, favourites, (users, items, ratings) = _co_occurrence()
    params = replace(FAST, pooling="scalar", contrastive_weight=2.0, epochs=20)
    model = train_subject_model(book_subjects, favourites, 20, users, items, ratings, params)
    v = model.subject_vectors / np.linalg.norm(model.subject_vectors, axis=1, keepdims=True)
    cos = v @ v.T
    planted = np.array([cos[2 * k, 2 * k + 1] for k in range(10)])
    others = np.array(
        [cos[i, j] for i in range(20) for j in range(i + 1, 20) if j != i + 1 or i % 2]
    )
    assert planted.mean() > others.mean() + 0.4, (planted.mean(), others.mean())
    assert model.history[-1]["contrastive"] < model.history[0]["contrastive"]


def _same(a: SubjectModel, b: SubjectModel) -> None:
    np.testing.assert_allclose(a.subject_vectors, b.subject_vectors, atol=1e-6, rtol=0)
    for left, right in ((a.weights, b.weights), (a.head, b.head)):
        assert left.keys() == right.keys()
        for name in left:
            np.testing.assert_allclose(left[name], right[name], atol=1e-6, rtol=0)


def test_training_is_deterministic_and_leaves_torch_threads_alone() -> None:
    book_subjects, favourites, (users, items, ratings) = _planted(seed=4)
    params = replace(FAST, epochs=3)
    threads = torch.get_num_threads()
    first = train_subject_model(book_subjects, favourites, 6, users, items, ratings, params)
    assert torch.get_num_threads() == threads
    second = train_subject_model(book_subjects, favourites, 6, users, items, ratings, params)
    _same(first, second)
    assert first.history == second.history
    other = train_subject_model(
        book_subjects, favourites, 6, users, items, ratings, replace(params, seed=1)
    )
    assert np.abs(other.subject_vectors - first.subject_vectors).max() > 1e-3


@pytest.mark.parametrize("pooling", POOLINGS)
def test_exported_weights_have_documented_names_and_shapes(pooling: str) -> None:
    book_subjects, favourites, (users, items, ratings) = _planted(seed=5)
    params = replace(FAST, pooling=pooling, epochs=1)
    model = train_subject_model(book_subjects, favourites, 6, users, items, ratings, params)
    assert model.subject_vectors.shape == (6, 16) and model.subject_vectors.dtype == np.float32
    expected = weight_shapes(pooling, 6, 16)
    assert {k: v.shape for k, v in model.weights.items()} == expected
    assert all(w.dtype == np.float32 for w in model.weights.values())
    # the server only has the arrays: pooling from them alone equals book_vectors
    lists = book_subjects[:50]
    ref = torch_pool(pooling, model.subject_vectors, model.weights, lists)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(book_vectors(model, lists), ref, atol=1e-5)


def test_user_vector_is_a_normalised_set() -> None:
    book_subjects, favourites, (users, items, ratings) = _planted(seed=6)
    model = train_subject_model(
        book_subjects, favourites, 6, users, items, ratings, replace(FAST, epochs=1)
    )
    v = user_vector(model, [3, 1])
    assert v.shape == (16,) and v.dtype == np.float32
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(user_vector(model, [1, 3, 3, 1]), v, atol=1e-6)
    assert not user_vector(model, []).any()


def test_bad_inputs_raise_clear_errors() -> None:
    book_subjects, favourites, (users, items, ratings) = _planted(seed=7)
    with pytest.raises(ValueError, match="unknown subject pooling 'mean'"):
        SubjectModelParams(pooling="mean")
    with pytest.raises(ValueError, match="unknown subject pooling"):
        pool("mean", np.zeros((6, 4), np.float32), {}, book_subjects)
    with pytest.raises(ValueError, match="needs weights"):
        pool(
            "attention",
            np.zeros((6, 4), np.float32),
            {"logits": np.zeros(6, np.float32)},
            book_subjects,
        )
    with pytest.raises(ValueError, match="must have shape"):
        pool(
            "scalar",
            np.zeros((6, 4), np.float32),
            {"logits": np.zeros(5, np.float32)},
            book_subjects,
        )
    with pytest.raises(ValueError, match="outside"):
        pool(
            "scalar",
            np.zeros((5, 4), np.float32),
            {"logits": np.zeros(5, np.float32)},
            book_subjects,
        )
    implicit = np.zeros_like(ratings)
    with pytest.raises(ValueError, match="no training data"):
        train_subject_model(book_subjects, favourites, 6, users, items, implicit, FAST)
    with pytest.raises(ValueError, match="differ in length"):
        train_subject_model(book_subjects, favourites, 6, users[:-1], items, ratings, FAST)
    with pytest.raises(ValueError, match="items must be indices"):
        train_subject_model(book_subjects[:10], favourites, 6, users, items, ratings, FAST)
    with pytest.raises(ValueError, match="book_subjects holds subject indices outside"):
        train_subject_model(book_subjects, favourites, 3, users, items, ratings, FAST)
    with pytest.raises(ValueError, match="2-D integer"):
        train_subject_model(book_subjects[:, 0], favourites, 6, users, items, ratings, FAST)
