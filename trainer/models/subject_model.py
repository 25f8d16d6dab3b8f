"""Subject embeddings pooled into book and user vectors (PyTorch to train, numpy to serve).

Why: a cold user has no history, only a few favourite subjects. Pooling those subjects
into the same space as each book's pooled subjects gives a content score with no
per-user parameter, so it works for people the model never saw.

Training minimises ``MSE + contrastive_weight * InfoNCE``:

- rating regression on every explicit training rating whose user has a favourite
  subject and whose book has a subject (the others are skipped):
  ``r = mu + mean(subject_bias over the book's subjects) + scale * cos(user, book)``,
  where ``user`` pools the user's favourite subjects and ``book`` the book's subjects;
- InfoNCE on subject co-occurrence: pairs of distinct subjects drawn from one book
  (uniform over the books with at least two subjects, catalogue metadata only), in-batch
  negatives, symmetric, with negatives that repeat the anchor or the positive masked.

Pooling a set of subjects with member vectors ``x_i`` (rows of ``subject_vectors``);
padding (-1) is masked, member order never matters, an empty set pools to zeros. The
float32 weights, stored by the artifact as ``subject_pool_<name>.npy``, are:

- ``scalar``: ``logits`` (n_subjects,). Weights ``softmax_i(logits[s_i])``; output
  ``sum_i w_i x_i``.
- ``vector``: ``logits`` (n_subjects, dim). The softmax over the members runs separately
  for each dimension d: ``out[d] = sum_i softmax_i(logits[s_i, d]) x_i[d]``.
- ``attention``: ``key`` (dim, dim), ``value`` (dim, dim), ``query`` (dim,). Row-vector
  convention: ``k_i = x_i @ key``, ``v_i = x_i @ value``, scores ``k_i @ query / sqrt(dim)``;
  output ``sum_i softmax_i(score_i) v_i + mean_i x_i``. The residual mean keeps a plain
  average as the starting point (``value`` starts as the identity) so attention only has
  to learn a correction.

``SubjectModel.head`` (float32) holds the rating head: ``mu`` (), ``scale`` () and
``subject_bias`` (n_subjects,); ``predict_ratings`` applies it with numpy.

torch is imported only by the training functions: ``pool``, ``book_vectors`` and
``user_vector`` run with numpy alone. Threads: on shared, busy CPUs OpenMP's default
spin-wait makes ``threads=2`` several times slower than 1 (bookcrossing scale: 70-124 s
against 15-24 s); start the process with ``OMP_WAIT_POLICY=PASSIVE`` (read when torch
loads) or train with ``threads=1`` there. Two threads give bit-identical runs too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from bookrec.pooling import (
    FloatArray,
    IntArray,
    check_lists,
    check_pooling,
    check_weights,
    normalise,
    pool,
)
from trainer.errors import InputError, ModelFitError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class SubjectModelParams:
    dim: int = 32
    pooling: str = "attention"
    epochs: int = 4
    batch_size: int = 2048
    lr: float = 0.01
    contrastive_weight: float = 0.5
    contrastive_batch_size: int = 512  # co-occurring pairs per step; 511 in-batch negatives
    temperature: float = 0.2
    weight_decay: float = 1e-5
    seed: int = 0
    threads: int = 2

    def __post_init__(self) -> None:
        check_pooling(self.pooling)
        for name in ("dim", "epochs", "threads"):
            if getattr(self, name) < 1:
                raise InputError(f"subject model {name} must be >= 1, got {getattr(self, name)}")
        for name in ("batch_size", "contrastive_batch_size"):
            if getattr(self, name) < 2:
                raise InputError(f"subject model {name} must be >= 2, got {getattr(self, name)}")
        for name in ("lr", "temperature"):
            if not getattr(self, name) > 0:
                raise InputError(f"subject model {name} must be > 0, got {getattr(self, name)}")
        for name in ("contrastive_weight", "weight_decay"):
            if not getattr(self, name) >= 0:
                raise InputError(f"subject model {name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class SubjectModel:
    pooling: str
    subject_vectors: FloatArray  # (n_subjects, dim)
    weights: dict[str, FloatArray]  # the pooling's parameters, see the module docstring
    # per epoch: rating_rmse and contrastive (means over the epoch's training batches),
    # val_rmse when val was given and has an eligible row (same rows rule as training)
    history: list[dict[str, float]]
    head: dict[str, FloatArray] = field(default_factory=dict)  # mu, scale, subject_bias

    @property
    def dim(self) -> int:
        return int(self.subject_vectors.shape[1])


def book_vectors(model: SubjectModel, book_subjects: IntArray) -> FloatArray:
    """L2-normalised pooled subjects per book; books without subjects get zero rows."""
    return normalise(pool(model.pooling, model.subject_vectors, model.weights, book_subjects))


def user_vector(model: SubjectModel, subjects: Sequence[int]) -> FloatArray:
    """A cold user's favourite subjects as one L2-normalised (dim,) vector.

    Duplicates are dropped (a set, as in training); no subjects gives zeros."""
    members = np.unique(np.asarray(list(subjects), dtype=np.int64))
    members = members[members >= 0].reshape(1, -1)
    out: FloatArray = book_vectors(model, members)[0]
    return out


def predict_ratings(
    model: SubjectModel,
    favourite_subjects: IntArray,
    book_subjects: IntArray,
    users: IntArray,
    items: IntArray,
) -> FloatArray:
    """The rating head with numpy: mu + book's subject bias + scale * cos(user, book)."""
    if not model.head:
        raise ValueError("this subject model has no rating head (mu, scale, subject_bias)")
    u = normalise(pool(model.pooling, model.subject_vectors, model.weights, favourite_subjects))
    b_lists = np.asarray(book_subjects)[items]
    b = book_vectors(model, b_lists)
    mask = b_lists >= 0
    bias = np.where(mask, model.head["subject_bias"][np.where(mask, b_lists, 0)], 0).sum(1)
    bias = bias / np.maximum(mask.sum(1), 1)
    cos = (u[users] * b).sum(axis=1)
    out: FloatArray = (model.head["mu"] + bias + model.head["scale"] * cos).astype(np.float32)
    return out


