"""The load harness (bench/): percentiles, arrivals, Zipf, versions, and one real run."""

from __future__ import annotations

import asyncio
import collections
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.analysis import channel_versions, in_windows, kind_rows, swap_windows
from bench.arrivals import ZipfSampler, poisson_offsets
from bench.client import ChannelPool
from bench.loadgen import RunResult, Sample, closed_loop
from bench.publish import next_version, publish_copy
from bench.scenarios import knee_reason
from bench.serverproc import running_server
from bench.stats import percentile, summarize
from bench.workload import FLOOR, ArtifactIds, RequestFactory, parse_mix, with_floor
from bookrec import artifact

# -- percentiles ------------------------------------------------------------------------


def test_percentile_nearest_rank_on_1_to_100() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 90) == 90
    assert percentile(values, 99) == 99
    assert percentile(values, 99.9) == 100
    assert percentile(values, 100) == 100
    assert percentile(values, 0) == 1


def test_percentile_of_1000_values_is_not_off_by_one() -> None:
    values = list(range(1, 1001))
    assert percentile(values, 99.9) == 999  # 99.9% of 1000 is exactly rank 999
    assert percentile(values, 99) == 990
    assert percentile(values, 50) == 500


def test_percentile_matches_numpy_inverted_cdf() -> None:
    rng = np.random.default_rng(7)
    for n in (1, 2, 3, 10, 999, 12345):
        values = np.sort(rng.lognormal(0.0, 1.0, n))
        for p in (50.0, 90.0, 99.0, 99.9):
            want = float(np.percentile(values, p, method="inverted_cdf"))
            assert percentile(values.tolist(), p) == pytest.approx(want, rel=0, abs=0)


def test_percentile_edges() -> None:
    assert math.isnan(percentile([], 50))
    assert percentile([3.5], 99.9) == 3.5
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summarize_reports_milliseconds() -> None:
    s = summarize([0.001 * i for i in range(1, 101)])  # 1..100 ms, given in seconds
    assert s.count == 100
    assert s.p50 == pytest.approx(50.0)
    assert s.p99 == pytest.approx(99.0)
    assert s.p999 == pytest.approx(100.0)
    assert s.max == pytest.approx(100.0)
    assert s.mean == pytest.approx(50.5)
    empty = summarize([])
    assert empty.count == 0 and empty.as_dict()["p99_ms"] is None


# -- arrivals and ids -------------------------------------------------------------------


def test_poisson_schedule_has_the_rate_and_exponential_gaps() -> None:
    rate, duration = 200.0, 50.0
    times = poisson_offsets(rate, duration, np.random.default_rng(1))
    expected = rate * duration
    assert abs(len(times) - expected) < 4 * math.sqrt(expected)
    assert times[0] >= 0 and times[-1] < duration
    assert np.all(np.diff(times) > 0)
    gaps = np.diff(times)
    assert gaps.mean() == pytest.approx(1 / rate, rel=0.03)
    # Exponential gaps: standard deviation equals the mean (a fixed-interval schedule has 0).
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.05)


def test_poisson_schedule_is_seeded() -> None:
    a = poisson_offsets(50, 10, np.random.default_rng(3))
    b = poisson_offsets(50, 10, np.random.default_rng(3))
    assert np.array_equal(a, b)


def test_zipf_sampler_frequencies() -> None:
    n = 100
    sampler = ZipfSampler(list(range(n)), 1.0, np.random.default_rng(0))
    ranks = sampler.ranks(200_000)
    assert ranks.min() >= 0 and ranks.max() < n
    freq = np.bincount(ranks, minlength=n) / len(ranks)
    harmonic = sum(1 / r for r in range(1, n + 1))
    assert freq[0] == pytest.approx(1 / harmonic, rel=0.03)
    assert freq[0] / freq[1] == pytest.approx(2.0, rel=0.05)
    assert freq[0] / freq[9] == pytest.approx(10.0, rel=0.15)
    assert sum(sampler.probability(r) for r in range(n)) == pytest.approx(1.0)
    drawn = [sampler.sample() for _ in range(10_000)]
    assert drawn.count(0) / len(drawn) == pytest.approx(1 / harmonic, rel=0.1)


def test_zipf_exponent_zero_is_uniform() -> None:
    sampler = ZipfSampler(["a", "b", "c", "d"], 0.0, np.random.default_rng(0))
    freq = np.bincount(sampler.ranks(40_000), minlength=4) / 40_000
    assert np.allclose(freq, 0.25, atol=0.01)


