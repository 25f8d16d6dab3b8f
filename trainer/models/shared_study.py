"""One settings study shared by several trainers (docs/scale.md, "Studies across hosts").

N `trainer run` processes on N hosts, started with the same ``--study-storage`` (the
store's MariaDB) and ``--study-name``, join one Optuna study in its RDB storage:

- **one budget**: the first process creates the study and writes its deadline (now +
  the ALS clock) into it; every process stops at that deadline, and at the study's
  trial budget counted over all of them (``counted``), so N trainers run about N
  times the trials in the same clock;
- **no trial lost**: each running trial beats a heartbeat into the storage; a trial
  whose trainer died stops beating, the next trial any other trainer starts fails it
  (Optuna's ``fail_stale_trials``) and ``RetryHeartbeatStaleTrialCallback`` queues the same
  point again, which that trainer runs;
- **one publisher**: when the study is over, each trainer asks the MariaDB for the
  advisory lock ``GET_LOCK`` named after the study. The holder trains the rest and
  publishes, then writes the outcome into the study and lets go; a waiting trainer
  that then finds an outcome stops (``StudyJoined``), one that finds none (the holder
  died: MariaDB releases a dead connection's locks) publishes in its place.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from bookrec.log import kv
from trainer.errors import InputError, StudyJoined

log = logging.getLogger("trainer.models.study")
HOST = f"{socket.gethostname()}:{os.getpid()}"
DEADLINE = "deadline_unix"  # study user attribute: when every trainer stops asking
OUTCOME = "outcome"  # study user attribute: what the publishing trainer did
RETRIES = 3  # a point whose trainers keep dying is given up after this many tries


@dataclass(frozen=True)
class SharedStudy:
    """Where the study lives and what it is called; trainers that agree on both share it."""

    storage: str  # a SQLAlchemy URL of a MariaDB/MySQL (mysql:// means mysql+pymysql://)
    name: str
    heartbeat_seconds: int = 10  # a trial silent for 3 beats is failed and retried

    @staticmethod
    def of(storage: str, name: str, split_id: str, heartbeat_seconds: int) -> SharedStudy | None:
        """From the trainer's settings; None when no storage is given (one trainer).
        The name defaults to the frozen split's, so trainers of one split meet."""
        if not storage:
            return None
        return SharedStudy(sqlalchemy_url(storage), name or f"als-{split_id}", heartbeat_seconds)

    def open(self) -> RDBStorage:
        """The storage; its tables are made under an advisory lock, since trainers that
        start together on a new database would all create them at once."""
        _quiet()
        conn = connect(self.storage)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT GET_LOCK('bookrec.optuna.schema', 120)")
            return RDBStorage(
                self.storage,
                engine_kwargs={"pool_pre_ping": True},
                heartbeat_interval=self.heartbeat_seconds,
                grace_period=3 * self.heartbeat_seconds,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=RETRIES),
            )
        finally:
            conn.close()  # and the lock with it


def connect(storage: str) -> Any:
    """A PyMySQL connection of its own to the study's database (for advisory locks)."""
    import pymysql
    from sqlalchemy.engine import make_url

    url = make_url(storage)
    return pymysql.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        database=url.database,
        autocommit=True,
    )


