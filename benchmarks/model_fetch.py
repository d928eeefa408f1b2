"""Model fetch from S3: dataplane's verified, cached fetch against a plain s3fs download.

A model of ``--files`` files (mixed sizes, random bytes) totalling ``--size-mib`` MiB is
published to S3 (a ``moto_server`` process) with ``plane.models.publish``; the same files
are also uploaded as plain objects under another prefix for the peer. Then, interleaved
(the two alternate and swap which goes first every repetition, ABBA...), ``--repeat``
times each:

- dataplane, cold: ``plane.models.fetch(ref)`` into an emptied node cache. dataplane checks
  every chunk against the SHA-256 digests recorded at publish time;
- peer: ``s3fs.S3FileSystem(...).get("<bucket>/plain/", local_dir, recursive=True)`` of the
  same files, then the SHA-256 of every downloaded file ("digests included": the peer
  does the same verification work, compared with the expected digests).

Throughput is the model's size over the median wall time (MB/s, 10**6 bytes per second);
the ratio dataplane/peer passes at >= 0.9. Finally the warm fetch (a cache hit, which
needs no network I/O) is timed ``--warm`` times; its median passes under 50 ms.

Dirty pages are flushed (``os.sync()``) and ``gc.collect()`` runs before every timed call,
outside the timed region; every result is checked against the expected bytes' digests,
also outside it. Only ratios measured in one run are meaningful (see README.md).

Run: ``python benchmarks/model_fetch.py [--size-mib 1024] [--files 20] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from _report import render
from _servers import moto_server

import dataplane
from dataplane.facade import DataPlane

COLD_THRESHOLD = 0.9
WARM_LIMIT_MS = 50.0
BUCKET = "dataplane-bench"
MODEL = "bench/model"
S3_CREDENTIALS = {"key": "testing", "secret": "testing"}
WRITE_PIECE = 64 * 2**20


# ------------------------------------------------------------------------ the model
def file_sizes(total: int, count: int, seed: int = 20) -> list[int]:
    """``count`` mixed sizes (a few large shards, some medium files, a small config)
    that add up to exactly ``total`` bytes."""
    rng = random.Random(seed)
    weights = [rng.lognormvariate(0, 1.2) for _ in range(count)]
    weights[0] = min(weights) / 1000  # config-sized
    scale = total / sum(weights)
    sizes = [max(1, int(w * scale)) for w in weights]
    sizes[sizes.index(max(sizes))] += total - sum(sizes)
    return sizes


def write_model(folder: Path, total: int, count: int) -> dict[str, str]:
    """Write the model's files; returns their relative paths and SHA-256 hex digests."""
    digests = {}
    for index, size in enumerate(file_sizes(total, count)):
        rel = "config.json" if index == 0 else f"shards/layer-{index:02d}.bin"
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with open(path, "wb") as file:
            left = size
            while left:
                piece = os.urandom(min(left, WRITE_PIECE))
                digest.update(piece)
                file.write(piece)
                left -= len(piece)
        digests[rel] = digest.hexdigest()
    return digests


