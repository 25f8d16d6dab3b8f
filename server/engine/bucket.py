"""Brings new versions from an S3-compatible bucket into the local artifact root.

A thread, off the event loop, lists the bucket every ``interval`` seconds. A
version newer than every local one whose ``manifest.json`` is in the bucket (the
trainer uploads it last, trainer/publish/bucket.py) is downloaded into a hidden
``.download-<version>`` directory of the root: each file the manifest lists, its
size and sha256 checked against the manifest while it streams in, the manifest
written last. Only a download that checks out whole is renamed to
``<root>/<version>``, and from there the usual path takes over: the source's
watcher sees the rename, the manager decides, loads, verifies and warms up with
every check and refusal it applies to a local folder. A partial or corrupt
download is never renamed into place. A version refused (bad hash, a file the
manifest lists missing from the bucket, an unreadable manifest) is remembered
with what its objects looked like and tried again once they change; a network
error just ends the round, and the next one tries again.

Workers of one server share the root: a round runs under a non-blocking lock in
``<root>/.bucket/``, so one worker per host downloads and the others skip the
round (their watchers see the version appear). Old local versions beyond
``keep`` are removed, never the pinned one nor any a live worker leases.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from bookrec import artifact
from bookrec.log import kv
from bookrec.objectstore import BucketURL, make_client
from server.engine import control

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("server.bucket")
STATE_DIR = ".bucket"
DOWNLOAD_PREFIX = ".download-"
DELETING_PREFIX = ".deleting-"
REFUSED = "refused.json"
_CHUNK = 1 << 20

# (name, etag, size) of every object under a version's prefix, by name.
Objects = tuple[tuple[str, str, int], ...]


class Refused(Exception):
    """The bucket's version cannot serve as it stands; tried again once it changes."""