def sqlalchemy_url(url: str) -> str:
    """The study storage's URL for SQLAlchemy: the store's ``mysql://`` form (asyncmy in
    the store) is read with the sync driver PyMySQL; other schemes are refused, since
    only a MariaDB/MySQL gives the advisory lock that picks the publisher."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("mysql", "mysql+pymysql", "mariadb", "mariadb+pymysql"):
        raise InputError(
            f"--study-storage {url!r}: give the MariaDB the trainers share, e.g. "
            "mysql://root@127.0.0.1:3306/test (a study across hosts needs its advisory locks)"
        )
    return f"mysql+pymysql://{rest}"


def _quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def join(
    shared: SharedStudy,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    seconds: float,
    enqueue: list[dict[str, Any]],
) -> tuple[optuna.Study, float]:
    """Create the study, or load it when another trainer did; returns it and its
    deadline (Unix time). Only the creator writes the deadline and the first points."""
    storage = shared.open()
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=shared.name,
            direction="maximize",
            sampler=sampler,
            pruner=pruner,
        )
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(
            study_name=shared.name, storage=storage, sampler=sampler, pruner=pruner
        )
        deadline = _wait_for_deadline(study)
        log.info(
            "joined shared study",
            extra=kv(study=shared.name, host=HOST, seconds_left=round(deadline - time.time(), 1)),
        )
        return study, deadline
    deadline = time.time() + seconds
    study.set_user_attr(DEADLINE, deadline)
    for params in enqueue:
        study.enqueue_trial(params, user_attrs={"enqueued": True})
    log.info("created shared study", extra=kv(study=shared.name, host=HOST, seconds=seconds))
    return study, deadline


def _wait_for_deadline(study: optuna.Study, patience: float = 30.0) -> float:
    """The creator writes the deadline just after creating the study: wait for it."""
    until = time.monotonic() + patience
    while (value := study.user_attrs.get(DEADLINE)) is None:
        if time.monotonic() > until:
            raise InputError(
                f"study {study.study_name!r} has no deadline: it was not created by a trainer "
                "(give another --study-name)"
            )
        time.sleep(0.2)
    return float(value)


def counted(trials: list[FrozenTrial]) -> int:
    """Trials against the budget: every trial that ran or runs, except the failed ones a
    retry replaced (a dead trainer's point counts once)."""
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    return sum(
        t.state != TrialState.WAITING and not (t.state == TrialState.FAIL and t.number in retried)
        for t in trials
    )


def describe(shared: SharedStudy, trials: list[FrozenTrial]) -> dict[str, Any]:
    """For the manifest: the study's name, how many trials each trainer ran, and which
    failed trials were run again (a trainer died during them)."""
    hosts: dict[str, int] = {}
    for t in trials:
        if t.state != TrialState.WAITING:
            key = str(t.user_attrs.get("host", "?"))
            hosts[key] = hosts.get(key, 0) + 1
    return {
        "name": shared.name,
        "trials_counted": counted(trials),
        "trials_by_host": hosts,
        "retries": {
            str(t.number): t.system_attrs["failed_trial"]
            for t in trials
            if "failed_trial" in t.system_attrs
        },
        "publisher": HOST,
    }


def budget_reached(study: optuna.Study, trials: int) -> bool:
    return counted(study.get_trials(deepcopy=False)) >= trials


def settle(study: optuna.Study, shared: SharedStudy) -> None:
    """Wait until no trial runs: the other trainers' last trials end, a dead one's is
    failed when its heartbeat stops (its retry is not run: the clock is over)."""
    while True:
        optuna.storages.fail_stale_trials(study)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running:
            return
        log.info(
            "waiting for the shared study's running trials",
            extra=kv(study=shared.name, running=[t.number for t in running]),
        )
        time.sleep(min(2.0, shared.heartbeat_seconds / 2))


class PublishClaim:
    """The advisory lock of the study's publisher, held on a connection of its own
    until ``finish`` (or the process's end, when MariaDB releases it)."""

    def __init__(self, shared: SharedStudy, study: optuna.Study) -> None:
        self.shared, self.study = shared, study
        self.lock = f"bookrec.publish.{hash_name(shared.name)}"
        self.conn = connect(shared.storage)

    def _scalar(self, sql: str, *args: Any) -> Any:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            row = cur.fetchone()
        return None if row is None else row[0]

    def acquire(self) -> None:
        """Block until this trainer holds the lock; say so while another one does."""
        while self._scalar("SELECT GET_LOCK(%s, 5)", self.lock) != 1:
            log.info(
                "another trainer of the study publishes: waiting",
                extra=kv(study=self.shared.name, lock=self.lock),
            )

    def outcome(self) -> Any:
        return self.study.user_attrs.get(OUTCOME)  # read from the storage each time

    def finish(self, outcome: dict[str, Any]) -> None:
        """Write what this trainer did into the study, then let the others see it."""
        self.study.set_user_attr(OUTCOME, {**outcome, "host": HOST})
        self.release()

    def release(self) -> None:
        if self.conn.open:
            self._scalar("SELECT RELEASE_LOCK(%s)", self.lock)
            self.conn.close()


def hash_name(name: str) -> int:
    """A stable number for a study name (a lock name is at most 64 characters)."""
    import zlib

    return zlib.crc32(name.encode())


def claim_publish(shared: SharedStudy, study: optuna.Study) -> PublishClaim:
    """The claim to publish this study's model; StudyJoined when another trainer did."""
    claim = PublishClaim(shared, study)
    claim.acquire()
    done = claim.outcome()
    if done is not None:
        claim.release()
        raise StudyJoined(
            f"study {shared.name!r}: this trainer ran its share of the trials; trainer "
            f"{done.get('host')} {done.get('status')} {done.get('artifact')}"
        )
    log.info("publishing the shared study", extra=kv(study=shared.name, host=HOST))
    return claim
