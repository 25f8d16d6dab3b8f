"""ALS on Spark MLlib behind the same artifact (issue 23 item 3).

- MLlib's user step is what the server's fold-in solves once it scales λ by the
  user's ratings (manifest ``als.regularization_scaling = "count"``): a fold-in of a
  trained user's own ratings gives back that user's factors; without the scaling it
  does not.
- `trainer run --als-engine spark --spark-master spark://...` on a standalone cluster
  (a master and two workers, each in its own network namespace, the trainer in a
  fourth: tests/netns.py) publishes an artifact the server loads and answers from,
  whose ALS scores within the interval of the implicit fit's on the same split.

Needs Java and pyspark (the ``spark`` extra; .ci/run installs both). The cluster test
is root only (namespaces); CI runs as root with BOOKREC_REQUIRE_NETNS=1.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bookrec.fold_in import FewRatings, fold_in
from bookrec.v1 import recommender_pb2
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub
from server.engine.bundle import Bundle
from tests import netns
from tests.serverproc import own_connection, ready_server
from tests.trainerproc import ROOT, trainer_env
from trainer.models import spark_als
from trainer.models.als import ALSParams, confidence_matrix

SPARK = ALSParams(
    factors=16,
    iterations=8,
    regularization=0.05,
    alpha=10.0,
    scheme="rating",
    engine="spark",
    regularization_scaling="count",
)


@pytest.fixture(scope="module")
def local_spark() -> Iterator[None]:
    """Spark on this machine, one core (no cluster: the maths, not the transport)."""
    spark_als.configure(spark_als.SparkSettings("local[1]", "512m"))
    try:
        yield
    finally:
        spark_als.stop()


@pytest.mark.timeout(600)
def test_fold_in_of_own_ratings_gives_back_mllib_user_factors(local_spark: None) -> None:
    rng = np.random.default_rng(0)
    n_users, n_items, nnz = 300, 200, 6000
    users = rng.integers(0, n_users, nnz).astype(np.int32)
    items = rng.integers(0, n_items, nnz).astype(np.int32)
    ratings = rng.integers(1, 11, nnz).astype(np.int8)
    matrix = confidence_matrix(users, items, ratings, n_users, n_items, SPARK.alpha, "rating")
    matrix.sum_duplicates()
    model = spark_als.fit(matrix, SPARK)
    assert model.user_factors.shape == (n_users, 16) and model.item_factors.shape == (n_items, 16)

    y = model.item_factors
    yty = y.astype(np.float64).T @ y.astype(np.float64)
    probe = [u for u in range(40) if matrix.indptr[u + 1] > matrix.indptr[u]]
    rows = [matrix.indices[matrix.indptr[u] : matrix.indptr[u + 1]] for u in probe]
    conf = [matrix.data[matrix.indptr[u] : matrix.indptr[u + 1]] for u in probe]
    worst, unscaled = 0.0, []
    for u, r, c in zip(probe, rows, conf, strict=True):
        want = model.user_factors[u]
        got = fold_in(y, yty, SPARK.regularization, r, c, "count")
        worst = max(worst, float(np.abs(got - want).max() / np.abs(want).max()))
        plain = fold_in(y, yty, SPARK.regularization, r, c, "none")
        unscaled.append(float(np.abs(plain - want).max() / np.abs(want).max()))
    assert worst < 1e-4, worst
    # Without λ·n the same solve is off: the scaling is what makes it MLlib's.
    assert min(unscaled) > 1e-3, min(unscaled)
    # The trainer's batched fold-in (journeys) solves the same under the scaling.
    few = FewRatings(y, yty, SPARK.regularization, "count").many(rows, conf)
    np.testing.assert_allclose(few, model.user_factors[probe], rtol=1e-4, atol=1e-5)


def test_mllib_is_given_the_confidence_it_rebuilds() -> None:
    conf = np.array([1.5, 3.0, 11.0], dtype=np.float32)
    r = spark_als.mllib_ratings(conf, alpha=2.5)
    np.testing.assert_allclose(1.0 + 2.5 * r, conf, rtol=1e-7)


# -- the cluster -------------------------------------------------------------------------

REASON = netns.skip_reason()  # never a skip in CI (BOOKREC_REQUIRE_NETNS=1)
SUBNET = "10.85.0"
MASTER, WORKERS, TRAINER = 2, (11, 12), 20


def spark_env(host: netns.Host, work: Path) -> dict[str, str]:
    import pyspark

    return {
        **os.environ,
        "SPARK_HOME": str(Path(pyspark.__file__).parent),
        "SPARK_LOCAL_IP": host.addr,
        "SPARK_DAEMON_MEMORY": "256m",  # the master's and the workers' own heaps
        "SPARK_LOG_DIR": str(work),
        "SPARK_WORKER_DIR": str(work / f"worker-{host.name}"),
        "PYSPARK_PYTHON": sys.executable,
    }


def spark_class(*args: str) -> list[str]:
    import pyspark

    return [str(Path(pyspark.__file__).parent / "bin" / "spark-class"), *args]


def start_cluster(net: netns.Net, work: Path) -> str:
    """A standalone master and two one-core workers; returns the master's URL."""
    master = net.add_host("master", MASTER)
    url = f"spark://{master.addr}:7077"
    m = master.spawn(
        spark_class(
            "org.apache.spark.deploy.master.Master",
            "--host",
            master.addr,
            "--port",
            "7077",
            "--webui-port",
            "8080",
        ),
        work / "master.log",
        env=spark_env(master, work),
    )
    netns.wait_for("the Spark master", lambda: "Starting Spark master" in m.tail(), 180, 0.5)
    for i, index in enumerate(WORKERS):
        host = net.add_host(f"w{i + 1}", index)
        host.spawn(
            spark_class(
                "org.apache.spark.deploy.worker.Worker",
                "--host",
                host.addr,
                "--cores",
                "1",
                "--memory",
                "768m",
                "--webui-port",
                "8081",
                url,
            ),
            work / f"worker-{i + 1}.log",
            env=spark_env(host, work),
        )
    netns.wait_for(
        "two Spark workers registered",
        lambda: m.tail(100_000).count("Registering worker") >= 2,
        180,
        0.5,
    )
    return url


