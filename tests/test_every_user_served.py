"""Every user in the input is served by the published model, never by popularity, and
never shown a book they rated: the split estimates quality, the refit serves everyone.

Small generated data sets (through the generic importer, so explicit and implicit
data both pass) with held-out users: the split's cold users, its validation and
test parts, and users with a single rating all have their ratings in the file the
trainer read, so the model must know them.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.engine.bundle import Bundle
from server.engine.recommend import recommend
from server.engine.types import Filters, Source
from trainer.config import TrainerConfig
from trainer.pipeline import run


def _write(
    data: Path, seed: int, n_users: int, n_items: int, implicit: bool, timed: bool
) -> dict[str, set[str]]:
    rng = np.random.default_rng(seed)
    rated: dict[str, set[str]] = {}
    lines = []
    popularity = rng.zipf(1.6, n_items).astype(float)
    p = popularity / popularity.sum()
    for u in range(n_users):
        count = int(rng.integers(1, 16))
        items = rng.choice(n_items, size=min(count, n_items), replace=False, p=p)
        user = f"u{u}"
        rated[user] = {f"i{i}" for i in items.tolist()}
        for n, i in enumerate(items.tolist()):
            value = int(rng.integers(1, 300)) if implicit else int(rng.integers(1, 6))
            stamp = f",{1_600_000_000 + 3600 * n + u}" if timed else ""
            lines.append(f"{user},i{i},{value}{stamp}")
    data.mkdir(parents=True)
    header = "user,item,value" + (",timestamp" if timed else "")
    (data / "interactions.csv").write_text(header + "\n" + "\n".join(lines) + "\n")
    return rated


@settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 10_000),
    n_users=st.integers(40, 80),
    n_items=st.integers(25, 60),
    implicit=st.booleans(),
    timed=st.booleans(),
)
def test_every_input_user_is_known_and_never_shown_a_rated_book(
    seed: int, n_users: int, n_items: int, implicit: bool, timed: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rated = _write(root / "data", seed, n_users, n_items, implicit, timed)
        cfg = TrainerConfig(
            data_dir=root / "data",
            artifacts_dir=root / "artifacts",
            store_url=f"sqlite:///{root / 'store.sqlite'}",
            interaction_kind="implicit" if implicit else "explicit",
            rating_scale="1..5",
            min_holdout=3,
            cold_user_fraction=0.2,
            study_trials=2,
            study_seconds=60.0,
            item_item_trials=1,
            subject_epochs=1,
            threads=1,
            seed=seed,
        )
        result = asyncio.run(run(cfg))
        bundle = Bundle.open(result.artifact)
        assert bundle.manifest.counts["users"] == len(rated)
        for user, books in rated.items():
            ranked = recommend(bundle, user, 10, Filters(), explain=False)
            assert ranked.source in (Source.ALS, Source.ALS_RERANKED), (user, ranked.source)
            shown = {bundle.book_ids[s.item] for s in ranked.items}
            assert not shown & books, (user, shown & books)
            assert ranked.items, user  # a list, not an empty answer
