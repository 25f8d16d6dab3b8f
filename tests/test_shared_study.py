"""One ALS study shared by two trainers on two hosts (issue 23 item 2).

Each trainer runs `trainer run` in its own network namespace (tests/netns.py) and
reaches the store's MariaDB only across the virtual switch, through a database host
that relays to the real server (tests/nsforward.py). Both join one Optuna study in
that MariaDB: the trials and the clock are theirs together, exactly one of them
publishes, and a trainer killed in the middle of a trial loses no trial (the other
fails it by its silent heartbeat and runs the same point again).

Root only (namespaces); CI runs as root with BOOKREC_REQUIRE_NETNS=1, where a
namespace that cannot be made fails instead of skipping.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pymysql
import pytest
from optuna.trial import FrozenTrial, TrialState

from bookrec.artifact import newest_valid
from tests import netns
from tests.trainerproc import ROOT, trainer_env
from trainer.models import shared_study

REASON = netns.skip_reason()  # never a skip in CI (BOOKREC_REQUIRE_NETNS=1)
pytestmark = [pytest.mark.mysql, pytest.mark.skipif(REASON is not None, reason=REASON or "")]

SUBNET = "10.84.0"
DB_HOST, HOST_A, HOST_B = 2, 11, 12


@dataclass
class Cluster:
    net: netns.Net
    db: str  # the database both trainers use, as the store and as the study storage
    addr: str  # the database host's address on the switch
    data: Path
    work: Path

    def trainer(self, host: netns.Host, study: str, env: dict[str, str]) -> netns.Proc:
        url = f"mysql://root:@{self.addr}:3306/{self.db}"
        argv = [
            sys.executable,
            "-m",
            "trainer",
            "run",
            "--data",
            str(self.data),
            "--artifacts",
            str(self.work / f"artifacts-{host.name}"),
            "--store",
            url,
            "--study-storage",
            url,
            "--study-name",
            study,
        ]
        return host.spawn(
            argv,
            self.work / f"{host.name}.log",
            env={**trainer_env(), **env},
            cwd=ROOT,
            stdout=None,
        )

    def study(self, name: str) -> optuna.Study:
        url = f"mysql+pymysql://root:@127.0.0.1:3306/{self.db}"
        return optuna.load_study(study_name=name, storage=url)

    def artifacts(self, host: netns.Host) -> list[Path]:
        root = self.work / f"artifacts-{host.name}"
        if not root.exists():
            return []
        return sorted(p for p in root.iterdir() if not p.name.startswith("."))


@pytest.fixture
def cluster(tiny_data: Path, tmp_path: Path) -> Iterator[Cluster]:
    db = f"bookrec_test_{uuid.uuid4().hex[:8]}"
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
    try:
        with netns.Net(subnet=SUBNET, tag="study") as net:
            dbhost = net.add_host("db", DB_HOST)
            relay = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "tests" / "nsforward.py"),
                    dbhost.ns,
                    "3306",
                    "127.0.0.1",
                    "3306",
                ],
                stdout=subprocess.PIPE,
            )
            try:
                assert relay.stdout is not None and relay.stdout.readline() == b"listening\n"
                load_store(f"mysql://root:@127.0.0.1:3306/{db}", tiny_data)
                yield Cluster(net, db, dbhost.addr, tiny_data, tmp_path)
            finally:
                relay.kill()
                relay.wait(timeout=10)
                if relay.stdout is not None:
                    relay.stdout.close()
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE {db}")
        conn.close()


def load_store(url: str, data: Path) -> None:
    """The store made and loaded once, as the first run on a new store would: trainers
    that start together on an empty MariaDB would all create its tables at once."""
    for command in ("ingest", "split"):
        done = subprocess.run(
            [sys.executable, "-m", "trainer", command, "--data", str(data), "--store", url],
            cwd=ROOT,
            env=trainer_env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]


# Quick models after the study: the test is about the study and who publishes.
FAST = {
    "BOOKREC_TRAIN_ITEM_ITEM": "0",
    "BOOKREC_TRAIN_RERANK": "off",
    "BOOKREC_TRAIN_THREADS": "1",
}


def by_host(trials: list[FrozenTrial]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in trials:
        if t.state != TrialState.WAITING:
            out[str(t.user_attrs.get("host"))] = out.get(str(t.user_attrs.get("host")), 0) + 1
    return out


def pid_of(host_attr: Any) -> int:
    return int(str(host_attr).rsplit(":", 1)[1])


@pytest.mark.timeout(600)
def test_two_trainers_share_the_budget_and_one_publishes(cluster: Cluster) -> None:
    a, b = (cluster.net.add_host(n, i) for n, i in (("a", HOST_A), ("b", HOST_B)))
    env = {
        **FAST,
        "BOOKREC_TRAIN_STUDY_TRIALS": "10",
        "BOOKREC_TRAIN_STUDY_SECONDS": "300",  # the trial budget ends it
        "BOOKREC_TRAIN_ALS_GRID": "factors=32;alpha=5,20",
    }
    procs = [cluster.trainer(h, "shared-1", env) for h in (a, b)]
    codes = [p.popen.wait(timeout=500) for p in procs]
    assert codes == [0, 0], "\n".join(p.tail() for p in procs)
    # Exactly one of them published; the other said so and wrote nothing.
    made = {h.name: cluster.artifacts(h) for h in (a, b)}
    assert sorted(len(v) for v in made.values()) == [0, 1], made
    publisher = a if made["a"] else b
    other = b if publisher is a else a
    logs = {h.name: p.tail(200_000) for h, p in zip((a, b), procs, strict=True)}
    assert "not published here" in logs[other.name], logs[other.name][-3000:]
    assert "not published here" not in logs[publisher.name]
    # One study, one budget: 10 trials between them, both ran some.
    study = cluster.study("shared-1")
    trials = study.get_trials(deepcopy=False)
    hosts = by_host(trials)
    assert len(hosts) == 2 and min(hosts.values()) >= 2, hosts
    # Two trainers that both see 9 trials may each start the 10th: at most one over.
    assert 10 <= shared_study.counted(trials) <= 11, hosts
    outcome = study.user_attrs[shared_study.OUTCOME]
    assert outcome["status"] == "published"
    assert outcome["artifact"] == made[publisher.name][0].name
    # The published manifest records the whole study: every trainer's trials.
    found = newest_valid(cluster.work / f"artifacts-{publisher.name}")
    assert found is not None
    summary = found[1].metrics["als"]["study"]
    assert summary["shared"]["trials_by_host"] == hosts
    assert summary["best_value"] == round(study.best_value, 4)


@pytest.mark.timeout(600)
def test_a_killed_trainer_loses_no_trial(cluster: Cluster) -> None:
    a, b = (cluster.net.add_host(n, i) for n, i in (("a", HOST_A), ("b", HOST_B)))
    env = {
        **FAST,
        "BOOKREC_TRAIN_STUDY_TRIALS": "8",
        "BOOKREC_TRAIN_STUDY_SECONDS": "450",
        "BOOKREC_TRAIN_STUDY_HEARTBEAT_SECONDS": "1",  # a silent trial is failed after 3 s
        # Slow first points, so that a trial is surely running when the trainer dies.
        "BOOKREC_TRAIN_ALS_GRID": "factors=256;iterations=30;alpha=2,5,10,20",
    }
    proc_a = cluster.trainer(a, "shared-2", env)
    proc_b = cluster.trainer(b, "shared-2", env)

    def running_on_b() -> list[FrozenTrial]:
        try:
            trials = cluster.study("shared-2").get_trials(states=(TrialState.RUNNING,))
        except KeyError:  # the study is not created yet
            return []
        return [t for t in trials if pid_of(t.user_attrs.get("host", "x:0")) == proc_b.pid]

    netns.wait_for("a trial running on trainer b", running_on_b, timeout=300, every=0.2)
    killed = running_on_b()[0].number
    assert proc_b.kill9() == -9
    assert proc_a.popen.wait(timeout=500) == 0, proc_a.tail()

    study = cluster.study("shared-2")
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    assert trials[killed].state == TrialState.FAIL
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1, [(t.number, t.state, t.system_attrs) for t in trials.values()]
    retry = retries[0]
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED), retry
    assert pid_of(retry.user_attrs["host"]) == proc_a.pid
    assert retry.params == trials[killed].params  # the same point, run again
    # The dead trainer's trial counts once: the budget is still 8 trials.
    assert shared_study.counted(list(trials.values())) == 8
    assert [p.name for p in cluster.artifacts(a)] == [study.user_attrs["outcome"]["artifact"]]
    assert cluster.artifacts(b) == []
