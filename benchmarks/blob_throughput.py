"""Put/get throughput through dataplane's blob port against the raw client, side by side.

For each backend the same bytes are written and read through ``dataplane.blob.open_store``
("port") and through the client library the adapter wraps, called directly ("raw"), in
one process, interleaved (the two alternate and swap which goes first every repetition,
so drift on a noisy machine hits both alike). Each peer gets one warm-up put and get
that is not counted. The table reports the median MB/s (10**6 bytes per second) of each
and ratio = port median / raw median; the port passes where ratio >= 0.95.

Peers, compared like with like:

- local: ``file://`` store (temp file in a staging folder, fsync, ``os.replace``,
  fsync of the folder) against plain Python file I/O doing that same durable write, and a
  plain ``open().read()`` for get. A reference row compares the port's put with a raw
  write WITHOUT fsync, to show what durability costs; it is not judged.
- s3: ``s3://bucket/port`` against ``s3fs.S3FileSystem(...).pipe_file/cat_file`` with
  the adapter's part size (16 MiB), on a ``moto_server`` process.
- gcs: ``gs://bucket/port`` against ``gcsfs.GCSFileSystem(...).pipe_file/cat_file``
  with the same chunk size, on a fake-gcs-server process (in-memory backend).

Run: ``python benchmarks/blob_throughput.py [--size-mib 64] [--repeat 7]
[--backends local,s3,gcs] [--json results.json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

# Must be set before gcsfs is imported, or every call against the emulator waits out a
# 60 s gRPC timeout (see shared/ENVIRONMENT.md).
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"

from _report import render
from _servers import fake_gcs_server, moto_server

import dataplane
from dataplane.blob import BlobStore, open_store

BACKENDS = ("local", "s3", "gcs")
THRESHOLD = 0.95
PART_SIZE = 16 * 2**20  # the S3/GCS adapters' default part size (adapters/_fsspec.py)
KEY = "bench/object.bin"
BUCKET = "dataplane-bench"
S3_CREDENTIALS = {"key": "testing", "secret": "testing"}


@dataclass
class Peer:
    """One way to put and/or get the benchmark object."""

    label: str
    put: Callable[[bytes], object] | None = None
    get: Callable[[], bytes] | None = None
    put_seconds: list[float] = field(default_factory=list)
    get_seconds: list[float] = field(default_factory=list)
    put_cpu: list[float] = field(default_factory=list)  # this process's CPU seconds, all threads
    get_cpu: list[float] = field(default_factory=list)


@dataclass
class Case:
    """One backend: the port, its raw peer, and reference peers (printed, not judged)."""

    backend: str
    port: Peer
    raw: Peer
    references: list[Peer] = field(default_factory=list)


@dataclass
class Row:
    backend: str
    op: str
    raw: Peer
    port: Peer
    raw_seconds: list[float]
    port_seconds: list[float]
    raw_cpu: list[float]
    port_cpu: list[float]
    size: int
    judged: bool = True

    def raw_mb_s(self) -> float:
        return self.size / 1e6 / statistics.median(self.raw_seconds)

    def port_mb_s(self) -> float:
        return self.size / 1e6 / statistics.median(self.port_seconds)

    def ratio(self) -> float:
        return self.port_mb_s() / self.raw_mb_s()

    def paired_ratios(self) -> list[float]:
        """port/raw speed of each repetition: the two ran back to back, under similar load."""
        return [r / p for r, p in zip(self.raw_seconds, self.port_seconds, strict=True)]

    def cpu_ratio(self) -> float:
        """Client CPU per op, port/raw (medians): what the port itself costs this process."""
        return statistics.median(self.port_cpu) / max(statistics.median(self.raw_cpu), 1e-9)

    def verdict(self) -> str:
        if not self.judged:
            return "reference"
        return "ok" if self.ratio() >= THRESHOLD else "SLOW"

    def as_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend, "op": self.op, "raw_peer": self.raw.label,
            "port_peer": self.port.label, "raw_mb_s": round(self.raw_mb_s(), 2),
            "port_mb_s": round(self.port_mb_s(), 2), "ratio": round(self.ratio(), 4),
            "verdict": self.verdict(), "judged": self.judged,
            "raw_seconds": [round(s, 6) for s in self.raw_seconds],
            "port_seconds": [round(s, 6) for s in self.port_seconds],
            "raw_cpu_seconds": [round(s, 6) for s in self.raw_cpu],
            "port_cpu_seconds": [round(s, 6) for s in self.port_cpu],
            "paired_ratios": [round(r, 4) for r in self.paired_ratios()],
            "cpu_ratio": round(self.cpu_ratio(), 4),
        }


# ------------------------------------------------------------------------ backends
class RawLocalFiles:
    """Plain Python file I/O doing what the local adapter's put promises (durable, atomic)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging = root / ".staging"
        self.staging.mkdir(parents=True)
        self.target = root / KEY
        self.target.parent.mkdir(parents=True)
        self.unsynced = root / "unsynced" / KEY
        self.unsynced.parent.mkdir(parents=True)

    def put_durable(self, data: bytes) -> None:
        fd, temp = tempfile.mkstemp(dir=self.staging, prefix="put-")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, self.target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        folder = os.open(self.target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def put_unsynced(self, data: bytes) -> None:
        with open(self.unsynced, "wb") as file:
            file.write(data)

    def get(self) -> bytes:
        with open(self.target, "rb") as file:
            return file.read()


@contextlib.contextmanager
def local_case(parent: str | None) -> Iterator[Case]:
    workdir = Path(tempfile.mkdtemp(prefix="dataplane-bench-", dir=parent))
    try:
        raw = RawLocalFiles(workdir / "raw")
        with open_store((workdir / "port").as_uri()) as store:
            yield Case(
                "local",
                port=port_peer("file", store),
                raw=Peer("mkstemp+write+fsync+os.replace+dir fsync / open().read()",
                         raw.put_durable, raw.get),
                references=[Peer("open().write() without fsync", put=raw.put_unsynced)],
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def port_peer(scheme: str, store: BlobStore) -> Peer:
    return Peer(f"open_store('{scheme}://...') put/get",
                lambda data: store.put(KEY, data), lambda: store.get(KEY))


def fsspec_case(backend: str, client: str, store: BlobStore, fs: Any, path: str) -> Case:
    """The port against ``fs.pipe_file``/``fs.cat_file`` with the adapter's own settings.

    The raw peer writes with the adapter's part size and reads with the keyword arguments
    the adapter passes to whole-object reads (``whole_read_options``, e.g. s3fs's
    ``max_concurrency=1``), so both make the same requests. Where those differ from the
    client's defaults, a reference row reads with the defaults, to show what the choice
    is worth; it is not judged.
    """
    read_options = dict(getattr(store, "whole_read_options", {}) or {})
    shown = ", ".join(f"{k}={v!r}" for k, v in read_options.items())
    raw = Peer(f"{client} pipe_file(chunksize={PART_SIZE})/cat_file({shown})",
               lambda data: fs.pipe_file(path, data, chunksize=PART_SIZE),
               lambda: fs.cat_file(path, **read_options))
    references = []
    if read_options:
        references.append(Peer(f"cat_file() with {client} defaults", get=lambda: fs.cat_file(path)))
    return Case(backend, port=port_peer(backend if backend != "gcs" else "gs", store), raw=raw,
                references=references)


@contextlib.contextmanager
def s3_case() -> Iterator[Case]:
    import s3fs

    with moto_server() as server:
        fs = s3fs.S3FileSystem(endpoint_url=server.endpoint, **S3_CREDENTIALS)
        fs.mkdir(BUCKET)
        path = f"{BUCKET}/raw/{KEY}"
        options = {**S3_CREDENTIALS, "endpoint_url": server.endpoint}
        with open_store(f"s3://{BUCKET}/port", options) as store:
            yield fsspec_case("s3", "s3fs", store, fs, path)


@contextlib.contextmanager
def gcs_case() -> Iterator[Case]:
    import gcsfs

    with fake_gcs_server() as server:
        options = {"token": "anon", "project": "test", "endpoint_url": server.endpoint}
        fs = gcsfs.GCSFileSystem(**options)
        fs.mkdir(BUCKET)
        path = f"{BUCKET}/raw/{KEY}"
        with open_store(f"gs://{BUCKET}/port", options) as store:
            yield fsspec_case("gcs", "gcsfs", store, fs, path)


# --------------------------------------------------------------------- measuring
def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds, this process's CPU seconds (all threads) and the result of ``fn()``."""
    gc.collect()
    cpu = time.process_time()
    started = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - started
    return wall, time.process_time() - cpu, result


def check_bytes(peer: Peer, got: bytes, data: bytes) -> None:
    if len(got) != len(data) or got != data:
        raise AssertionError(f"{peer.label}: get returned {len(got)} bytes that differ from "
                             f"the {len(data)} bytes put")


def measure(case: Case, data: bytes, repeat: int) -> list[Row]:
    main = [case.port, case.raw]
    everyone = [*main, *case.references]
    for peer in everyone:  # warm-up: connections, page cache, code paths
        if peer.put is not None:
            peer.put(data)
    for peer in everyone:
        if peer.get is not None:
            check_bytes(peer, peer.get(), data)
    for rep in range(repeat):
        order = main if rep % 2 == 0 else main[::-1]  # ABBA...: both go first equally often
        for peer in [*order, *case.references]:
            if peer.put is not None:
                seconds, cpu, _ = timed(lambda put=peer.put: put(data))
                peer.put_seconds.append(seconds)
                peer.put_cpu.append(cpu)
        for peer in [*order, *case.references]:
            if peer.get is not None:
                seconds, cpu, got = timed(peer.get)
                peer.get_seconds.append(seconds)
                peer.get_cpu.append(cpu)
                check_bytes(peer, got, data)  # outside the timed region
                del got
    size = len(data)
    rows = [
        Row(case.backend, "put", case.raw, case.port, case.raw.put_seconds,
            case.port.put_seconds, case.raw.put_cpu, case.port.put_cpu, size),
        Row(case.backend, "get", case.raw, case.port, case.raw.get_seconds,
            case.port.get_seconds, case.raw.get_cpu, case.port.get_cpu, size),
    ]
    for ref in case.references:
        if ref.put is not None:
            rows.append(Row(case.backend, f"put vs raw {ref.label}", ref, case.port,
                            ref.put_seconds, case.port.put_seconds, ref.put_cpu,
                            case.port.put_cpu, size, judged=False))
        if ref.get is not None:
            rows.append(Row(case.backend, f"get vs raw {ref.label}", ref, case.port,
                            ref.get_seconds, case.port.get_seconds, ref.get_cpu,
                            case.port.get_cpu, size, judged=False))
    return rows


# ----------------------------------------------------------------------- output
def table(rows: list[Row]) -> str:
    """The result: medians, their ratio and the verdict."""
    header = ("backend", "op", "raw MB/s", "port MB/s", "ratio", "verdict")
    body = [
        (r.backend, r.op, f"{r.raw_mb_s():.1f}", f"{r.port_mb_s():.1f}", f"{r.ratio():.3f}",
         r.verdict() if r.judged else "(reference)")
        for r in rows
    ]
    return render(header, body, {0, 1, 5})


def diagnostics(rows: list[Row]) -> str:
    """How noisy the run was, and what the port costs in client CPU, for judged rows."""
    header = ("backend", "op", "paired ratio median", "paired min..max",
              "raw spread", "client CPU port/raw")
    body = []
    for r in (r for r in rows if r.judged):
        paired = r.paired_ratios()
        spread = (max(r.raw_seconds) - min(r.raw_seconds)) / statistics.median(r.raw_seconds)
        body.append((r.backend, r.op, f"{statistics.median(paired):.3f}",
                     f"{min(paired):.2f}..{max(paired):.2f}", f"{spread:.0%}",
                     f"{r.cpu_ratio():.3f}"))
    return render(header, body, {0, 1})


def adapters_folder() -> str:
    spec = importlib.util.find_spec("dataplane_adapters")
    return str(Path(spec.origin).parent) if spec and spec.origin else "(not found)"


def versions() -> dict[str, str]:
    found = {}
    for name in ("dataplane", "fsspec", "s3fs", "gcsfs", "aiobotocore", "moto"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-mib", type=float, default=64.0,
                        help="object size in MiB (default 64)")
    parser.add_argument("--repeat", type=int, default=7,
                        help="measured repetitions per peer and op, after one warm-up (7)")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help=f"comma-separated subset of {','.join(BACKENDS)}")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument("--local-dir", metavar="DIR",
                        help="folder for the local backend's files (default: the temp folder)")
    parser.add_argument("--strict", action="store_true",
                        help=f"exit 1 when a judged ratio is below {THRESHOLD}")
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(args.backends) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(unknown)}")
    if args.repeat < 1 or args.size_mib <= 0:
        parser.error("--repeat and --size-mib must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    size = int(args.size_mib * 2**20)
    data = os.urandom(size)
    cases: dict[str, Callable[[], contextlib.AbstractContextManager[Case]]] = {
        "local": lambda: local_case(args.local_dir), "s3": s3_case, "gcs": gcs_case,
    }
    print(f"blob throughput: {size / 2**20:g} MiB objects, {args.repeat} repetitions "
          f"(+1 warm-up), port and raw interleaved; MB/s = 10**6 bytes/s, medians; "
          f"ratio = port/raw, ok if >= {THRESHOLD}")
    print(f"python {platform.python_version()} on {platform.machine()}, "
          f"{os.cpu_count()} CPUs; " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    print(f"dataplane from {Path(dataplane.__file__).parent}, "
          f"adapters from {adapters_folder()}")
    started = time.monotonic()
    rows: list[Row] = []
    for backend in args.backends:
        t0 = time.monotonic()
        with cases[backend]() as case:
            rows += measure(case, data, args.repeat)
        print(f"  {backend}: done in {time.monotonic() - t0:.1f} s", flush=True)
    print()
    print(table(rows))
    print()
    print("diagnostics: paired ratio = port/raw speed of one repetition (the two ran back to")
    print("back); raw spread = (max - min) / median of the raw times; client CPU = this")
    print("process's CPU seconds per op, all threads (the servers run in other processes).")
    print(diagnostics(rows))
    failed = [r for r in rows if r.judged and r.ratio() < THRESHOLD]
    print()
    if failed:
        print("below threshold: " + ", ".join(f"{r.backend} {r.op} ({r.ratio():.3f})"
                                              for r in failed))
    else:
        print(f"all judged ratios >= {THRESHOLD}")
    print(f"total {time.monotonic() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "size_bytes": size, "repeat": args.repeat, "threshold": THRESHOLD,
            "part_size": PART_SIZE, "python": platform.python_version(),
            "cpus": os.cpu_count(), "versions": versions(),
            "results": [r.as_json() for r in rows],
        }, indent=2) + "\n")
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
