"""Whole-array scans of mapped factors: right answers, and the pages leave the RSS."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from server.engine.scan import all_finite, gram_and_finite


def rss_file_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    raise AssertionError("no RssFile in /proc/self/status")


def test_gram_and_finite_on_a_mapped_file_release_its_pages(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    factors = rng.normal(size=(200_000, 64)).astype(np.float32)  # 51 MB
    np.save(tmp_path / "f.npy", factors)
    mapped = np.asarray(np.load(tmp_path / "f.npy", mmap_mode="r"))  # as Bundle.open holds it
    before = rss_file_kib()
    yty, finite = gram_and_finite(mapped)
    grown_mib = (rss_file_kib() - before) / 1024
    assert finite
    np.testing.assert_allclose(yty, factors.astype(np.float64).T @ factors, rtol=1e-9)
    assert grown_mib < 20, f"scan left {grown_mib:.0f} MiB of a 49 MiB file resident"
    np.asarray(mapped).sum()  # a plain read keeps them: the check above can fail
    assert (rss_file_kib() - before) / 1024 > 40


def test_non_finite_values_are_found_in_any_chunk(tmp_path: Path) -> None:
    factors = np.ones((300_000, 16), dtype=np.float32)
    factors[299_999, 3] = np.nan
    np.save(tmp_path / "f.npy", factors)
    assert not all_finite(np.load(tmp_path / "f.npy", mmap_mode="r"))
    assert not gram_and_finite(np.load(tmp_path / "f.npy", mmap_mode="r"))[1]
    assert all_finite(factors[:-1])
