"""Item-item alone (EASE, blend weight 0) is a served model like the blend: chosen by the
trainer when it wins on the tune users, decided against ALS on the eval half, published
with weight 0, and served by the real server as EASE's own ranking.

The data plant it: 60 disjoint clusters of 12 items (one subject each), each read whole,
in the same order, by 10 readers (so each one's validation item is the cluster's 11th
and its test item the 12th), and two probe readers per cluster who rated the 11th and
two others (too few ratings to be held out). EASE's rows point exactly inside each
cluster, the 11th above the 12th (more co-readers): it ranks every validation target
first, NDCG 1 at weight 0, which no blend can beat (ties keep weight 0). ALS held to 8
factors, 4 iterations and a heavy regularisation cannot tell 60 clusters apart. The
server's lists are checked on the probe readers, who have nine books of their cluster
left to find.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import numpy as np

from bookrec import blend
from bookrec.artifact import read_manifest
from bookrec.v1 import recommender_pb2
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub
from server.engine.bundle import Bundle
from server.engine.recommend import recommend
from server.engine.types import Filters
from tests.serverproc import ready_server
from trainer.config import TrainerConfig
from trainer.pipeline import run

CLUSTERS, SIZE, READERS, PROBES, PROBE_RATINGS = 60, 12, 10, 2, 3


def _write(data: Path) -> dict[str, list[str]]:
    rng = np.random.default_rng(7)
    rated: dict[str, list[str]] = {}
    lines = ["user,item,value,timestamp"]
    for c in range(CLUSTERS):
        for r in range(READERS + PROBES):
            user = f"u{c}-{r}"
            order = list(range(SIZE))
            if r >= READERS:  # the 11th, then two of the first ten
                order = [SIZE - 2, *rng.permutation(SIZE - 2)[: PROBE_RATINGS - 1].tolist()]
            items = [f"c{c}-{i}" for i in order]
            rated[user] = items
            for t, item in enumerate(items):
                lines.append(f"{user},{item},5,{1_600_000_000 + 3600 * t + r}")
    data.mkdir(parents=True)
    (data / "interactions.csv").write_text("\n".join(lines) + "\n")
    # One subject per cluster, so every new-user journey the trainer scores has users.
    items = [f"c{c}-{i},c{c}-{i},,,topic-{c}" for c in range(CLUSTERS) for i in range(SIZE)]
    (data / "items.csv").write_text("item,title,author,year,subjects\n" + "\n".join(items) + "\n")
    return rated


def test_item_item_alone_is_chosen_published_and_served(tmp_path: Path) -> None:
    rated = _write(tmp_path / "data")
    cfg = TrainerConfig(
        data_dir=tmp_path / "data",
        artifacts_dir=tmp_path / "artifacts",
        store_url=f"sqlite:///{tmp_path / 'store.sqlite'}",
        rating_scale="1..5",
        min_holdout=PROBE_RATINGS + 1,
        als_grid="factors=8;iterations=4;regularization=100",
        study_trials=1,
        study_seconds=60.0,
        item_item_trials=1,
        rerank="off",
        subject_epochs=1,
        threads=1,
    )
    artifact = asyncio.run(run(cfg)).artifact
    manifest = read_manifest(artifact)
    metrics = manifest.metrics
    assert metrics["served"] == "item_item", metrics["item_item"]
    assert metrics["item_item"]["weight"] == 0.0 and metrics["item_item"]["served"]
    assert metrics["item_item"]["strategy"] == "item_item"
    gain = metrics["item_item"]["ndcg@10_gain"]
    assert gain["low"] > 0, gain  # decided against ALS on the eval half
    assert metrics["warm"]["item_item"]["ndcg@10"] > metrics["warm"]["als"]["ndcg@10"]
    assert manifest.params["item_item_blend"] == 0.0

    bundle = Bundle.open(artifact)
    model = bundle.item_item
    assert model is not None and model.weight == 0.0
    users = [u for u, items in rated.items() if len(items) < SIZE]
    assert len(users) == CLUSTERS * PROBES
    server_dir = tmp_path / "server"
    with (
        ready_server(tmp_path / "artifacts", server_dir) as srv,
        grpc.insecure_channel(srv.target) as ch,
    ):
        stub = RecommenderServiceStub(ch)
        for user in users:
            got = stub.Recommend(recommender_pb2.RecommendRequest(user_id=user, k=10))
            shown = [s.book.book_id for s in got.items]
            # EASE's own ranking: the summed rows of what the user rated, best first,
            # ties by book row, never a rated book.
            seeds = np.array(sorted(bundle.book_row[b] for b in rated[user]), np.int32)
            books, scores = blend.item_item_scores(
                model.indptr, model.indices, model.weights, seeds
            )
            fresh = ~np.isin(books, seeds) & (scores > 0)
            books, scores = books[fresh], scores[fresh]
            order = np.lexsort((books, -scores))
            ease = [bundle.book_ids[int(b)] for b in books[order]]
            assert ease, user
            assert shown[: len(ease)] == ease[:10], user
            # Every book left in the reader's cluster comes first.
            left = SIZE - len(rated[user])
            cluster = user.split("-")[0].replace("u", "c")
            assert all(b.startswith(cluster + "-") for b in shown[:left]), (user, shown)
            # The engine, call at a time in process, gives the same list.
            inproc = recommend(bundle, user, 10, Filters(), explain=False)
            assert [bundle.book_ids[s.item] for s in inproc.items] == shown
