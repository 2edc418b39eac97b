"""moto's S3 server as a real subprocess, so clients talk HTTP exactly as they would to S3.

A subprocess (not moto's in-process mocks) lets tests stop and restart it to simulate an
outage. moto keeps everything in memory: a restart loses every bucket and object, so
``start()`` recreates the two configured buckets unless told not to.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path

from devstack.process import ServiceProcess, free_port

ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"  # noqa: S105 - moto accepts any credentials
REGION = "us-east-1"


class S3Server:
    def __init__(self, base_dir: Path, port: int | None = None, *,
                 bucket: str = "portcullis-files",
                 quarantine_bucket: str = "portcullis-quarantine",
                 create_buckets: bool = True) -> None:
        if bucket == quarantine_bucket:
            raise ValueError("the files and quarantine buckets must differ")
        self.base_dir = base_dir
        self.port = port or free_port()
        self.bucket = bucket
        self.quarantine_bucket = quarantine_bucket
        self.create_buckets = create_buckets
        self.process = ServiceProcess(
            "s3",
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            base_dir / "s3.log",
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=0.5) as resp:  # noqa: S310
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def start(self) -> S3Server:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.process.start()
        self.process.wait_ready(self._answers, timeout=30)
        if self.create_buckets:
            self._create_buckets()
        return self

    def _create_buckets(self) -> None:
        import boto3  # deferred: only needed once the server is up

        client = boto3.client(
            "s3", endpoint_url=self.url, region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY,
        )
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for name in (self.bucket, self.quarantine_bucket):
            if name not in existing:
                client.create_bucket(Bucket=name)
            client.put_bucket_encryption(
                Bucket=name,
                ServerSideEncryptionConfiguration={"Rules": [
                    {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}},
                ]},
            )

    def stop(self) -> None:
        self.process.stop()

    def restart(self) -> S3Server:
        """Stop and start on the same port; moto's contents are gone afterwards."""
        self.stop()
        return self.start()

    def env(self) -> dict[str, str]:
        return {
            "S3_ENDPOINT_URL": self.url,
            "S3_REGION": REGION,
            "S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "S3_BUCKET": self.bucket,
            "S3_QUARANTINE_BUCKET": self.quarantine_bucket,
        }
