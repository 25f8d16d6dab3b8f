"""The Prometheus metrics every worker records, and the HTTP endpoint that shows them.

No gRPC here: the engine (loads, cache, fold-ins) and admission import these
counters as they are. With several workers the supervisor (``supervised``) gives
each server run a fresh ``PROMETHEUS_MULTIPROC_DIR`` before the workers start:
prometheus-client then keeps each worker's values in files there, and the
supervisor's endpoint sums counters and histograms over all workers, dead ones
included (a count never goes down when a worker is restarted), while gauges keep
a ``pid`` label per live worker (a dead worker's are dropped: ``worker_exited``).
One worker alone serves its own values.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client import multiprocess as mp
from prometheus_client.registry import REGISTRY

from bookrec.log import kv

log = logging.getLogger("server.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Set by the supervisor for its workers: the supervisor serves the endpoint, not them.
SUPERVISED_ENV = "BOOKREC_METRICS_SUPERVISED"

# Seconds; a call here is a few ms, a refusal well under one, a slow one hundreds.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
LOAD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

RPC_HANDLED = Counter(
    "bookrec_rpc_handled", "Calls finished, by method and status code", ["method", "code"]
)
RPC_DURATION = Histogram(
    "bookrec_rpc_duration_seconds",
    "Time from the call reaching the server's interceptors to its status",
    ["method", "code"],
    buckets=LATENCY_BUCKETS,
)
MODEL_VERSION = Gauge(
    "bookrec_model_version_info",
    "1 for the model version a worker serves, 0 for versions it served before",
    ["version"],
    multiprocess_mode="liveall",
)
MODEL_LOAD_SECONDS = Histogram(
    "bookrec_model_load_seconds",
    "Time to open, verify and warm up a model version that loaded",
    buckets=LOAD_BUCKETS,
)
MODEL_RELOADS = Counter(
    "bookrec_model_reloads",
    "Model loads: success (swapped in to serve) or failure (refused; the current one serves)",
    ["result"],
)
CACHE_LOOKUPS = Counter(
    "bookrec_cache_lookups", "Result cache lookups, by cache and hit or miss", ["cache", "result"]
)
SHED = Counter(
    "bookrec_shed",
    "Calls refused by admission before any work: overloaded or deadline passed",
    ["method", "reason"],
)
ABANDONED = Counter(
    "bookrec_calls_abandoned",
    "Calls whose computing stopped mid-way: deadline passed or cancelled (engine/deadline.py)",
    ["method", "reason"],
)
FOLD_INS = Counter(
    "bookrec_fold_ins",
    "User vectors solved at request time: new_user (unknown to the model) or new_ratings",
    ["kind"],
)

BACKGROUND_ERRORS = Counter(
    "bookrec_background_errors",
    "Failed rounds of a worker's background tasks (server/polls.py), by task; each "
    "task goes on, and the log says why",
    ["task"],
)
# The tasks that count there: the artifact watcher's poll, the replica's tick, and the
# fleet's control-store steps (open the buckets, read the pin, beat, read the fleet).
BACKGROUND_TASKS = (
    "artifact_watch", "replica_tick", "fleet_control", "fleet_pin", "fleet_heartbeat",
    "fleet_view",
)  # fmt: skip

for _result in ("success", "failure"):  # present at 0, so rate() and alerts see them
    MODEL_RELOADS.labels(result=_result)
for _task in BACKGROUND_TASKS:
    BACKGROUND_ERRORS.labels(task=_task)

# (method, code) -> the RPC counter's and histogram's children: ``.labels()`` costs
# ~3 us a call (keyword handling, a lock, a dict), a child's inc / observe well under
# that, and every call records both. Bounded: methods x codes, and any method name
# here is one the server registered (unknown ones never reach the interceptors).
_RPC_CHILDREN: dict[tuple[str, str], tuple[Any, Any]] = {}


def rpc_children(method: str, code: str) -> tuple[Any, Any]:
    """The (RPC_HANDLED, RPC_DURATION) children for one method and status code."""
    children = _RPC_CHILDREN.get((method, code))
    if children is None:
        children = (
            RPC_HANDLED.labels(method=method, code=code),
            RPC_DURATION.labels(method=method, code=code),
        )
        _RPC_CHILDREN[(method, code)] = children
    return children


def model_loaded(version: str, previous: str | None) -> None:
    """A version was swapped in to serve (after ``model_load_seconds`` was observed)."""
    if previous is not None and previous != version:
        MODEL_VERSION.labels(version=previous).set(0)
    MODEL_VERSION.labels(version=version).set(1)
    MODEL_RELOADS.labels(result="success").inc()


def model_load_failed() -> None:
    MODEL_RELOADS.labels(result="failure").inc()


def _registry() -> Any:
    """What this process's endpoint shows: every worker's files in multiprocess mode,
    else this process's own metrics."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return REGISTRY
    registry = CollectorRegistry()
    mp.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return registry


def _serve(host: str, port: int) -> None:
    try:
        start_http_server(port, addr=host, registry=_registry())
    except OSError as e:
        raise SystemExit(f"--metrics-port {port}: cannot listen on {host}: {e}") from e
    log.info("metrics endpoint", extra=kv(url=f"http://{host}:{port}/metrics"))


def serve_worker(host: str, port: int) -> None:
    """Serve this worker's metrics on ``port`` (0: off), unless a supervisor does."""
    if port > 0 and not os.environ.get(SUPERVISED_ENV):
        _serve(host, port)


@contextlib.contextmanager
def supervised(host: str, port: int) -> Iterator[None]:
    """For the supervisor, around the whole run: a fresh multiprocess directory for the
    workers it starts (inherited through the environment, so set before they start)
    and the endpoint summing them; the directory is removed at the end. Port 0: off."""
    if port <= 0:
        yield
        return
    parent = os.environ.get(MULTIPROC_ENV) or None  # an operator's choice of place
    path = tempfile.mkdtemp(prefix="bookrec-metrics-", dir=parent)
    os.environ[MULTIPROC_ENV] = path
    os.environ[SUPERVISED_ENV] = "1"
    try:
        _serve(host, port)
        yield
    finally:
        shutil.rmtree(path, ignore_errors=True)


def worker_exited(pid: int) -> None:
    """Drop a dead worker's gauges (its counters stay in the sums)."""
    path = os.environ.get(MULTIPROC_ENV)
    if path and os.environ.get(SUPERVISED_ENV):
        mp.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
