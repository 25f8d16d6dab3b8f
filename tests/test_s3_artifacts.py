"""Artifacts from an object store, against a real S3 API (moto's server on loopback):
the trainer uploads manifest last, and a real server polling the bucket downloads,
checks and serves new versions, refusing corrupt or incomplete ones while the
current model serves on."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import grpc
import pytest
from grpc_health.v1 import health_pb2

from bench.publish import publish_copy
from bookrec import artifact
from bookrec.objectstore import BucketURL
from bookrec.v1 import recommender_pb2
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub
from server.engine.bucket import BucketPoller
from server.engine.control import write_pin
from tests.s3server import S3Server, running_s3
from tests.serverproc import ServerProcess, own_connection, running_server
from trainer.publish.bucket import PublishError, publish_to_bucket, upload_version

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ROOT = Path(__file__).resolve().parents[1]
WAIT = 60.0  # seconds a step may take on a loaded two-core machine (a deadline, not a figure)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with running_s3(tmp_path_factory.mktemp("moto")) as server:
        yield server


_buckets = iter(range(1_000_000))


@pytest.fixture
def url(s3: S3Server) -> BucketURL:
    """A fresh bucket per test, versions under the prefix ``models/``."""
    return BucketURL.parse(f"s3://{s3.bucket(f'bookrec-{next(_buckets)}')}/models")


@pytest.fixture
def publisher(tiny_artifact: Path, tmp_path: Path) -> Path:
    """The trainer's local artifact root, holding the tiny artifact."""
    root = tmp_path / "trainer-artifacts"
    root.mkdir()
    shutil.copytree(tiny_artifact, root / tiny_artifact.name)
    return root


def keys(client: S3Client, url: BucketURL, version: str) -> set[str]:
    prefix = url.version_prefix(version)
    listing = client.list_objects_v2(Bucket=url.bucket, Prefix=prefix)
    return {o["Key"][len(prefix) :] for o in listing.get("Contents", [])}


