"""Id lookups and grouping without Python objects per row behave like the dicts they replace."""

from __future__ import annotations

import numpy as np

from bookrec.artifact import StringColumn, encode_strings
from bookrec.rerank_features import dense_ids
from server.engine.ids import IdIndex, group_ids


def column(values: list[str]) -> StringColumn:
    return StringColumn(*encode_strings(values))


def test_id_index_answers_like_a_dict() -> None:
    ids = ["OL1W", "9", "OL12W", "Château-1", "u-ß", "OL2W", "b"]
    index = IdIndex(column(ids))
    expected = {v: i for i, v in enumerate(ids)}
    assert dict(index.items()) == expected
    assert len(index) == len(ids) and sorted(index) == sorted(ids)
    for key in ("OL1", "OL1WW", "", "x" * 100, "Chateau-1", "ß"):
        assert key not in index and index.get(key) is None
    assert index["Château-1"] == 3
    assert IdIndex(column([])).get("a") is None


def test_group_ids_keep_the_equality_of_dense_ids() -> None:
    values = ["Ann", "", "Bo", "Ann", "unknown", "Bo", "Cy", "", "unknown"]
    a, b = group_ids(column(values), none="unknown"), dense_ids(values, none="unknown")
    assert ((a == 0) == (b == 0)).all()
    assert (np.equal.outer(a, a) == np.equal.outer(b, b)).all()