@contextlib.contextmanager
def try_lock(path: Path) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` if no other process does; yields whether held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _safe_name(name: str) -> bool:
    """A manifest entry is a plain file name: never a path out of the version directory."""
    return bool(name) and name == Path(name).name and not name.startswith(".")


class BucketPoller:
    """``sync`` is one round; ``start`` runs rounds on a thread until ``stop``."""

    def __init__(
        self,
        root: Path,
        url: BucketURL,
        endpoint: str = "",
        interval: float = 10.0,
        keep: int = 3,
        on_new: Callable[[], object] = lambda: None,
        pinned: Callable[[], str | None] | None = None,
        client: S3Client | None = None,
    ) -> None:
        self.root = root
        self.url = url
        self.endpoint = endpoint
        self.interval = interval
        self.keep = keep
        self.on_new = on_new
        # The operator's pin as the manager reads it (the control file by default).
        self.pinned = pinned or (lambda: control.read_pin(root))
        self._client = client
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error = ""

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    def client(self) -> S3Client:
        if self._client is None:
            self._client = make_client(self.endpoint)
        return self._client

    # -- the thread -------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="bucket-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        # Downloading and hashing compete with serving: at nice 10, requests win the CPU.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception as e:  # a bug must not end the polling for good
                log.exception("bucket round failed", extra=kv(error=str(e)))
            self._stop.wait(self.interval)

    # -- one round --------------------------------------------------------------------

    def sync(self) -> str | None:
        """Download the newest new complete version, if any; returns it once it is in
        place. None when there is none, another worker holds the round, or it failed."""
        from botocore.exceptions import BotoCoreError, ClientError

        self.root.mkdir(parents=True, exist_ok=True)
        with try_lock(self.state_dir / "download.lock") as held:
            if not held:
                return None
            self._clean_partial()
            try:
                placed = self._fetch_newer()
            except (BotoCoreError, ClientError) as e:
                if str(e) != self._last_error:  # once per outage, not once per round
                    log.warning(
                        "bucket unreachable: will retry",
                        extra=kv(bucket=str(self.url), error=str(e), retry_s=self.interval),
                    )
                self._last_error = str(e)
                return None
            self._last_error = ""
            self._prune()
        if placed is not None:
            self.on_new()
        return placed

    def _versions(self) -> list[str]:
        """Version prefixes in the bucket, oldest first (names sort by time)."""
        out: list[str] = []
        pages = self.client().get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.url.bucket, Prefix=self.url.prefix, Delimiter="/"):
            for entry in page.get("CommonPrefixes", []):
                name = entry.get("Prefix", "")[len(self.url.prefix) :].rstrip("/")
                if artifact.is_model_version(name):
                    out.append(name)
        return sorted(out)

    def _objects(self, version: str) -> Objects:
        out: list[tuple[str, str, int]] = []
        prefix = self.url.version_prefix(version)
        pages = self.client().get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.url.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                out.append((obj["Key"][len(prefix) :], obj.get("ETag", ""), obj.get("Size", 0)))
        return tuple(sorted(out))

    def _fetch_newer(self) -> str | None:
        local = {p.name for p in self.root.iterdir() if artifact.is_model_version(p.name)}
        complete = [p.name for p in artifact.complete_versions(self.root)]
        newest_local = complete[-1] if complete else ""
        refused = self._refused()
        for version in reversed(self._versions()):
            if version <= newest_local:
                break
            if version in local:
                continue
            objects = self._objects(version)
            if artifact.MANIFEST not in {name for name, _, _ in objects}:
                continue  # still uploading: the manifest comes last
            if refused.get(version) == [list(o) for o in objects]:
                continue  # refused before, and nothing changed since
            try:
                self._download(version, {name: size for name, _, size in objects})
            except Refused as e:
                log.error(
                    "bucket version refused: not placed, current model serves on",
                    extra=kv(version=version, bucket=str(self.url), error=str(e)),
                )
                self._record_refused(version, objects, str(e))
                continue
            return version
        return None

    def _download(self, version: str, sizes: dict[str, int]) -> None:
        """Into ``.download-<version>``, checked whole, then renamed into place."""
        from botocore.exceptions import ClientError

        tmp = self.root / f"{DOWNLOAD_PREFIX}{version}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        start = time.perf_counter()
        try:
            manifest_bytes = self._get(self.url.manifest_key(version))
            (tmp / artifact.MANIFEST).write_bytes(manifest_bytes)
            try:
                manifest = artifact.read_manifest(tmp)  # format version, readable
            except artifact.ArtifactError as e:
                raise Refused(str(e).replace(str(tmp), f"{self.url}{version}")) from e
            (tmp / artifact.MANIFEST).unlink()  # written again last
            if manifest.model_version != version:
                raise Refused(f"manifest names version {manifest.model_version}")
            bad = sorted(n for n in manifest.files if not _safe_name(n))
            if bad:
                raise Refused(f"manifest lists files that are not plain names: {bad}")
            missing = sorted(set(manifest.files) - set(sizes))
            if missing:
                raise Refused(f"manifest lists files the bucket lacks: {missing}")
            total = 0
            for name, entry in sorted(manifest.files.items()):
                try:
                    self._fetch_file(version, name, tmp / name, entry)
                except ClientError as e:
                    if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                        raise Refused(f"{name}: gone from the bucket during the download") from e
                    raise
                total += entry.bytes
            (tmp / artifact.MANIFEST).write_bytes(manifest_bytes)
            artifact.fsync(tmp / artifact.MANIFEST)
            try:
                artifact.verify(tmp, manifest, check_hashes=False)  # hashed while streaming
            except artifact.ArtifactError as e:
                raise Refused(str(e).replace(str(tmp), f"{self.url}{version}")) from e
            final = self.root / version
            if final.exists():  # placed meanwhile by something else: never replace it
                return
            os.rename(tmp, final)
            artifact.fsync(self.root, directory=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info(
            "bucket version downloaded",
            extra=kv(
                version=version,
                bucket=str(self.url),
                files=len(manifest.files),
                bytes=total,
                seconds=round(time.perf_counter() - start, 3),
            ),
        )

    def _get(self, key: str) -> bytes:
        return self.client().get_object(Bucket=self.url.bucket, Key=key)["Body"].read()

    def _fetch_file(self, version: str, name: str, path: Path, entry: artifact.FileEntry) -> None:
        body = self.client().get_object(Bucket=self.url.bucket, Key=self.url.key(version, name))[
            "Body"
        ]
        digest = hashlib.sha256()
        size = 0
        with path.open("wb") as out:
            for chunk in body.iter_chunks(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                if size > entry.bytes:
                    raise Refused(f"{name}: larger than the manifest's {entry.bytes} bytes")
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size != entry.bytes:
            raise Refused(f"{name}: {size} bytes, the manifest says {entry.bytes}")
        if digest.hexdigest() != entry.sha256:
            raise Refused(f"{name}: sha256 {digest.hexdigest()} != manifest {entry.sha256}")

    # -- what the rounds remember and tidy --------------------------------------------

    def _refused(self) -> dict[str, list[list[object]]]:
        try:
            doc = json.loads((self.state_dir / REFUSED).read_text())
            return {v: r["objects"] for v, r in doc.items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}

    def _record_refused(self, version: str, objects: Objects, error: str) -> None:
        """Shared by the workers (whichever holds the next round), beside the lock."""
        path = self.state_dir / REFUSED
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            doc = {}
        doc[version] = {"objects": [list(o) for o in objects], "error": error}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
        os.replace(tmp, path)

    def _clean_partial(self) -> None:
        """Downloads of a worker killed mid-way (we hold the round, so none is live)."""
        for p in self.root.iterdir():
            if p.name.startswith((DOWNLOAD_PREFIX, DELETING_PREFIX)):
                shutil.rmtree(p, ignore_errors=True)

    def _prune(self) -> None:
        """Keep the newest ``keep`` local versions, the pinned one and every leased one."""
        if self.keep < 1:
            return
        versions = artifact.complete_versions(self.root)
        spared = artifact.leased_versions(self.root)
        pin = self.pinned()
        if pin:
            spared.add(pin)
        removed = []
        for path in versions[: -self.keep]:
            if path.name in spared:
                continue
            target = self.root / f"{DELETING_PREFIX}{path.name}"
            os.rename(path, target)  # out of the version namespace at once
            shutil.rmtree(target, ignore_errors=True)
            removed.append(path.name)
        if removed:
            log.info("old local versions removed", extra=kv(removed=removed, kept=sorted(spared)))
