"""A real S3-compatible endpoint for tests: moto's standalone server, over HTTP, on port 0.

``s3fs`` sends it the same requests a bucket on AWS, MinIO or Ceph receives. The bucket is
created here, as an operator would, never by the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

BUCKET = "privsynth-artifacts"
REGION = "us-east-1"
KEY, SECRET = "test-access-key", "test-secret-key-not-in-errors"


@dataclass(frozen=True)
class S3Endpoint:
    """Where the test server listens, and the fsspec options that reach it."""

    url: str

    def options(self) -> dict[str, Any]:
        """``PRIVSYNTH_ARTIFACT_STORE_OPTIONS`` for this endpoint (credentials included)."""
        return {
            "endpoint_url": self.url,
            "key": KEY,
            "secret": SECRET,
            "client_kwargs": {"region_name": REGION},
        }

    def client(self) -> Any:
        """A boto3 S3 client, for what an operator (or an attacker) does to the bucket."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            region_name=REGION,
        )


@contextmanager
def s3_endpoint() -> Iterator[S3Endpoint]:
    """Run moto's S3 server with :data:`BUCKET` created; stopped on exit."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = S3Endpoint(f"http://{host}:{port}")
        endpoint.client().create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()
