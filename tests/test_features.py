"""Features see the training split only: held-out ratings cannot leak into them."""

from __future__ import annotations

import asyncio
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from trainer.evaluation.split import COLD, TEST, TRAIN, VAL, SplitConfig
from trainer.features import Features, build_features
from trainer.snapshot import Snapshot
from trainer.store.store import Store


def _snapshot(tiny_artifact: Path, url: str) -> Snapshot:
    """The split the tiny artifact was trained on (freeze_split reuses it)."""

    async def export() -> Snapshot:
        async with await Store.open(url) as store:
            return await store.export(await store.freeze_split(SplitConfig()))

    return asyncio.run(export())


def _equal(a: Features, b: Features) -> None:
    assert a.vocab == b.vocab
    for name in ("book_subjects", "favourite_subjects"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for agg in ("book", "user", "popularity"):
        for f in fields(getattr(a, agg)):
            np.testing.assert_array_equal(
                getattr(getattr(a, agg), f.name), getattr(getattr(b, agg), f.name)
            )


def test_changing_held_out_ratings_changes_no_training_feature(
    tiny_artifact: Path, tiny_store: str
) -> None:
    snap = _snapshot(tiny_artifact, tiny_store)
    base = build_features(snap)
    for part in (VAL, TEST, COLD):
        held = np.flatnonzero(snap.parts == part)
        assert len(held) > 100
        ratings = snap.ratings.copy()
        ratings[held] = np.where(ratings[held] == 10, 1, 10)  # flip every held-out rating
        _equal(base, build_features(replace(snap, ratings=ratings)))


def test_changing_a_training_rating_does_change_features(
    tiny_artifact: Path, tiny_store: str
) -> None:
    """The check above can fail: train ratings do reach the features."""
    snap = _snapshot(tiny_artifact, tiny_store)
    base = build_features(snap)
    train = np.flatnonzero(snap.parts == TRAIN)
    ratings = snap.ratings.copy()
    ratings[train[:50]] = 10
    changed = build_features(replace(snap, ratings=ratings))
    assert not np.array_equal(base.book.mean, changed.book.mean)


def test_vocabulary_and_aggregates_cover_only_training_books(
    tiny_artifact: Path, tiny_store: str
) -> None:
    snap = _snapshot(tiny_artifact, tiny_store)
    feats = build_features(snap)
    train_items = set(snap.items[snap.parts == TRAIN].tolist())
    assert set(np.flatnonzero(feats.book.count).tolist()) == train_items
    for subject in feats.vocab.index:
        assert sum(subject in snap.subjects[i] for i in train_items) >= 2


def test_year_buckets() -> None:
    from bookrec.rerank_features import year_buckets

    years = np.array([0, 1850, 1900, 1999, 2005, 2026], dtype=np.int16)
    assert year_buckets(years).tolist() == [0, 1, 2, 11, 12, 14]
