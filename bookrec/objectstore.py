"""Versions in an S3-compatible bucket: the layout the trainer uploads and servers read.

``s3://BUCKET/PREFIX`` holds one key prefix per version, ``PREFIX/<model_version>/``,
with the same files as the local directory (docs/artifact-format.md). The trainer
uploads every file first and ``manifest.json`` last, so the rule is the local one: a
version whose manifest is present is complete. This module is shared by the trainer
(trainer/publish/bucket.py) and the server (server/engine/bucket.py), which import
nothing of each other. boto3 is imported only when a client is made: a server on a
local folder never loads it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bookrec.artifact import MANIFEST

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SCHEME = "s3://"
# An S3 API other than AWS (MinIO, Ceph, moto): http://HOST:PORT. Read by the trainer
# and the server when their own setting is empty; boto3's AWS_ENDPOINT_URL works too.
ENDPOINT_ENV = "BOOKREC_S3_ENDPOINT"


@dataclass(frozen=True)
class BucketURL:
    bucket: str
    prefix: str  # "" or ends with "/"

    @staticmethod
    def parse(url: str) -> BucketURL:
        """``s3://bucket`` or ``s3://bucket/some/prefix``; ValueError says what is wrong."""
        if not url.startswith(SCHEME):
            raise ValueError(f"{url!r}: expected s3://BUCKET or s3://BUCKET/PREFIX")
        bucket, _, prefix = url[len(SCHEME) :].partition("/")
        if not bucket:
            raise ValueError(f"{url!r}: no bucket name (expected s3://BUCKET/PREFIX)")
        prefix = prefix.strip("/")
        return BucketURL(bucket, f"{prefix}/" if prefix else "")

    def version_prefix(self, version: str) -> str:
        return f"{self.prefix}{version}/"

    def key(self, version: str, name: str) -> str:
        return f"{self.prefix}{version}/{name}"

    def manifest_key(self, version: str) -> str:
        return self.key(version, MANIFEST)

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}"


def endpoint_in_effect(endpoint: str = "") -> str | None:
    """The S3 endpoint URL: the setting, else BOOKREC_S3_ENDPOINT, else boto3's default
    (AWS, or AWS_ENDPOINT_URL)."""
    return endpoint or os.environ.get(ENDPOINT_ENV) or None


def make_client(endpoint: str = "") -> S3Client:
    """An S3 client; credentials and region come from the standard AWS variables and
    files (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, ~/.aws)."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=5,
        read_timeout=60,
        retries={"max_attempts": 3, "mode": "standard"},
    )
    client: S3Client = boto3.client("s3", endpoint_url=endpoint_in_effect(endpoint), config=config)
    return client