def test_parse_mix_and_floor() -> None:
    mix = parse_mix("recommend=0.6, similar=0.2,cold_start=0.2")
    assert mix == pytest.approx({"recommend": 0.6, "similar": 0.2, "cold_start": 0.2})
    assert parse_mix("recommend=3,similar=1") == pytest.approx({"recommend": 0.75, "similar": 0.25})
    with pytest.raises(ValueError, match="unknown RPC"):
        parse_mix("recomend=1")
    with pytest.raises(ValueError):
        parse_mix("recommend=0")
    mixed = with_floor(mix, 0.1)
    assert mixed[FLOOR] == pytest.approx(0.1)
    assert mixed["recommend"] == pytest.approx(0.54)
    assert sum(mixed.values()) == pytest.approx(1.0)


# -- versions and swap windows ----------------------------------------------------------

V1, V2, V3 = "20260101T000000Z-aaaaaaaa", "20260101T000001Z-bbbbbbbb", "20260101T000002Z-cccccccc"


def _sample(
    channel: int, sent: float, done: float, version: str, kind: str = "recommend"
) -> Sample:
    return Sample(kind, channel, sent, sent, done, "OK", version)


def test_channel_versions_forward_only_by_send_time() -> None:
    samples = [
        _sample(0, 0.0, 0.1, V1),
        _sample(0, 1.0, 1.5, V1),  # sent before the swap, finishes after the next one
        _sample(0, 1.1, 1.2, V2),
        _sample(0, 2.0, 2.1, V3),
        _sample(1, 0.0, 0.1, V1),
        _sample(1, 1.0, 1.1, V2),
        _sample(1, 1.5, 1.6, V1),  # a regression: sent after a newer reply's request
        _sample(1, 1.7, 1.8, ""),  # a health check: no version
    ]
    by_channel = {c.channel: c for c in channel_versions(samples)}
    assert by_channel[0].sequence == [V1, V2, V3]
    assert by_channel[0].forward_only
    assert by_channel[1].sequence == [V1, V2]
    assert by_channel[1].regressions == 1
    assert not by_channel[1].forward_only


def test_swap_windows_end_when_every_channel_has_the_version() -> None:
    samples = [
        _sample(0, 0.0, 0.1, V1),
        _sample(1, 0.0, 0.1, V1),
        _sample(0, 1.0, 1.1, V2),
        _sample(1, 1.0, 1.4, V1),
        _sample(1, 1.5, 1.6, V2),
        _sample(0, 3.0, 3.1, V2),
    ]
    (window, never) = swap_windows(samples, [(V2, 0.9), (V3, 2.0)])
    assert window.served == pytest.approx(1.6)
    assert window.seconds == pytest.approx(0.7)
    assert never.served is None
    assert in_windows(1.0, [window], end=5.0)
    assert not in_windows(0.5, [window], end=5.0)
    assert in_windows(4.0, [never], end=5.0)


def test_kind_rows_count_everything_once() -> None:
    samples = [
        _sample(0, 0.0, 0.01, V1),
        _sample(0, 0.1, 0.12, V1),
        Sample("recommend", 1, 0.2, 0.2, 0.3, "NOT_FOUND", "", "no such user"),
        _sample(1, 0.3, 0.301, "", kind=FLOOR),
    ]
    result = RunResult("open", 2, 1.0, 0.0, 0.4, offered_rate=4.0, samples=samples)
    rows = {r["rpc"]: r for r in kind_rows(result)}
    assert rows["recommend"]["requests"] == 3
    assert rows["recommend"]["ok"] == 2
    assert rows["recommend"]["errors"] == {"NOT_FOUND": 1}
    assert rows["recommend"]["error_examples"] == {"NOT_FOUND": "no such user"}
    assert rows["recommend"]["latency"]["p50_ms"] == pytest.approx(10.0)
    assert rows[FLOOR]["requests"] == 1
    assert list(rows) == ["recommend", FLOOR]  # the floor last


# -- publishing -------------------------------------------------------------------------


def test_next_version_sorts_after_even_in_the_future() -> None:
    future = "29991231T235959Z-00000000"
    nxt = next_version(future)
    assert nxt > future
    assert artifact._VERSION_RE.match(nxt)


