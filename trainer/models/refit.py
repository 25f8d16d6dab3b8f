"""The published models: the chosen settings refit on every interaction.

The split exists to choose settings and to estimate quality. What is served
is fitted again on train + validation + test + the cold users (which includes
the ratings the server logged), so every user and book in the data is known
to the served model and none of their ratings is left out. Features
(popularity, aggregates, favourites) are rebuilt from the same rows, on the
split's subject vocabulary. The subject model and the reranker keep their split fits: their
choice rests on held-out labels a refit would not have.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from bookrec.log import kv
from trainer.features import Features, build_features
from trainer.modeling import Models
from trainer.models.als import ALSModel, train_als, training_matrix
from trainer.models.item_item import ItemItem, fit_item_item
from trainer.snapshot import Snapshot

log = logging.getLogger("trainer.models.refit")


@dataclass(frozen=True)
class Published:
    feats: Features
    als: ALSModel
    item_item: ItemItem | None


def refit(
    snap: Snapshot, split_feats: Features, models: Models, prior_strength: float
) -> Published:
    start = time.perf_counter()
    every = np.ones(len(snap.users), dtype=bool)
    # The split's vocabulary: the subject model's rows are its subjects.
    feats = build_features(
        snap, prior_strength=prior_strength, use_rows=every, vocab=split_feats.vocab
    )
    shape = (snap.n_users, snap.n_items)
    p = models.als_params
    als = train_als(
        training_matrix(snap.users, snap.items, snap.ratings, snap.weights, shape, p), p
    )
    item_item = None
    if models.item_item_params is not None:
        binary = sp.csr_matrix(
            (np.ones(len(snap.users), np.float32), (snap.users, snap.items)), shape=shape
        )
        binary.sum_duplicates()
        item_item = fit_item_item(binary, models.item_item_params)
    log.info(
        "refit on every interaction",
        extra=kv(
            interactions=len(snap.users),
            users=snap.n_users,
            item_item=item_item is not None,
            seconds=round(time.perf_counter() - start, 2),
        ),
    )
    return Published(feats, als, item_item)