# ---------------------------------------------------------------- torch (training) side
# torch is imported inside these functions only: the server imports this module for
# ``pool`` and must not need torch.


def _gather(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows of a 1-D or 2-D table. F.embedding's backward sums repeated indices in a
    fixed order (two threads give bit-identical runs); plain indexing's did not."""
    from torch.nn import functional as F

    if table.dim() == 1:
        return F.embedding(idx, table.unsqueeze(1)).squeeze(-1)
    return F.embedding(idx, table)


def _masked_softmax(logits: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Softmax over the members only; a set without members gets all-zero weights."""
    import torch

    filled = logits.masked_fill(~mask, -math.inf)
    top = filled.amax(dim=dim, keepdim=True).detach()
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    e = torch.exp(filled - top)
    return e / e.sum(dim=dim, keepdim=True).clamp_min(1e-30)


def _init_pool_weights(
    pooling: str, n_subjects: int, dim: int, gen: torch.Generator
) -> dict[str, torch.Tensor]:
    """Every pooling starts as (a multiple of) the plain mean of the members."""
    import torch

    if pooling == "scalar":
        w = {"logits": torch.zeros(n_subjects)}
    elif pooling == "vector":
        w = {"logits": torch.zeros(n_subjects, dim)}
    else:
        std = 1.0 / math.sqrt(dim)
        w = {
            "key": torch.randn(dim, dim, generator=gen) * std,
            "value": torch.eye(dim),
            "query": torch.randn(dim, generator=gen) * std,
        }
    return {k: v.requires_grad_() for k, v in w.items()}


def _torch_pool(
    pooling: str, vectors: torch.Tensor, w: Mapping[str, torch.Tensor], lists: torch.Tensor
) -> torch.Tensor:
    """The training forward of every pooling; ``_np_pool_chunk`` mirrors it op for op."""
    mask = lists >= 0
    idx = lists.clamp_min(0)
    x = _gather(vectors, idx)  # (n, S, dim)
    if pooling == "scalar":
        p = _masked_softmax(_gather(w["logits"], idx), mask, dim=1)
        return (p.unsqueeze(-1) * x).sum(dim=1)
    if pooling == "vector":
        p = _masked_softmax(_gather(w["logits"], idx), mask.unsqueeze(-1), dim=1)
        return (p * x).sum(dim=1)
    scores = (x @ w["key"]) @ w["query"] / math.sqrt(x.shape[-1])
    p = _masked_softmax(scores, mask, dim=1)
    m = mask.unsqueeze(-1).to(x.dtype)
    mean = (x * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)
    return (p.unsqueeze(-1) * (x @ w["value"])).sum(dim=1) + mean


@dataclass(frozen=True)
class _Net:
    """All trainable tensors: subject vectors, pooling weights and the rating head."""

    pooling: str
    vectors: torch.Tensor  # (n_subjects, dim)
    pool: dict[str, torch.Tensor]
    mu: torch.Tensor  # ()
    scale: torch.Tensor  # ()
    subject_bias: torch.Tensor  # (n_subjects,)

    @classmethod
    def create(
        cls, pooling: str, n_subjects: int, dim: int, mu: float, scale: float, seed: int
    ) -> _Net:
        import torch

        gen = torch.Generator().manual_seed(seed)  # local: leaves the global RNG alone
        return cls(
            pooling,
            (torch.randn(n_subjects, dim, generator=gen) * 0.1).requires_grad_(),
            _init_pool_weights(pooling, n_subjects, dim, gen),
            torch.tensor(mu, dtype=torch.float32, requires_grad=True),
            # cos is in [-1, 1]: starting at the ratings' spread saves many steps
            torch.tensor(scale, dtype=torch.float32, requires_grad=True),
            torch.zeros(n_subjects, requires_grad=True),
        )

    def parameters(self) -> list[torch.Tensor]:
        return [self.vectors, *self.pool.values(), self.mu, self.scale, self.subject_bias]

    def predict(self, favourites: torch.Tensor, subjects: torch.Tensor) -> torch.Tensor:
        from torch.nn import functional as F

        u = F.normalize(_torch_pool(self.pooling, self.vectors, self.pool, favourites), dim=1)
        b = F.normalize(_torch_pool(self.pooling, self.vectors, self.pool, subjects), dim=1)
        mask = (subjects >= 0).to(self.vectors.dtype)
        bias = (_gather(self.subject_bias, subjects.clamp_min(0)) * mask).sum(dim=1)
        bias = bias / mask.sum(dim=1).clamp_min(1.0)
        return self.mu + bias + self.scale * (u * b).sum(dim=1)


class _Adam:
    """Adam with L2 weight decay, as torch.optim.Adam computes it. torch.optim's first use
    imports torch._dynamo (about 3 s here), longer than a small training run takes."""

    def __init__(self, params: list[torch.Tensor], lr: float, weight_decay: float) -> None:
        import torch

        self.params, self.lr, self.weight_decay = params, lr, weight_decay
        self.beta1, self.beta2, self.eps, self.t = 0.9, 0.999, 1e-8, 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    def step(self) -> None:
        import torch

        self.t += 1
        step = self.lr / (1 - self.beta1**self.t)
        unbias2 = math.sqrt(1 - self.beta2**self.t)
        with torch.no_grad():
            for p, m, v in zip(self.params, self.m, self.v, strict=True):
                if p.grad is None:
                    continue
                g = p.grad.add(p, alpha=self.weight_decay) if self.weight_decay else p.grad
                m.mul_(self.beta1).add_(g, alpha=1 - self.beta1)
                v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
                p.addcdiv_(m, (v.sqrt() / unbias2).add_(self.eps), value=-step)
                p.grad = None


def torch_pool(
    pooling: str,
    subject_vectors: FloatArray,
    weights: Mapping[str, FloatArray],
    subject_lists: IntArray,
) -> FloatArray:
    """``pool`` computed by the torch forward that training uses, on the given weights.

    A reference for tests: proves the numpy serving path equals the trained forward."""
    import torch

    check_pooling(pooling)
    check_weights(pooling, subject_vectors, weights)
    w = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in weights.items()}
    vectors = torch.from_numpy(np.asarray(subject_vectors, dtype=np.float32))
    lists = torch.from_numpy(np.asarray(subject_lists, dtype=np.int64))
    with torch.no_grad():
        out: FloatArray = _torch_pool(pooling, vectors, w, lists).numpy().astype(np.float32)
    return out


def _info_nce(
    vectors: torch.Tensor, a: torch.Tensor, b: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Symmetric InfoNCE; in-batch negatives equal to the anchor or its positive are
    masked (popular subjects repeat within a batch and are not negatives of themselves)."""
    import torch
    from torch.nn import functional as F

    za = F.normalize(_gather(vectors, a), dim=1)
    zb = F.normalize(_gather(vectors, b), dim=1)
    logits = za @ zb.T / temperature
    off_diag = ~torch.eye(len(a), dtype=torch.bool)
    bad_ab = ((b[None, :] == b[:, None]) | (b[None, :] == a[:, None])) & off_diag
    bad_ba = ((a[None, :] == a[:, None]) | (a[None, :] == b[:, None])) & off_diag
    target = torch.arange(len(a))
    loss_ab = F.cross_entropy(logits.masked_fill(bad_ab, -math.inf), target)
    loss_ba = F.cross_entropy(logits.T.masked_fill(bad_ba, -math.inf), target)
    return (loss_ab + loss_ba) / 2


class _PairSampler:
    """Draws pairs of distinct subjects that share a book, uniformly over such books."""

    def __init__(self, book_subjects: IntArray) -> None:
        valid = book_subjects >= 0
        counts = valid.sum(axis=1)
        self.books = np.flatnonzero(counts >= 2)
        rows = book_subjects[self.books]
        order = np.argsort(~valid[self.books], axis=1, kind="stable")  # members first
        self.members = np.take_along_axis(rows, order, axis=1).astype(np.int64)
        self.counts = counts[self.books].astype(np.int64)

    def __bool__(self) -> bool:
        return len(self.books) > 0

    def sample(self, rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        pick = rng.integers(0, len(self.books), size=n)
        c = self.counts[pick]
        i = rng.integers(0, c)
        j = (i + 1 + rng.integers(0, c - 1)) % c
        rows = self.members[pick]
        a = rows[np.arange(n), i]
        b = rows[np.arange(n), j]
        import torch

        return torch.from_numpy(a), torch.from_numpy(b)


def _eligible(
    favourite_subjects: IntArray,
    book_subjects: IntArray,
    users: IntArray,
    items: IntArray,
    ratings: npt.NDArray[np.integer],
) -> npt.NDArray[np.intp]:
    """Rows with an explicit rating, a user with a favourite and a book with a subject."""
    user_has = np.asarray((favourite_subjects >= 0).any(axis=1), dtype=np.bool_)
    book_has = np.asarray((book_subjects >= 0).any(axis=1), dtype=np.bool_)
    return np.flatnonzero((ratings > 0) & user_has[users] & book_has[items])


def _check_interactions(
    name: str,
    users: npt.NDArray[np.generic],
    items: npt.NDArray[np.generic],
    ratings: npt.NDArray[np.generic],
    n_users: int,
    n_items: int,
) -> None:
    if not (users.ndim == items.ndim == ratings.ndim == 1):
        raise ValueError(f"{name} users, items and ratings must be 1-D arrays")
    if not (len(users) == len(items) == len(ratings)):
        raise ValueError(
            f"{name} users, items and ratings differ in length: "
            f"{len(users)}, {len(items)}, {len(ratings)}"
        )
    for what, arr, n in (("users", users, n_users), ("items", items, n_items)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} {what} must be integers, got {arr.dtype}")
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= n):
            raise ValueError(f"{name} {what} must be indices in [0, {n}), got {int(arr.max())}")


def _evaluate(
    net: _Net, fav: torch.Tensor, subj: torch.Tensor, rows: tuple[torch.Tensor, ...]
) -> float:
    import torch

    users, items, ratings = rows
    sse = 0.0
    with torch.no_grad():
        for start in range(0, len(users), 65536):
            sl = slice(start, start + 65536)
            pred = net.predict(fav[users[sl]], subj[items[sl]])
            sse += float(((pred - ratings[sl]) ** 2).sum())
    return math.sqrt(sse / len(users))


def _numpy(t: torch.Tensor) -> FloatArray:
    out: FloatArray = t.detach().numpy().astype(np.float32, copy=True)
    return out


def train_subject_model(
    book_subjects: IntArray,
    favourite_subjects: IntArray,
    n_subjects: int,
    users: IntArray,
    items: IntArray,
    ratings: npt.NDArray[np.integer],
    params: SubjectModelParams,
    val: tuple[IntArray, IntArray, npt.NDArray[np.integer]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> SubjectModel:
    """Train subject vectors and a pooling on training ratings and subject co-occurrence.

    ``users/items/ratings`` are the training interactions (0 = implicit, skipped);
    ``val`` adds ``val_rmse`` to each epoch's history, over the same eligible rows.
    Deterministic for the same inputs, params and thread count."""
    import torch

    check_pooling(params.pooling)
    if n_subjects < 1:
        raise ValueError(f"n_subjects must be >= 1, got {n_subjects}")
    book_subjects = np.asarray(book_subjects)
    favourite_subjects = np.asarray(favourite_subjects)
    check_lists("book_subjects", book_subjects, n_subjects)
    check_lists("favourite_subjects", favourite_subjects, n_subjects)
    users, items, ratings = np.asarray(users), np.asarray(items), np.asarray(ratings)
    n_users, n_items = favourite_subjects.shape[0], book_subjects.shape[0]
    _check_interactions("training", users, items, ratings, n_users, n_items)
    rows = _eligible(favourite_subjects, book_subjects, users, items, ratings)
    if len(rows) == 0:
        raise ValueError(
            "no training data for the subject model: no explicit rating (> 0) whose user "
            "has a favourite subject and whose book has a subject"
        )
    val_rows: tuple[torch.Tensor, ...] | None = None
    if val is not None:
        vu, vi, vr = (np.asarray(a) for a in val)
        _check_interactions("val", vu, vi, vr, n_users, n_items)
        keep = _eligible(favourite_subjects, book_subjects, vu, vi, vr)
        if len(keep):
            val_rows = (
                torch.from_numpy(vu[keep].astype(np.int64)),
                torch.from_numpy(vi[keep].astype(np.int64)),
                torch.from_numpy(vr[keep].astype(np.float32)),
            )

    old_threads = torch.get_num_threads()
    torch.set_num_threads(params.threads)
    try:
        return _train(
            book_subjects, favourite_subjects, n_subjects, users[rows], items[rows],
            ratings[rows], params, val_rows, progress,
        )  # fmt: skip
    finally:
        torch.set_num_threads(old_threads)


def _train(
    book_subjects: IntArray,
    favourite_subjects: IntArray,
    n_subjects: int,
    users: IntArray,
    items: IntArray,
    ratings: npt.NDArray[np.integer],
    params: SubjectModelParams,
    val_rows: tuple[torch.Tensor, ...] | None,
    progress: Callable[[str], None] | None,
) -> SubjectModel:
    import torch

    rng = np.random.default_rng(params.seed)
    fav = torch.from_numpy(favourite_subjects.astype(np.int64))
    subj = torch.from_numpy(book_subjects.astype(np.int64))
    u_t = torch.from_numpy(users.astype(np.int64))
    i_t = torch.from_numpy(items.astype(np.int64))
    r_t = torch.from_numpy(ratings.astype(np.float32))
    spread = max(float(r_t.std(correction=0)), 0.1)
    net = _Net.create(
        params.pooling, n_subjects, params.dim, float(r_t.mean()), spread, params.seed
    )
    opt = _Adam(net.parameters(), params.lr, params.weight_decay)
    pairs = _PairSampler(book_subjects) if params.contrastive_weight > 0 else None
    history: list[dict[str, float]] = []
    n = len(r_t)
    for epoch in range(params.epochs):
        t0 = time.perf_counter()
        order = torch.from_numpy(rng.permutation(n))
        sse, nce_sum, steps = 0.0, 0.0, 0
        for start in range(0, n, params.batch_size):
            batch = order[start : start + params.batch_size]
            pred = net.predict(fav[u_t[batch]], subj[i_t[batch]])
            err = pred - r_t[batch]
            mse = (err**2).mean()
            loss = mse
            if pairs:
                a, b = pairs.sample(rng, params.contrastive_batch_size)
                nce = _info_nce(net.vectors, a, b, params.temperature)
                loss = mse + params.contrastive_weight * nce
                nce_sum += float(nce.detach())
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            sse += float(mse.detach()) * len(batch)
            steps += 1
        entry = {"rating_rmse": math.sqrt(sse / n), "contrastive": nce_sum / steps}
        if val_rows is not None:
            entry["val_rmse"] = _evaluate(net, fav, subj, val_rows)
        history.append(entry)
        if progress is not None:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in entry.items())
            progress(
                f"subject model ({params.pooling}) epoch {epoch + 1}/{params.epochs}: "
                f"{shown} ({time.perf_counter() - t0:.1f}s)"
            )
    model = _exported(net, params.pooling, history)
    arrays = [model.subject_vectors, *model.weights.values(), *model.head.values()]
    if not all(np.isfinite(x).all() for x in arrays):
        raise ModelFitError("subject model produced NaN/inf weights: lower lr or temperature")
    return model


def _exported(net: _Net, pooling: str, history: list[dict[str, float]]) -> SubjectModel:
    weights = {name: _numpy(w) for name, w in net.pool.items()}
    head = {name: _numpy(getattr(net, name)) for name in ("mu", "scale", "subject_bias")}
    return SubjectModel(pooling, _numpy(net.vectors), weights, history, head)


def initial_subject_model(n_subjects: int, params: SubjectModelParams) -> SubjectModel:
    """The model before any training step, for data that cannot train one (no subject,
    or no explicit rating on a book with one: implicit-only data such as play counts).
    Its seeded vectors still tell subjects apart, and cold start leans on the subject
    lift and the prior; the manifest's empty history says it was not trained."""
    net = _Net.create(params.pooling, n_subjects, params.dim, 0.0, 1.0, params.seed)
    return _exported(net, params.pooling, [])


def trainable(
    book_subjects: IntArray,
    favourite_subjects: IntArray,
    n_subjects: int,
    users: IntArray,
    items: IntArray,
    ratings: npt.NDArray[np.integer],
) -> bool:
    """Whether ``train_subject_model`` has anything to learn from."""
    return (
        n_subjects >= 1
        and len(_eligible(favourite_subjects, book_subjects, users, items, ratings)) > 0
    )