def test_publish_copy_makes_a_newer_valid_version(tiny_artifact: Path, tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    root.mkdir()
    shutil.copytree(tiny_artifact, root / tiny_artifact.name)
    version = publish_copy(root)
    assert version > tiny_artifact.name
    newest = artifact.complete_versions(root)[-1]
    assert newest.name == version
    manifest = artifact.read_manifest(newest)
    assert manifest.model_version == version
    artifact.verify(newest, manifest)
    assert not any(p.name.startswith(artifact.TMP_PREFIX) for p in root.iterdir())
    again = json.loads((root / tiny_artifact.name / artifact.MANIFEST).read_text())
    assert again["model_version"] == tiny_artifact.name  # the source is untouched


# -- one real run -----------------------------------------------------------------------


def test_request_factory_draws_real_ids(tiny_artifact: Path) -> None:
    ids = ArtifactIds.load(tiny_artifact)
    assert ids.model_version == tiny_artifact.name
    factory = RequestFactory(
        ids,
        with_floor(parse_mix("recommend=1,similar=1,cold_start=1"), 0.2),
        np.random.default_rng(0),
    )
    users, books, subjects = set(ids.user_ids), set(ids.book_ids), set(ids.subject_ids)
    kinds = set()
    for _ in range(500):
        kind, request = factory.next()
        kinds.add(kind)
        if kind == "recommend":
            assert request.user_id in users
        elif kind == "similar":
            assert request.book_id in books
        elif kind == "cold_start":
            assert set(request.favourite_subjects) <= subjects
    assert kinds == {"recommend", "similar", "cold_start", FLOOR}


def test_closed_loop_against_a_real_server(tiny_artifact: Path, tmp_path: Path) -> None:
    ids = ArtifactIds.load(tiny_artifact)
    mix = with_floor(parse_mix("recommend=0.5,similar=0.2,cold_start=0.2,get_book=0.1"), 0.1)

    spread: list[int] = []

    async def measure(target: str) -> RunResult:
        factory = RequestFactory(ids, mix, np.random.default_rng(0))
        async with ChannelPool(target, 4) as pool:
            await pool.connect(workers=2)
            spread.extend(pool.worker_pids)
            return await closed_loop(pool, factory, concurrency=8, duration=1.5)

    with running_server(tiny_artifact.parent, tmp_path / "server", workers=2) as server:
        result = asyncio.run(measure(server.target))

    assert result.samples, "no request finished"
    # the bench waited for both workers and put two of its four channels on each
    assert sorted(collections.Counter(spread).values()) == [2, 2], spread
    errors = [s for s in result.samples if s.code != "OK"]
    assert errors == [], errors[:3]
    rows = kind_rows(result)
    assert sum(r["requests"] for r in rows) == len(result.samples)
    for r in rows:
        assert r["ok"] + sum(r["errors"].values()) == r["requests"]
        assert r["latency"]["count"] == r["ok"]
    assert {r["rpc"] for r in rows} == {"recommend", "similar", "cold_start", "get_book", FLOOR}
    assert {s.channel for s in result.samples} == {0, 1, 2, 3}
    # Every model reply names the one version served; health checks carry none.
    assert {s.version for s in result.samples if s.kind != FLOOR} == {ids.model_version}
    assert {s.version for s in result.samples if s.kind == FLOOR} == {""}
    versions = channel_versions(result.samples)
    assert len(versions) == 4
    assert all(v.sequence == [ids.model_version] and v.forward_only for v in versions)


def test_knee_rules() -> None:
    def row(
        p50: float, p99: float, floor_p99: float, offered: float = 100, achieved: float = 100
    ) -> dict[str, Any]:
        return {
            "latency": {"p50_ms": p50, "p99_ms": p99},
            "floor_p99_ms": floor_p99,
            "errors": {},
            "offered_rps": offered,
            "achieved_rps": achieved,
        }

    best = {"p50": 5.0, "p99": 20.0}
    assert knee_reason(row(5, 20, 3), {}, 5.0) == ""  # the first step sets the baseline
    assert knee_reason(row(6, 30, 3), best, 5.0) == ""
    assert knee_reason(row(5, 20, 3, achieved=80), best, 5.0).startswith("achieved")
    assert knee_reason(row(20, 40, 3), best, 5.0).startswith("p50")
    assert knee_reason(row(6, 150, 3), best, 5.0).startswith("p99")
    assert knee_reason(row(6, 150, 100), best, 5.0) == ""  # the floor stalled as much: not ours
    assert knee_reason({**row(5, 20, 3), "errors": {"UNAVAILABLE": 1}}, best, 5.0) == "errors"
