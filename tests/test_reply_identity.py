"""The serving-cost shortcuts (issue 14) answer exactly what the straightforward code did:
page tokens byte for byte, the same metric children, request ids of the same form, the
access line as bookrec/log.py's formatter writes it (and through logging whenever
logging is set up otherwise), ColdStart's multi-carrier rows."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bench.scale_artifact import ScaleSpec, build
from bookrec import log as bookrec_log
from server import metrics, observe
from server.engine import cold_start, paging
from server.engine.bundle import Bundle
from server.engine.types import Filters
from server.observe import request_id

VERSIONS = [
    "20261203T120832Z-ae3e5a64",
    "v1",
    "",
    'quote " and backslash \\ inside',
    "unicodé ✓ and a tab\t and a newline\n",
    "\x00\x1f control",
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("offset", [0, 1, 10, 99, 10_000_000])
def test_make_token_is_byte_for_byte_the_json_dumps_token(version: str, offset: int) -> None:
    for query in ("recommend|u1|", "recommend|ü ser|subjects=a,b;years=1990-2000", ""):
        token = paging.make_token(version, query, offset)
        assert token == paging.make_token_reference(version, query, offset)
        doc = json.loads(base64.urlsafe_b64decode(token))
        assert doc == {"v": version, "q": paging._digest(query), "o": offset}


def test_a_made_token_reads_back() -> None:
    token = paging.make_token("v7", "recommend|u|", 20)
    assert paging.read_token(token, "v7", "recommend|u|") == 20
    with pytest.raises(paging.StalePageToken):
        paging.read_token(token, "v8", "recommend|u|")


def test_rpc_children_are_the_labelled_children() -> None:
    method, code = "bookrec.v1.RecommenderService/Recommend", "OK"
    handled, duration = metrics.rpc_children(method, code)
    assert handled is metrics.RPC_HANDLED.labels(method=method, code=code)
    assert duration is metrics.RPC_DURATION.labels(method=method, code=code)
    assert metrics.rpc_children(method, code) == (handled, duration)
    other = metrics.rpc_children(method, "NOT_FOUND")
    assert other[0] is not handled
    before = metrics.RPC_HANDLED.labels(method=method, code=code)._value.get()
    handled.inc()
    assert metrics.RPC_HANDLED.labels(method=method, code=code)._value.get() == before + 1


def test_request_ids_are_32_hex_digits_and_fresh() -> None:
    made = {request_id(None) for _ in range(1000)}
    assert len(made) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{32}", r) for r in made)
    assert request_id([("x-request-id", "abc-1")]) == "abc-1"


FIELDS: dict[str, Any] = {
    "request_id": "0f" * 16,
    "method": "bookrec.v1.RecommenderService/Recommend",
    "code": "OK",
    "duration_ms": 1.234,
    "model_version": None,
}


@pytest.mark.parametrize("created", [1_764_000_000.0, 1_764_000_000.9995, 1_764_000_123.0417])
def test_the_direct_access_line_is_the_formatters_line(created: float) -> None:
    record = logging.LogRecord("server.access", logging.INFO, __file__, 1, "rpc", None, None)
    record.created, record.msecs = created, int((created - int(created)) * 1000) + 0.0
    record.fields = dict(FIELDS)  # what extra=kv(...) sets
    formatter = bookrec_log._JsonFormatter()
    assert observe.access_line(dict(FIELDS), created) == formatter.format(record)
    assert observe.access_line({**FIELDS, "model_version": "v1"}, created + 1) == (
        formatter.format(_with(record, created + 1, "v1"))
    )


def _with(record: logging.LogRecord, created: float, version: str) -> logging.LogRecord:
    record.created, record.msecs = created, int((created - int(created)) * 1000) + 0.0
    record.fields = {**FIELDS, "model_version": version}
    return record


def test_the_access_line_goes_direct_only_as_the_server_configures_logging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", logging.WARNING)
    stream = io.StringIO()
    bookrec_log.configure("INFO")
    root.handlers[0].stream = stream  # type: ignore[attr-defined]
    assert observe._direct_handler() is root.handlers[0]
    observe.access_log(dict(FIELDS))
    line = json.loads(stream.getvalue())
    assert line["logger"] == "server.access" and line["event"] == "rpc"
    assert {k: line[k] for k in FIELDS} == FIELDS
    # Another handler (caplog, an operator's): through logging, which that handler sees.
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    root.addHandler(Keep())
    assert observe._direct_handler() is None
    observe.access_log(dict(FIELDS))
    assert len(seen) == 1 and seen[0].fields == FIELDS  # type: ignore[attr-defined]
    assert stream.getvalue().count("\n") == 2  # the JSON handler still got its line
    root.setLevel(logging.WARNING)
    observe.access_log(dict(FIELDS))
    assert len(seen) == 1 and stream.getvalue().count("\n") == 2


@pytest.mark.parametrize("density", [0.0, 0.01, 0.2, 0.9])
@pytest.mark.parametrize("n_books", [8, 301, 4000])
def test_multi_carriers_are_the_reference_rows(density: float, n_books: int) -> None:
    rng = np.random.default_rng(n_books)
    carried = rng.random((12, n_books)) < density
    bits = np.packbits(carried, axis=1, bitorder="little")
    bundle: Any = SimpleNamespace(subject_bits=bits)
    for k in (0, 1, 2, 3, 5, 12):
        for _ in range(4):
            favourites = sorted(rng.choice(12, size=k, replace=False).tolist())
            got = cold_start._multi_carriers(bundle, favourites)
            want = cold_start._multi_carriers_reference(bundle, favourites)
            assert got.dtype == want.dtype and np.array_equal(got, want)
            if k >= 2:  # and both are what the bitsets say
                assert np.array_equal(got, np.flatnonzero(carried[favourites].sum(axis=0) >= 2))


def test_two_favourites_multi_lift_is_lift_at_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    carried = rng.random((6, 5000)) < 0.3
    bundle: Any = SimpleNamespace(subject_bits=np.packbits(carried, axis=1, bitorder="little"))
    for _ in range(20):
        favourites = sorted(rng.choice(6, size=int(rng.integers(2, 5)), replace=False).tolist())
        weights = {s: float(rng.random() * 3) for s in favourites}
        multi = cold_start._multi_carriers(bundle, favourites)
        got = cold_start._multi_lift(bundle, favourites, weights, multi)
        want = cold_start._lift_at(bundle, favourites, weights, multi)
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


def test_cold_start_answers_are_the_reference_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whole ColdStart lists, scores included, with the shortcuts and without them."""
    spec = ScaleSpec(books=4000, users=300, factors=16, subject_dim=16, subjects=40, clusters=8)
    bundle = Bundle.open(build(tmp_path, spec), check_hashes=False)
    rng = np.random.default_rng(3)
    names = [bundle.subject_ids[i] for i in range(len(bundle.subject_names))]
    sets = [
        sorted(rng.choice(names, size=int(rng.integers(1, 5)), replace=False).tolist())
        for _ in range(40)
    ]
    sets += [names[:2], names[:3]]

    def answers() -> list[Any]:
        out = []
        for favourites in sets:
            for weight in (None, 0.0, 0.7):
                ranked = cold_start.cold_start(bundle, favourites, weight, 10, Filters(), True)
                out.append([(s.item, s.score, s.rank, s.reasons) for s in ranked.items])
        return out

    fast = answers()
    monkeypatch.setattr(cold_start, "_multi_carriers", cold_start._multi_carriers_reference)
    monkeypatch.setattr(cold_start, "_multi_lift", cold_start._lift_at)
    assert fast == answers()
