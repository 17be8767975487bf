"""An S3-compatible server on loopback for the S3 media backend's tests: moto's server, run as its own process.

moto (from PyPI) answers the S3 REST API with the same request handling and
error codes as AWS, including ranges, multipart uploads and their listing;
docs/media-storage.md says why the tests use it rather than MinIO or Garage.
Each test gets a bucket of its own on one server per test session.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import httpx

from tests.conftest import free_port

ACCESS_KEY = "everything-tests"
SECRET_KEY = "everything-tests-secret"
REGION = "us-east-1"


@contextmanager
def moto_server() -> Iterator[str]:
    """Run ``python -m moto.server`` on a free loopback port; yields its endpoint URL once it answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto's server exited: {process.stderr.read() if process.stderr else ''}")
            try:
                httpx.get(f"{url}/moto-api/", timeout=1, trust_env=False)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto's server did not start within 60 s") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def client(endpoint: str) -> Any:
    """A boto3 S3 client of the server, with the tests' credentials."""
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)


def new_bucket(endpoint: str) -> str:
    """A fresh, empty bucket; its name."""
    name = f"everything-{secrets.token_hex(6)}"
    client(endpoint).create_bucket(Bucket=name)
    return name


def media_settings(endpoint: str, bucket: str) -> dict[str, Any]:
    """The ``[media]`` section of a deployment storing into ``bucket``."""
    return {
        "storage": "s3",
        "s3": {"bucket": bucket, "endpoint_url": endpoint, "region": REGION, "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
    }


def media_env(endpoint: str, bucket: str) -> dict[str, str]:
    """The same as ``EVERYTHING_MEDIA__*`` variables, for `everything serve` processes."""
    return {
        "EVERYTHING_MEDIA__STORAGE": "s3",
        "EVERYTHING_MEDIA__S3__BUCKET": bucket,
        "EVERYTHING_MEDIA__S3__ENDPOINT_URL": endpoint,
        "EVERYTHING_MEDIA__S3__REGION": REGION,
        "EVERYTHING_MEDIA__S3__ACCESS_KEY_ID": ACCESS_KEY,
        "EVERYTHING_MEDIA__S3__SECRET_ACCESS_KEY": SECRET_KEY,
    }
