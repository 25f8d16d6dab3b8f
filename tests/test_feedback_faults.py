"""Acknowledged ratings survive `kill -9` of the server and train exactly once (issue 11,
"Faults: Feedback").

A real server on loopback writes its feedback log into a copy of the tiny data
directory; a new user rates N books, each RateBook acknowledged, then the whole
server is SIGKILLed. Two `trainer run`s on that directory must each hold every
rating once: N interactions for the user in the store, the store's and the
manifest's interaction totals exactly N above the data without feedback.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from grpc_health.v1 import health_pb2

from bookrec.artifact import newest_valid
from bookrec.v1 import feedback_pb2
from bookrec.v1.feedback_pb2_grpc import FeedbackServiceStub
from tests.fault_table import record_fault
from tests.serverproc import own_connection, running_server
from tests.trainerproc import ROOT, train, trainer_env

USER = "fault-feedback-user"
N = 12
SPLIT_PARTS = ("train", "val", "test", "cold")
TRAINER = (sys.executable, "-m", "trainer")


def _query(store: Path, sql: str, params: tuple[str, ...] = ()) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(store)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _interactions(store: Path) -> int:
    return int(str(_query(store, "SELECT COUNT(*) FROM interactions")[0][0]))


def _user_ratings(store: Path) -> list[tuple[object, ...]]:
    return sorted(
        _query(
            store,
            "SELECT w.work_id, i.rating FROM interactions i JOIN users u USING (user_idx) "
            "JOIN works w USING (item_idx) WHERE u.user_id = ?",
            (USER,),
        )
    )


def _manifest_total(artifact: Path) -> int:
    counts = json.loads((artifact / "manifest.json").read_text())["counts"]
    return sum(int(counts[p]) for p in SPLIT_PARTS)


def test_acknowledged_ratings_survive_kill_9_and_train_exactly_once(
    tiny_data: Path, artifact_root: Path, tmp_path: Path
) -> None:
    baseline = tmp_path / "baseline.sqlite"
    ingest = subprocess.run(
        [*TRAINER, "ingest", "--data", str(tiny_data), "--store", f"sqlite:///{baseline}"],
        cwd=ROOT,
        env=trainer_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ingest.returncode == 0, ingest.stderr[-3000:]
    books = [
        str(r[0])
        for r in _query(
            baseline,
            "SELECT w.work_id FROM interactions i JOIN works w USING (item_idx) "
            f"GROUP BY w.work_id ORDER BY COUNT(*) DESC, w.work_id LIMIT {N}",
        )
    ]
    assert len(books) == N
    sent = sorted((b, 1 + k % 10) for k, b in enumerate(books))

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    with running_server(artifact_root, data) as server:
        server.wait_health(health_pb2.HealthCheckResponse.SERVING)
        with own_connection(server.target) as ch:
            stub = FeedbackServiceStub(ch)
            for book, rating in sent:
                reply = stub.RateBook(
                    feedback_pb2.RateBookRequest(user_id=USER, book_id=book, rating=rating),
                    timeout=10,
                )
                assert reply.accepted
        server.proc.send_signal(signal.SIGKILL)  # the whole server, right after the last ack
        assert server.proc.wait(timeout=10) == -signal.SIGKILL
    assert server.feedback_log == data / "feedback" / "ratings.jsonl"
    logged = [json.loads(line) for line in server.feedback_log.read_text().splitlines()]
    assert sorted((d["book_id"], d["rating"]) for d in logged) == sent

    store = tmp_path / "store.sqlite"
    artifacts = tmp_path / "artifacts"
    totals = []
    for _ in range(2):
        result = train(data, artifacts, f"sqlite:///{store}")
        assert result.returncode == 0, result.stderr[-3000:]
        published = newest_valid(artifacts)
        assert published is not None
        assert _user_ratings(store) == sent
        assert _interactions(store) == _interactions(baseline) + N
        totals.append(_manifest_total(published[0]))
    assert totals == [_interactions(baseline) + N] * 2
    record_fault(
        f"server kill -9 right after {N} acknowledged RateBook ratings, then two training runs",
        f"every acknowledged rating is in the feedback log; each run stores the user's {N} "
        f"ratings once and its manifest counts exactly {N} interactions more than the data "
        "without feedback; the second run does not double them",
    )
