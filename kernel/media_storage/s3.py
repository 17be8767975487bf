"""Files in an S3-compatible bucket (AWS S3, MinIO, Ceph, Garage, R2 ...), through boto3.

boto3 is an optional dependency (``pip install 'everything-kernel[s3]'``); the
settings refuse ``storage = "s3"`` without it. Its calls block: like every
storage method they run in the thread pool. Large files go up in parts
(boto3's managed transfer); a part upload a crash left behind is aborted by
:meth:`S3Storage.sweep`, and a bucket lifecycle rule does the same on the
server's side (docs/media-storage.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kernel.media_storage.base import CHUNK, MediaStorage, StoredFile, check_key, sweep_folder


def make_client(endpoint_url: str | None, region: str | None, access_key_id: str | None, secret_access_key: str | None) -> Any:
    """A thread-safe S3 client; credentials not given come from boto3's usual chain (environment, profile, instance role)."""
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url or None,
        region_name=region or None,
        aws_access_key_id=access_key_id or None,
        aws_secret_access_key=secret_access_key or None,
        # Path-style addressing works with every S3-compatible server, virtual hosts only with some.
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"}),
    )


def _not_found(error: Exception) -> bool:
    code = str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


class S3Storage(MediaStorage):
    """One plugin's files as objects ``<prefix><namespace>/<key>`` in one bucket."""

    backend = "s3"
    # Parts of a large upload live on for a day: a lifecycle rule on the bucket says the same (docs/media-storage.md).
    abandoned_after = timedelta(days=1)

    def __init__(self, client: Any, bucket: str, prefix: str, namespace: str, scratch: Path) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = f"{prefix}{check_key(namespace)}/"
        self._scratch = scratch

    def _object(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put(self, key: str, source: Path, content_type: str) -> StoredFile:
        self.sweep_now_and_then()
        # upload_file sends large files in parts and aborts them on failure; the object appears whole or not at all.
        self.client.upload_file(str(source), self.bucket, self._object(key), ExtraArgs={"ContentType": content_type})
        found = self.stat(key)
        if found is None:
            raise RuntimeError(f"s3: {self._object(key)} is not in bucket {self.bucket} right after storing it")
        return found

    def stat(self, key: str) -> StoredFile | None:
        from botocore.exceptions import ClientError  # type: ignore[import-untyped]

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._object(key))
        except ClientError as error:
            if _not_found(error):
                return None
            raise
        modified = head["LastModified"].astimezone(UTC).replace(tzinfo=None)
        return StoredFile(key, int(head["ContentLength"]), head.get("ContentType") or "application/octet-stream", head["ETag"], modified)

    def read(self, key: str, start: int = 0, end: int | None = None, etag: str | None = None) -> Iterator[bytes]:
        from botocore.exceptions import ClientError

        if end is not None and end <= start:
            return iter(())
        wanted = f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"
        # IfMatch: the server itself refuses (412) an object replaced since stat.
        condition = {"IfMatch": etag} if etag is not None else {}
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._object(key), Range=wanted, **condition)
        except ClientError as error:
            if _not_found(error):
                raise FileNotFoundError(key) from None
            if str(error.response.get("Error", {}).get("Code")) in ("PreconditionFailed", "412"):
                raise FileNotFoundError(f"{key} was replaced since it was looked up") from None
            if str(error.response.get("Error", {}).get("Code")) == "InvalidRange":  # start at or past the end
                return iter(())
            raise
        body = answer["Body"]

        def pieces() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(CHUNK)
            finally:
                body.close()

        return pieces()

    def delete(self, key: str) -> None:
        # S3 answers a delete of a missing object with success.
        self.client.delete_object(Bucket=self.bucket, Key=self._object(key))

    def scratch(self) -> Path:
        self._scratch.mkdir(parents=True, exist_ok=True)
        return self._scratch

    def sweep(self, older_than: timedelta) -> int:
        cutoff = datetime.now(UTC) - older_than
        aborted = 0
        for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < cutoff:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                    aborted += 1
        # And this host's own leftovers: uploads a kill cut off before they reached the bucket.
        return aborted + sweep_folder(self._scratch, older_than)