def served_ndcg(artifact: Path, strategy: str) -> tuple[float, list[float]]:
    metrics = json.loads((artifact / "manifest.json").read_text())["metrics"]
    row = metrics["warm"][strategy]
    return float(row["ndcg@10"]), [float(x) for x in row["ndcg@10_ci"]]


@pytest.mark.timeout(1200)
@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_spark_cluster_fits_and_the_artifact_serves(
    tiny_data: Path, tiny_artifact: Path, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    with netns.Net(subnet=SUBNET, tag="spark") as net:
        url = start_cluster(net, tmp_path)
        trainer = net.add_host("trainer", TRAINER)
        env = {
            **trainer_env(),
            "SPARK_LOCAL_IP": trainer.addr,  # where the executors reach the driver
            "PYSPARK_PYTHON": sys.executable,
            # One point, MLlib's own: λ is per rating there (ALS-WR), so implicit's λ
            # (0.05) does not carry over. On the tiny set's split, measured by the
            # trainer's NDCG@10 of ALS alone: λ 0.3 0.337, λ 0.1 0.286, λ 0.01 0.237.
            "BOOKREC_TRAIN_STUDY_TRIALS": "1",
            "BOOKREC_TRAIN_ALS_GRID": "factors=64;alpha=5;regularization=0.3;scheme=log",
            "BOOKREC_TRAIN_ITEM_ITEM": "0",
            "BOOKREC_TRAIN_RERANK": "off",
        }
        argv = [sys.executable, "-m", "trainer", "run", "--data", str(tiny_data)]
        argv += ["--artifacts", str(artifacts), "--store", f"sqlite:///{tmp_path / 's.db'}"]
        argv += ["--als-engine", "spark", "--spark-master", url]
        proc = trainer.spawn(argv, tmp_path / "trainer.log", env=env, cwd=ROOT)
        assert proc.popen.wait(timeout=1100) == 0, proc.tail()
        log = proc.tail(1_000_000)
        # Every fit ran on the cluster: the driver saw both workers' executors.
        assert '"event":"spark als fit"' in log and f'"master":"{url}"' in log
    published = sorted(p for p in artifacts.iterdir() if not p.name.startswith("."))
    assert len(published) == 1
    artifact = published[0]

    # The manifest says how MLlib solved, and the server's fold-in follows it.
    bundle = Bundle.open(artifact)
    assert bundle.als.regularization_scaling == "count"
    params = json.loads((artifact / "manifest.json").read_text())["params"]["als"]
    assert params["engine"] == "spark" and params["mllib_rating"] == "(c - 1) / alpha"
    users = [u for u in range(len(bundle.user_factors)) if len(bundle.rated_items(u))][:30]
    for u in users:
        conf = bundle.train_confidence(u)
        keep = conf > 0
        got = fold_in(
            bundle.item_factors,
            bundle.yty,
            bundle.als.regularization,
            bundle.rated_items(u)[keep],
            conf[keep],
            bundle.als.regularization_scaling,
        )
        want = np.asarray(bundle.user_factors[u])
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())

    # Quality: the Spark fit's ALS not below the implicit fit's interval (its study's best
    # of 4 points), on the same split and users.
    spark_value, _ = served_ndcg(artifact, "als")
    implicit_value, (low, high) = served_ndcg(tiny_artifact, "als")
    assert low <= spark_value, (spark_value, implicit_value, low, high)
    print(f"ALS NDCG@10: spark {spark_value}, implicit {implicit_value} [{low}, {high}]")

    # The published artifact serves: a known user's Recommend answers from it.
    user_id = next(uid for uid in bundle.user_row if bundle.user_row[uid] == users[0])
    with ready_server(artifacts, tmp_path / "server") as srv, own_connection(srv.target) as ch:
        reply = RecommenderServiceStub(ch).Recommend(
            recommender_pb2.RecommendRequest(user_id=user_id, k=10)
        )
        assert len(reply.items) == 10
        assert reply.model_version == artifact.name
    runs = sqlite3.connect(tmp_path / "s.db").execute("SELECT status FROM runs").fetchall()
    assert runs == [("published",)]
