"""Upload a published version to an S3-compatible bucket, manifest last.

Servers that read the bucket (server/engine/bucket.py) take a version whose
``manifest.json`` is present as complete, as they do on a local folder. So every
file the manifest lists goes up first and the manifest goes up only after the
last of them is stored: S3 reads after writes are consistent, so a reader that
lists the manifest finds every file. A version already in the bucket is not
uploaded again (versions are immutable); one in the bucket under the same name
with another manifest is refused.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bookrec import artifact
from bookrec.log import kv
from bookrec.objectstore import BucketURL, make_client
from trainer.errors import UserError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("trainer.publish.bucket")


class PublishError(UserError):
    """The version could not be uploaded; the local artifact is published all the same."""


def _retry_hint(directory: Path, url: BucketURL) -> str:
    return (
        f"the version is published locally at {directory}; upload it again with "
        f"`python -m trainer upload --artifacts {directory.parent} --version {directory.name} "
        f"--publish-to {url}`"
    )


def _remote_manifest(client: S3Client, url: BucketURL, version: str) -> bytes | None:
    from botocore.exceptions import ClientError

    try:
        return client.get_object(Bucket=url.bucket, Key=url.manifest_key(version))["Body"].read()
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise


def upload_version(directory: Path, url: BucketURL, client: S3Client) -> list[str]:
    """Upload ``directory`` (a complete local version) under ``url``; returns the keys
    written, in order (the manifest last; empty when the bucket already holds it)."""
    manifest = artifact.read_manifest(directory)
    artifact.verify(directory, manifest)  # never upload what a server would refuse
    version = directory.name
    if manifest.model_version != version:
        raise PublishError(f"{directory}: manifest says version {manifest.model_version}")
    manifest_bytes = (directory / artifact.MANIFEST).read_bytes()
    existing = _remote_manifest(client, url, version)
    if existing is not None:
        if existing == manifest_bytes:
            log.info("version already in bucket", extra=kv(version=version, bucket=str(url)))
            return []
        raise PublishError(
            f"{url}{version}/ already holds another manifest: versions are immutable; "
            "publish a new version instead of replacing this one"
        )
    start = time.perf_counter()
    written: list[str] = []
    size = 0
    for name in sorted(manifest.files):
        key = url.key(version, name)
        client.upload_file(str(directory / name), url.bucket, key)
        written.append(key)
        size += manifest.files[name].bytes
    key = url.manifest_key(version)
    client.put_object(Bucket=url.bucket, Key=key, Body=manifest_bytes)
    written.append(key)
    log.info(
        "version uploaded",
        extra=kv(
            version=version,
            bucket=str(url),
            files=len(written),
            bytes=size,
            seconds=round(time.perf_counter() - start, 3),
        ),
    )
    return written


def publish_to_bucket(directory: Path, url_text: str, endpoint: str = "") -> list[str]:
    """``upload_version`` from settings; any failure is a PublishError that says how
    to retry."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        url = BucketURL.parse(url_text)
    except ValueError as e:
        raise PublishError(f"--publish-to {e}") from e
    try:
        return upload_version(directory, url, make_client(endpoint))
    except (BotoCoreError, ClientError, OSError) as e:
        raise PublishError(f"upload to {url} failed: {e}; {_retry_hint(directory, url)}") from e
    except artifact.ArtifactError as e:
        raise PublishError(f"{e}: not uploaded (a server would refuse it)") from e
