"""goodbooks-10k through the whole cleaning path (real books and tags, sample ratings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.cleaning.clean import clean
from trainer.cleaning.interactions import KCore
from trainer.sources.ingest import read_data_dir

pytestmark = pytest.mark.shared_data


def test_goodbooks_cleans_into_works_with_subjects_and_ratings(
    shared_data: Path, tmp_path: Path
) -> None:
    src = shared_data / "goodbooks-10k"
    for name in ("books.csv", "tags.csv"):
        (tmp_path / name).symlink_to(src / name)
    for name in ("ratings.csv", "book_tags.csv"):
        (tmp_path / name).symlink_to(src / "samples" / name)
    data = clean(read_data_dir(tmp_path), KCore())
    assert len(data.works) == 10_000  # one goodreads work per book
    hunger = next(w for w in data.works if w.title == "The Hunger Games" and w.series)
    assert (hunger.series, hunger.series_volume, hunger.author) == (
        "The Hunger Games",
        1,
        "Suzanne Collins",
    )
    assert hunger.isbns == ["9780439023481"]  # recovered from the zero-lost ISBN-10
    assert data.interactions and all(
        r % 2 == 0 and 2 <= r <= 10 and weight == 1.0 for _, _, r, _, weight in data.interactions
    )
    with_subjects = [w for w in data.works if w.subjects]
    assert with_subjects  # the sample book_tags cover a few books
    assert all("to read" not in w.subjects for w in with_subjects)
