"""Every book-subject pair the features stage drops is counted, by rule."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import pytest

from bookrec.artifact import read_manifest
from trainer import features
from trainer.cleaning.subjects import (
    BOOKS_LOSING,
    BOOKS_OVER_CAP,
    DROPPED_BEYOND_MAX,
    DROPPED_CAP,
    DROPPED_RARE,
    REPORT_KEYS,
    SUBJECT_PAIRS,
    SUBJECTS_UNUSED,
    build_vocab,
)
from trainer.evaluation.split import TRAIN, SplitConfig
from trainer.features import build_features
from trainer.snapshot import Snapshot
from trainer.store.store import Store

DROPS = (DROPPED_RARE, DROPPED_BEYOND_MAX, DROPPED_CAP)


def test_each_rule_counts_what_it_drops() -> None:
    train = [["a", "b", "c", "d"], ["a", "b", "c", "d"], ["a", "b", "c"], ["a", "e"]]
    # counts: a 4, b 3, c 3, d 2, e 1; min_books 2 -> e is rare; max_subjects 3 -> d overflows
    vocab = build_vocab(train, min_books=2, max_subjects=3)
    assert vocab.slugs == ("a", "b", "c") and vocab.overflow == frozenset({"d"})
    books = [
        ["a", "b", "c", "d"],  # d beyond max_subjects; then a, b, c: c past the cap of 2
        ["e", "a"],  # e rare
        ["c", "c", "a"],  # a repeated part is merged, not dropped
        ["zz"],  # a part no training book carries is rare
        [],
        ["b"],
    ]
    rows, report = vocab.encode_books(books, limit=2)
    assert rows == [[0, 1], [0], [2, 0], [], [], [1]]
    assert report == {
        SUBJECT_PAIRS: 4 + 2 + 2 + 1 + 0 + 1,
        DROPPED_RARE: 2,  # e, zz
        DROPPED_BEYOND_MAX: 1,  # d
        DROPPED_CAP: 1,  # c of the first book
        BOOKS_OVER_CAP: 1,
        BOOKS_LOSING: 3,  # books 0, 1, 3
        SUBJECTS_UNUSED: 0,
    }
    # c is the third subject of every book that carries it first: a cap of 2 leaves it none
    _, report = vocab.encode_books([["a", "b", "c"], ["b", "a", "c"]], limit=2)
    assert report[SUBJECTS_UNUSED] == 1 and report[DROPPED_CAP] == 2
    assert [vocab.encode(b, 2) for b in books] == rows  # the same encoding as before


def _snapshot(tiny_artifact: Path, url: str) -> Snapshot:
    """The split the tiny artifact was trained on (freeze_split reuses it)."""

    async def export() -> Snapshot:
        async with await Store.open(url) as store:
            return await store.export(await store.freeze_split(SplitConfig()))

    return asyncio.run(export())


def _check(snap: Snapshot, feats: features.Features) -> None:
    report = feats.subject_report
    assert set(report) == set(REPORT_KEYS)
    assert report[SUBJECT_PAIRS] == sum(len(set(s)) for s in snap.subjects)
    kept = int((feats.book_subjects >= 0).sum())
    assert kept == report[SUBJECT_PAIRS] - sum(report[k] for k in DROPS)
    losing = [
        i for i, s in enumerate(snap.subjects) if (feats.book_subjects[i] >= 0).sum() < len(set(s))
    ]
    assert report[BOOKS_LOSING] == len(losing)
    assert report[BOOKS_OVER_CAP] <= report[BOOKS_LOSING]
    carried = np.unique(feats.book_subjects[feats.book_subjects >= 0])
    assert report[SUBJECTS_UNUSED] == len(feats.vocab.slugs) - len(carried)


def test_features_report_and_log_every_drop(
    tiny_artifact: Path,
    tiny_store: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    snap = _snapshot(tiny_artifact, tiny_store)
    with caplog.at_level(logging.INFO, logger=features.__name__):
        feats = build_features(snap)
    _check(snap, feats)
    lines = [r for r in caplog.records if r.getMessage() == "subjects reduced"]
    assert len(lines) == 1
    fields = lines[0].__dict__["fields"]  # bookrec.log.kv
    assert {k: fields[k] for k in REPORT_KEYS} == feats.subject_report
    assert fields["max_subjects_per_book"] == features.MAX_SUBJECTS_PER_BOOK

    # Tighter rules drop more, and each drop lands in its own count.
    monkeypatch.setattr(features, "MAX_SUBJECTS_PER_BOOK", 1)
    tight = build_features(snap, min_subject_books=3, max_subjects=5)
    _check(snap, tight)
    assert tight.book_subjects.shape[1] == 1 and len(tight.vocab.slugs) == 5
    r = tight.subject_report
    assert r[DROPPED_RARE] > 0 and r[DROPPED_BEYOND_MAX] > 0 and r[DROPPED_CAP] > 0
    train_books = np.unique(snap.items[snap.mask(TRAIN)])
    assert r[BOOKS_LOSING] > len(train_books) // 2


def test_the_manifest_records_the_subject_report(tiny_artifact: Path) -> None:
    counts = read_manifest(tiny_artifact).counts
    assert set(REPORT_KEYS) <= set(counts)
    assert counts[SUBJECT_PAIRS] >= sum(counts[k] for k in DROPS)