def sha256_file(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def tree_digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder``, hashed in parallel threads (one per CPU;
    hashlib releases the GIL), so the peer verifies as fast as this machine allows."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        digests = pool.map(sha256_file, files)
        return {p.relative_to(folder).as_posix(): d for p, d in zip(files, digests, strict=True)}


# -------------------------------------------------------------------------- the peers
@dataclass
class Samples:
    label: str
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # this process's CPU seconds, all threads
    get_seconds: list[float] = field(default_factory=list)  # peers: the s3fs.get part

    def median(self) -> float:
        return statistics.median(self.seconds)

    def clear(self) -> None:
        self.seconds.clear(), self.cpu.clear(), self.get_seconds.clear()


def timed(fn: Callable[[], Any], samples: Samples) -> Any:
    os.sync()
    gc.collect()
    cpu = time.process_time()
    started = time.perf_counter()
    result = fn()
    samples.seconds.append(time.perf_counter() - started)
    samples.cpu.append(time.process_time() - cpu)
    return result


class Bench:
    def __init__(self, endpoint: str, work: Path, size: int, files: int) -> None:
        import s3fs

        self.work = work
        self.size = size
        self.source = work / "source"
        self.peer_dir = work / "peer"
        self.fs = s3fs.S3FileSystem(skip_instance_cache=True, endpoint_url=endpoint,
                                    **S3_CREDENTIALS)
        self.fs.mkdir(BUCKET)
        self.plane: DataPlane = dataplane.connect({
            "catalog": {"url": f"sqlite:///{work / 'catalog.db'}"},
            "defaults": {"backend": "s3"},
            "backends": {"s3": {"url": f"s3://{BUCKET}/dp", "endpoint_url": endpoint,
                                **S3_CREDENTIALS}},
            "cache": {"dir": str(work / "cache")},
        })
        started = time.perf_counter()
        self.expected = write_model(self.source, size, files)
        print(f"  wrote {files} files, {size / 2**20:g} MiB in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        started = time.perf_counter()
        self.ref = self.plane.models.publish(MODEL, self.source).uri
        print(f"  published {self.ref} in {time.perf_counter() - started:.1f} s", flush=True)
        started = time.perf_counter()
        self.fs.put(str(self.source) + "/", f"{BUCKET}/plain/", recursive=True)
        print(f"  uploaded the plain copy in {time.perf_counter() - started:.1f} s", flush=True)
        self.dataplane = Samples("plane.models.fetch(ref)")
        self.peer = Samples("s3fs.get(recursive=True) + sha256")
        self.reference = Samples("s3fs.get(recursive=True, max_concurrency=1) + sha256")
        self.warm = Samples("plane.models.fetch(ref), cache hit")

    def empty_cache(self) -> None:
        root = self.plane.cache.root
        for folder in ("blobs", "views", "partial"):
            shutil.rmtree(root / folder)
            (root / folder).mkdir()

    def dataplane_cold(self) -> None:
        self.empty_cache()
        view = timed(lambda: self.plane.models.fetch(self.ref), self.dataplane)
        if tree_digests(view) != self.expected:
            raise AssertionError(f"dataplane fetched other bytes into {view}")

    def peer_cold(self, samples: Samples, **get_options: Any) -> None:
        shutil.rmtree(self.peer_dir, ignore_errors=True)
        self.peer_dir.mkdir()

        def get_and_hash() -> dict[str, str]:
            started = time.perf_counter()
            self.fs.get(f"{BUCKET}/plain/", str(self.peer_dir) + "/", recursive=True,
                        **get_options)
            samples.get_seconds.append(time.perf_counter() - started)
            return tree_digests(self.peer_dir)

        if timed(get_and_hash, samples) != self.expected:
            raise AssertionError(f"{samples.label} fetched other bytes into {self.peer_dir}")

    def dataplane_warm(self, count: int) -> None:
        view = self.plane.models.fetch(self.ref)  # a hit already: filled by a cold fetch
        for _ in range(count):
            gc.collect()
            started = time.perf_counter()
            again = self.plane.models.fetch(self.ref)
            self.warm.seconds.append(time.perf_counter() - started)
            if again != view:
                raise AssertionError("a warm fetch returned another folder")

    def close(self) -> None:
        self.plane.close()


# ------------------------------------------------------------------------- reporting
def compare(bench: Bench, peer: Samples) -> dict[str, Any]:
    mb = bench.size / 1e6
    ratio = bench.dataplane.median() / peer.median()  # = dataplane MB/s / peer MB/s
    return {
        "peer": peer.label, "dataplane_mb_s": mb / bench.dataplane.median(),
        "peer_mb_s": mb / peer.median(), "ratio": 1 / ratio, "ok": 1 / ratio >= COLD_THRESHOLD,
        "dataplane_seconds": bench.dataplane.seconds, "peer_seconds": peer.seconds,
        "dataplane_cpu_seconds": bench.dataplane.cpu, "peer_cpu_seconds": peer.cpu,
        "peer_get_only_seconds": peer.get_seconds,
        "paired_ratios": [p / d for d, p in zip(bench.dataplane.seconds, peer.seconds,
                                                strict=True)],
    }


def results(bench: Bench, files: int) -> dict[str, Any]:
    warm_ms = statistics.median(bench.warm.seconds) * 1000
    found: dict[str, Any] = {
        "size_bytes": bench.size, "files": files, "cold": compare(bench, bench.peer),
        "warm": {"median_ms": warm_ms, "ok": warm_ms < WARM_LIMIT_MS,
                 "max_ms": max(bench.warm.seconds) * 1000, "seconds": bench.warm.seconds},
    }
    if bench.reference.seconds:
        found["reference"] = compare(bench, bench.reference)
    return found


def report(found: dict[str, Any], repeat: int, warm: int) -> str:
    hot = found["warm"]
    size = f"{found['size_bytes'] / 2**20:g} MiB / {found['files']} files"
    rows = [(f"cold fetch {size}, MB/s (median of {repeat})",
             found["cold"], f">= {COLD_THRESHOLD}", "ok" if found["cold"]["ok"] else "SLOW")]
    if "reference" in found:
        rows.append(("  reference, not judged: peer with one GET per file",
                     found["reference"], "-", "(reference)"))
    body = [(label, f"{c['dataplane_mb_s']:.1f}", f"{c['peer_mb_s']:.1f}", c["peer"],
             f"{c['ratio']:.3f}", target, verdict) for label, c, target, verdict in rows]
    body.append((f"warm fetch (cache hit), ms (median of {warm})", f"{hot['median_ms']:.2f}",
                 "-", "-", "-", f"< {WARM_LIMIT_MS:g} ms", "ok" if hot["ok"] else "SLOW"))
    table = render(("measure", "dataplane", "peer", "peer is", "ratio", "target", "verdict"),
                   body, {0, 3})
    diag_rows = []
    lines = []
    for _, c, _, _ in rows:
        paired = c["paired_ratios"]
        spread = (max(c["peer_seconds"]) - min(c["peer_seconds"])) / statistics.median(
            c["peer_seconds"])
        dp_cpu = statistics.median(c["dataplane_cpu_seconds"])
        peer_cpu = statistics.median(c["peer_cpu_seconds"])
        get_only = statistics.median(c["peer_get_only_seconds"])
        diag_rows.append((c["peer"], f"{statistics.median(paired):.3f}",
                          f"{min(paired):.2f}..{max(paired):.2f}", f"{spread:.0%}",
                          f"{dp_cpu:.1f}/{peer_cpu:.1f} = {dp_cpu / max(peer_cpu, 1e-9):.2f}",
                          f"{get_only:.2f} s"))
        seconds = "  ".join(f"{d:.2f}/{p:.2f}" for d, p in
                            zip(c["dataplane_seconds"], c["peer_seconds"], strict=True))
        lines.append(f"seconds dataplane/peer per repetition, vs {c['peer']}: {seconds}")
    diagnostics = render(("cold fetch vs", "paired ratio median", "paired min..max",
                          "peer spread", "client CPU s dataplane/peer", "peer's get alone"),
                         diag_rows, {0})
    lines.append(f"warm fetch: median {hot['median_ms']:.2f} ms, max {hot['max_ms']:.2f} ms")
    return f"{table}\n\n{diagnostics}\n\n" + "\n".join(lines)


def versions() -> str:
    found = []
    for name in ("dataplane", "s3fs", "aiobotocore", "moto"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join(found)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-mib", type=float, default=1024.0,
                        help="total model size in MiB (default 1024)")
    parser.add_argument("--files", type=int, default=20, help="number of files (default 20)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="cold fetches per peer, interleaved ABBA (default 5)")
    parser.add_argument("--warm", type=int, default=20,
                        help="warm fetches to time (default 20)")
    parser.add_argument("--no-reference", dest="reference", action="store_false",
                        help="skip the reference peer (s3fs.get with max_concurrency=1)")
    parser.add_argument("--work-dir", metavar="DIR",
                        help="folder for the model, the cache and the peer's copy "
                             "(default: the temp folder)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.warm < 1 or args.files < 2 or args.size_mib <= 0:
        parser.error("--repeat and --warm must be >= 1, --files >= 2, --size-mib > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    size = int(args.size_mib * 2**20)
    print(f"model fetch: {args.files} files, {size / 2**20:g} MiB, from S3 (moto_server "
          f"process); {args.repeat} cold fetches each, interleaved ABBA; "
          f"{args.warm} warm fetches")
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} "
          f"CPUs; {versions()}")
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="dataplane-model-fetch-", dir=args.work_dir))
    try:
        with moto_server() as server:
            bench = Bench(server.endpoint, work, size, args.files)
            try:
                peers: list[Callable[[], None]] = [
                    bench.dataplane_cold, lambda: bench.peer_cold(bench.peer)]
                if args.reference:
                    peers.append(lambda: bench.peer_cold(bench.reference, max_concurrency=1))
                for peer in peers:  # warm-up: connections, code paths (not counted)
                    peer()
                for samples in (bench.dataplane, bench.peer, bench.reference):
                    samples.clear()
                for rep in range(args.repeat):
                    order = peers[:2] if rep % 2 == 0 else peers[1::-1]  # ABBA...
                    for peer in [*order, *peers[2:]]:
                        peer()
                    done = [s for s in (bench.dataplane, bench.peer, bench.reference)
                            if s.seconds]
                    print(f"  repetition {rep + 1}: " + ", ".join(
                        f"{s.label} {s.seconds[-1]:.2f} s" for s in done), flush=True)
                bench.dataplane_warm(args.warm)  # the last cold fetch filled the cache
                found = results(bench, args.files)
            finally:
                bench.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(report(found, args.repeat, args.warm))
    missed = not (found["cold"]["ok"] and found["warm"]["ok"])
    print()
    print("targets missed" if missed else "all targets met", f"(total "
          f"{time.monotonic() - started:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(found, indent=2) + "\n")
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
