"""One consistent, reproducible export of the store for one split.

Everything the feature and model code needs, as arrays ordered by the store's
stable indices. ``save`` writes it deterministically, so two exports of the same
store and split are byte-identical (the test compares the bytes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from trainer.evaluation.split import COLD, TEST, TRAIN, VAL


@dataclass(frozen=True)
class Snapshot:
    split_id: str
    # works, indexed by item_idx
    work_ids: list[str]
    titles: list[str]
    authors: list[str]
    years: npt.NDArray[np.int16]  # 0 = unknown
    pages: npt.NDArray[np.int32]
    series: list[str]
    series_volume: npt.NDArray[np.int16]
    isbns: list[list[str]]
    subjects: list[list[str]]  # normalised subject parts, main first
    # users, indexed by user_idx
    user_ids: list[str]
    age_buckets: list[str]
    countries: list[str]
    # interactions, sorted by (user_idx, item_idx)
    users: npt.NDArray[np.int32]
    items: npt.NDArray[np.int32]
    ratings: npt.NDArray[np.int8]
    timestamps: npt.NDArray[np.int64]
    parts: npt.NDArray[np.int8]
    # how much each interaction counts: an implicit source's count (plays, clicks; rating
    # 0), 1.0 for explicit ratings and for sources without counts
    weights: npt.NDArray[np.float32]
    # normalised subject part -> display name, the data's own spelling ("München")
    subject_spellings: dict[str, str] = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return len(self.work_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    def mask(self, part: int) -> npt.NDArray[np.bool_]:
        out: npt.NDArray[np.bool_] = self.parts == part
        return out

    def counts(self) -> dict[str, int]:
        return {
            "train": int((self.parts == TRAIN).sum()),
            "val": int((self.parts == VAL).sum()),
            "test": int((self.parts == TEST).sum()),
            "cold": int((self.parts == COLD).sum()),
        }

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name in (
            "years",
            "pages",
            "series_volume",
            "users",
            "items",
            "ratings",
            "timestamps",
            "parts",
            "weights",
        ):
            np.save(directory / f"{name}.npy", getattr(self, name), allow_pickle=False)
        text = {
            name: getattr(self, name)
            for name in (
                "work_ids",
                "titles",
                "authors",
                "series",
                "isbns",
                "subjects",
                "subject_spellings",
                "user_ids",
                "age_buckets",
                "countries",
            )
        }
        text["split_id"] = self.split_id
        (directory / "tables.json").write_text(json.dumps(text, sort_keys=True, ensure_ascii=False))