def wait_for(what: str, check: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def put_version(
    client: S3Client,
    url: BucketURL,
    directory: Path,
    replace: dict[str, bytes] | None = None,
    skip: tuple[str, ...] = (),
) -> None:
    """Upload like the trainer (files, then the manifest) but with some objects'
    bytes replaced or left out: what a broken upload or a bit flip leaves behind."""
    replace = replace or {}
    manifest = artifact.read_manifest(directory)
    for name in sorted(manifest.files):
        if name in skip:
            continue
        body = replace[name] if name in replace else (directory / name).read_bytes()
        client.put_object(Bucket=url.bucket, Key=url.key(directory.name, name), Body=body)
    client.put_object(
        Bucket=url.bucket,
        Key=url.manifest_key(directory.name),
        Body=(directory / artifact.MANIFEST).read_bytes(),
    )


def flipped(data: bytes) -> bytes:
    """Same size, one byte changed: only the sha256 tells."""
    return data[:-1] + bytes([data[-1] ^ 0xFF])


# -- the trainer's side -----------------------------------------------------------------


class ListingAfterEachWrite:
    """The real client, with a reader's listing of the version taken after every write:
    what any reader could have seen at each point of the upload."""

    def __init__(self, client: S3Client, url: BucketURL, version: str) -> None:
        self.client, self.url, self.version = client, url, version
        self.seen: list[set[str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def upload_file(self, *args: Any, **kwargs: Any) -> None:
        self.client.upload_file(*args, **kwargs)
        self.seen.append(keys(self.client, self.url, self.version))

    def put_object(self, **kwargs: Any) -> Any:
        out = self.client.put_object(**kwargs)
        self.seen.append(keys(self.client, self.url, self.version))
        return out


def test_upload_writes_every_file_before_the_manifest(
    s3: S3Server, url: BucketURL, tiny_artifact: Path
) -> None:
    version = tiny_artifact.name
    files = set(artifact.read_manifest(tiny_artifact).files)
    watched = ListingAfterEachWrite(s3.client(), url, version)
    written = upload_version(tiny_artifact, url, cast("S3Client", watched))
    assert written[-1] == url.manifest_key(version)
    assert len(watched.seen) == len(files) + 1
    for listing in watched.seen[:-1]:
        assert artifact.MANIFEST not in listing  # no reader sees a partial version
    assert watched.seen[-1] == files | {artifact.MANIFEST}
    # Versions are immutable: the same one again is a no-op; another under its name, refused.
    assert upload_version(tiny_artifact, url, s3.client()) == []
    changed = json.loads((tiny_artifact / artifact.MANIFEST).read_text())
    changed["created_at"] = "2000-01-01T00:00:00+00:00"
    s3.client().put_object(
        Bucket=url.bucket, Key=url.manifest_key(version), Body=json.dumps(changed).encode()
    )
    with pytest.raises(PublishError, match="immutable"):
        upload_version(tiny_artifact, url, s3.client())


def test_upload_refuses_a_local_version_that_does_not_verify(
    s3: S3Server, url: BucketURL, publisher: Path
) -> None:
    version = publish_copy(publisher)
    victim = publisher / version / "popularity.npy"
    victim.write_bytes(flipped(victim.read_bytes()))
    with pytest.raises(PublishError, match="sha256"):
        publish_to_bucket(publisher / version, str(url), s3.endpoint)
    assert keys(s3.client(), url, version) == set()


def test_trainer_upload_command(s3: S3Server, url: BucketURL, publisher: Path) -> None:
    version = publish_copy(publisher)  # the newest: uploaded without --version

    def upload(to: str) -> subprocess.CompletedProcess[str]:
        command = ["upload", "--artifacts", str(publisher), "--publish-to", to]
        return subprocess.run(
            [sys.executable, "-m", "trainer", *command, "--s3-endpoint", s3.endpoint],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    run = upload(str(url))
    assert run.returncode == 0, run.stderr
    assert version in run.stdout
    assert artifact.MANIFEST in keys(s3.client(), url, version)
    # A bucket that does not exist: exit 2, and the message says how to retry.
    run = upload("s3://no-such-bucket-here/x")
    assert run.returncode == 2
    assert "trainer upload" in run.stderr and "NoSuchBucket" in run.stderr


async def test_trainer_run_publishes_to_the_bucket(
    s3: S3Server, url: BucketURL, tiny_data: Path, tmp_path: Path
) -> None:
    """The pipeline (what `trainer run --publish-to` runs): the local publish, then
    the upload. Small settings: the models are not what this checks."""
    from tests.conftest import tiny_config
    from trainer.pipeline import run

    cfg = tiny_config(
        tiny_data,
        tmp_path / "artifacts",
        f"sqlite:///{tmp_path / 'store.sqlite'}",
        rerank="off",
        item_item=False,
        study_trials=2,
        publish_to=str(url),
        s3_endpoint=s3.endpoint,
    )
    result = await run(cfg)
    assert not result.refused
    local = set(artifact.read_manifest(result.artifact).files) | {artifact.MANIFEST}
    assert keys(s3.client(), url, result.artifact.name) == local


def test_a_bucket_setting_that_is_no_s3_url_stops_the_server_with_the_fix() -> None:
    from server.config import parse_args

    with pytest.raises(SystemExit, match=r"expected s3://BUCKET or s3://BUCKET/PREFIX"):
        parse_args(["--artifact-bucket", "bookrec-models/prod"])
    with pytest.raises(SystemExit, match="no bucket name"):
        parse_args(["--artifact-bucket", "s3:///prod"])
    assert parse_args(["--artifact-bucket", "s3://b-1/p/"]).artifact_bucket == "s3://b-1/p/"


# -- the poller, in process ---------------------------------------------------------------


def test_poller_refuses_a_manifest_naming_paths_outside_the_version(
    s3: S3Server, url: BucketURL, publisher: Path, tmp_path: Path
) -> None:
    version = publish_copy(publisher)
    doc = json.loads((publisher / version / artifact.MANIFEST).read_text())
    doc["files"]["../escaped.npy"] = doc["files"]["popularity.npy"]
    (publisher / version / artifact.MANIFEST).write_text(json.dumps(doc))
    client = s3.client()
    put_version(client, url, publisher / version, replace={"../escaped.npy": b"not an array"})
    local = tmp_path / "replica"
    poller = BucketPoller(local, url, s3.endpoint, keep=0)
    assert poller.sync() is None
    assert not (local / version).exists()
    assert not (tmp_path / "escaped.npy").exists()
    assert "not plain names" in (local / ".bucket" / "refused.json").read_text()


def test_poller_keeps_the_pinned_and_newest_versions(
    s3: S3Server, url: BucketURL, publisher: Path, tmp_path: Path
) -> None:
    client = s3.client()
    versions = [publish_copy(publisher) for _ in range(4)]
    local = tmp_path / "replica"
    poller = BucketPoller(local, url, s3.endpoint, keep=2)
    for version in versions:
        upload_version(publisher / version, url, client)
        assert poller.sync() == version
        if version == versions[0]:
            write_pin(local, version, "test")
    # The oldest is pinned, so it stays; the second is beyond keep=2 and goes.
    assert [p.name for p in artifact.complete_versions(local)] == [
        versions[0],
        versions[2],
        versions[3],
    ]
    assert poller.sync() is None  # nothing newer: nothing downloaded
    assert not any(p.name.startswith(".download-") for p in local.iterdir())


# -- a real server polling the bucket ----------------------------------------------------


def served_version(target: str) -> str:
    with own_connection(target) as ch:
        reply = RecommenderServiceStub(ch).ColdStart(recommender_pb2.ColdStartRequest(), timeout=5)
        return str(reply.model_version)


def served_or_none(target: str) -> str | None:
    """The version a fresh connection's worker serves; None while it has no model yet
    (with two workers, health SERVING on one connection says nothing of the other)."""
    try:
        return served_version(target)
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.UNAVAILABLE:
            raise
        return None


@pytest.fixture
def replica(s3: S3Server, url: BucketURL, tmp_path: Path) -> Callable[..., Any]:
    """A server whose artifact root starts empty and is fed from the bucket alone."""

    def start(workers: int = 1) -> Any:
        return running_server(
            tmp_path / "replica-artifacts",
            tmp_path / "replica-work",
            workers=workers,
            extra_args=(
                "--artifact-bucket",
                str(url),
                "--s3-endpoint",
                s3.endpoint,
                "--bucket-poll-seconds",
                "0.5",
                "--poll-seconds",
                "1",
            ),
        )

    return start


def log_lines(srv: ServerProcess, event: str) -> list[dict[str, Any]]:
    out = []
    for line in srv.log.read_text().splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and event in str(doc.get("event", "")):
            out.append(doc)
    return out


def test_server_serves_versions_published_to_the_bucket(
    s3: S3Server, url: BucketURL, publisher: Path, replica: Callable[..., Any], tmp_path: Path
) -> None:
    client = s3.client()
    first = next(iter(artifact.complete_versions(publisher))).name
    upload_version(publisher / first, url, client)
    with replica(workers=2) as srv:
        srv.wait_health(health_pb2.HealthCheckResponse.SERVING, timeout=WAIT)
        wait_for(
            f"{first} on every worker",
            lambda: all(served_or_none(srv.target) == first for _ in range(6)),
        )
        second = publish_copy(publisher)
        upload_version(publisher / second, url, client)
        wait_for(f"{second} served", lambda: served_or_none(srv.target) == second)
        # Two workers, one download of each version (the round lock).
        downloads = [str(d["version"]) for d in log_lines(srv, "bucket version downloaded")]
        assert sorted(downloads) == sorted([first, second]), downloads
        assert srv.stop() == 0
    local = tmp_path / "replica-artifacts"
    assert {p.name for p in artifact.complete_versions(local)} == {first, second}


def test_corrupt_object_is_refused_then_a_good_version_is_served(
    s3: S3Server, url: BucketURL, publisher: Path, replica: Callable[..., Any], tmp_path: Path
) -> None:
    client = s3.client()
    good = next(iter(artifact.complete_versions(publisher))).name
    upload_version(publisher / good, url, client)
    with replica() as srv:
        srv.wait_health(health_pb2.HealthCheckResponse.SERVING, timeout=WAIT)
        bad = publish_copy(publisher)
        data = (publisher / bad / "item_factors.npy").read_bytes()
        put_version(client, url, publisher / bad, replace={"item_factors.npy": flipped(data)})
        wait_for(
            "the refusal",
            lambda: any(d.get("version") == bad for d in log_lines(srv, "version refused")),
        )
        (refusal,) = [d for d in log_lines(srv, "version refused") if d.get("version") == bad]
        assert "item_factors.npy: sha256" in refusal["error"]
        assert served_version(srv.target) == good
        local = tmp_path / "replica-artifacts"
        assert not (local / bad).exists()
        assert not any(p.name.startswith(".download-") for p in local.iterdir())
        newer = publish_copy(publisher)
        upload_version(publisher / newer, url, client)
        wait_for(f"{newer} served", lambda: served_version(srv.target) == newer)
        assert not (local / bad).exists()
        assert srv.stop() == 0


def test_version_missing_a_file_is_not_loaded_and_is_retried(
    s3: S3Server, url: BucketURL, publisher: Path, replica: Callable[..., Any], tmp_path: Path
) -> None:
    client = s3.client()
    good = next(iter(artifact.complete_versions(publisher))).name
    upload_version(publisher / good, url, client)
    with replica() as srv:
        srv.wait_health(health_pb2.HealthCheckResponse.SERVING, timeout=WAIT)
        late = publish_copy(publisher)
        put_version(client, url, publisher / late, skip=("warmup.json",))
        wait_for(
            "the refusal",
            lambda: any(d.get("version") == late for d in log_lines(srv, "version refused")),
        )
        refusal = next(d for d in log_lines(srv, "version refused") if d.get("version") == late)
        assert "warmup.json" in refusal["error"]
        assert served_version(srv.target) == good
        assert not (tmp_path / "replica-artifacts" / late).exists()
        # The missing object arrives: the version's objects changed, so it is tried again.
        client.put_object(
            Bucket=url.bucket,
            Key=url.key(late, "warmup.json"),
            Body=(publisher / late / "warmup.json").read_bytes(),
        )
        wait_for(f"{late} served", lambda: served_version(srv.target) == late)
        assert srv.stop() == 0
