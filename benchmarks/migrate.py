"""Migration throughput: ``dataplane migrate`` against ``rclone copy --checksum``.

1,000 files of mixed size (1 KiB to 64 MiB, log-uniform skewed to small files; about
1.1 GiB in all by default, see ``--count`` and ``--skew``) are published as ten model
versions on a local backend. Then, in one run, ``--repeat`` times each and interleaved:

- **dataplane local -> S3** (a ``moto_server`` process): ``plane.migrate.plan`` +
  ``run`` to a fresh bucket prefix. The run verifies every object at the destination
  against the SHA-256 recorded at publish time (read back), then flips the versions;
- **rclone local -> S3**: ``rclone copy --checksum --transfers N`` of the same objects
  (the backend's ``objects`` folders) to another prefix, N in 4, 8, 16; the best N's
  median is the peer. rclone checks each upload's MD5 against the ETag S3 returns;
- **dataplane local -> local** and **rclone local -> local** likewise, into fresh folders.
  dataplane's local backend fsyncs every object (its durability guarantee); rclone does
  not, so the judged local row runs rclone followed by ``sync`` (the same durability),
  and a reference row compares with dataplane's ``fsync = false``.

Throughput is total bytes over the median wall time; ratio = dataplane / best rclone,
target >= 1.0. Finally the **resume cost**: a migration to a fresh S3 prefix runs in a
child process, which is killed (SIGKILL) once 90% of its bytes verified; the resumed run
is timed and divided by the median full dataplane local -> S3 run: target <= 0.15.

Run: ``python benchmarks/migrate.py [--count 1000] [--repeat 3] [--work-dir DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _report import render
from _servers import moto_server

import dataplane
from dataplane.facade import DataPlane
from dataplane.migrate.journal import Journal

BUCKET = "dataplane-bench"
KEYS = {"key": "testing", "secret": "testing"}
TRANSFERS = (4, 8, 16)
RATIO_TARGET = 1.0
RESUME_TARGET = 0.15


# ---------------------------------------------------------------------------- the data
def sizes(count: int, skew: float, seed: int = 5) -> list[int]:
    """``count`` sizes, log-uniform in [1 KiB, 64 MiB] skewed to small; ends included."""
    rng = random.Random(seed)
    found = [int(2 ** (10 + 16 * rng.random() ** skew)) for _ in range(count)]
    found[0], found[-1] = 2**10, 2**26
    return found


def make_plane(work: Path, repeat: int, endpoint: str) -> DataPlane:
    backends: dict[str, Any] = {"local": {"url": (work / "blobs").as_uri()}}
    for rep in range(repeat + 2):
        backends[f"s3_{rep}"] = {"url": f"s3://{BUCKET}/dp-{rep}", "endpoint_url": endpoint,
                                 **KEYS}
        backends[f"disk_{rep}"] = {"url": (work / f"dp-disk-{rep}").as_uri()}
        backends[f"nosync_{rep}"] = {"url": (work / f"dp-nosync-{rep}").as_uri(),
                                     "fsync": False}
    config = {"catalog": {"url": f"sqlite:///{work / 'catalog.db'}"},
              "defaults": {"backend": "local"}, "backends": backends,
              "cache": {"dir": str(work / "cache")}}
    (work / "config.json").write_text(json.dumps(config))
    return dataplane.connect(config)


def publish(plane: DataPlane, work: Path, count: int, skew: float) -> int:
    source = work / "source"
    total = 0
    rng = random.Random(9)
    for index, size in enumerate(sizes(count, skew)):
        path = source / f"model-{index % 10}" / f"file-{index:04d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
        total += size
    for model in sorted(source.iterdir()):
        plane.models.publish(f"bench/{model.name}", model)
    shutil.rmtree(source)
    return total


# ------------------------------------------------------------------------------- peers
def rclone_env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    env.update(RCLONE_CONFIG_BENCH_TYPE="s3", RCLONE_CONFIG_BENCH_PROVIDER="Other",
               RCLONE_CONFIG_BENCH_ENDPOINT=endpoint,
               RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="testing",
               RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="testing")
    return env


def rclone(source: Path, target: str, transfers: int, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(["rclone", "copy", "--checksum", "--transfers", str(transfers),
                    str(source), target], check=True, env=env)
    return time.perf_counter() - started


def rclone_durable(source: Path, target: str, transfers: int, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(["rclone", "copy", "--checksum", "--transfers", str(transfers),
                    str(source), target], check=True, env=env)
    os.sync()
    return time.perf_counter() - started


def migrate(plane: DataPlane, backend: str) -> float:
    started = time.perf_counter()
    plan = plane.migrate.plan(backend, "models")
    report = plane.migrate.run(plan.plan_id)
    elapsed = time.perf_counter() - started
    if not report.complete:
        raise SystemExit(f"migration to {backend} failed: {report.errors[:3]}")
    plane.migrate.rollback(plan.plan_id)  # back on local for the next repetition
    return elapsed


# ---------------------------------------------------------------------------- measuring
@dataclass
class Samples:
    times: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.times.setdefault(name, []).append(seconds)
        print(f"    {name}: {seconds:.2f} s", flush=True)

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])


def measure(plane: DataPlane, work: Path, endpoint: str, repeat: int) -> Samples:
    samples = Samples()
    objects = work / "blobs" / "default"
    env = rclone_env(endpoint)
    s3 = _raw_s3(endpoint)
    for rep in range(repeat):
        print(f"  repetition {rep + 1}/{repeat}", flush=True)
        os.sync()
        cases = _cases(plane, work, objects, env, rep)
        if rep % 2:
            cases.reverse()  # ABBA: order effects hit both peers alike
        for name, case in cases:
            os.sync()
            samples.add(name, case())
        _clean(work, s3, rep)
    return samples


def _cases(plane: DataPlane, work: Path, objects: Path, env: dict[str, str], rep: int
           ) -> list[tuple[str, Callable[[], float]]]:
    bucket = f"bench:{BUCKET}"
    return [
        ("dataplane s3", lambda: migrate(plane, f"s3_{rep}")),
        *[(f"rclone s3 --transfers {n}",
           lambda n=n: rclone(objects, f"{bucket}/rclone-{rep}-{n}", n, env))
          for n in TRANSFERS],
        ("dataplane disk", lambda: migrate(plane, f"disk_{rep}")),
        *[(f"rclone disk+sync --transfers {n}",
           lambda n=n: rclone_durable(objects, str(work / f"rc-{rep}-{n}"), n, env))
          for n in TRANSFERS],
        ("dataplane disk nofsync", lambda: migrate(plane, f"nosync_{rep}")),
        *[(f"rclone disk --transfers {n}",
           lambda n=n: rclone(objects, str(work / f"rcn-{rep}-{n}"), n, env))
          for n in TRANSFERS],
    ]


def _clean(work: Path, s3: Any, rep: int) -> None:
    for folder in list(work.glob(f"rc-{rep}-*")) + list(work.glob(f"rcn-{rep}-*")):
        shutil.rmtree(folder)
    for prefix in s3.ls(BUCKET):
        if prefix.split("/")[-1].startswith(f"rclone-{rep}-"):
            s3.rm(prefix, recursive=True)


def _raw_s3(endpoint: str) -> Any:
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False,
                             endpoint_url=endpoint, **KEYS)


def resume_cost(plane: DataPlane, work: Path, backend: str) -> tuple[float, float]:
    """Kill a run once 90% of its bytes verified; returns (fraction done, resume time)."""
    plan = plane.migrate.plan(backend, "models")
    journal = Journal(plane.catalog.database, plan.plan_id)
    total = sum(size for _, size in journal.counts().values())
    code = ("import json, sys, dataplane; p = dataplane.connect(json.load(open(sys.argv[1])));"
            "p.migrate.run(sys.argv[2])")
    child = subprocess.Popen([sys.executable, "-c", code, str(work / "config.json"),
                              plan.plan_id])
    done = 0.0
    while child.poll() is None:
        done = journal.counts().get("verified", (0, 0))[1] / total
        if done >= 0.9:
            os.kill(child.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    child.wait()
    started = time.perf_counter()
    report = plane.migrate.run(plan.plan_id)
    elapsed = time.perf_counter() - started
    assert report.complete, report.errors
    assert plane.migrate.verify(plan.plan_id).clean
    return done, elapsed


# ----------------------------------------------------------------------------- reporting
def table(samples: Samples, total: int, count: int, resume: tuple[float, float]) -> str:
    rows = []
    for label, mine, peer_stem in (("local -> S3 (moto)", "dataplane s3", "rclone s3"),
                                   ("local -> local, durable", "dataplane disk",
                                    "rclone disk+sync"),
                                   ("local -> local, no fsync (reference)",
                                    "dataplane disk nofsync", "rclone disk")):
        peers = {n: samples.median(f"{peer_stem} --transfers {n}") for n in TRANSFERS}
        best = min(peers, key=lambda n: peers[n])
        ratio = peers[best] / samples.median(mine)
        verdict = "ok" if ratio >= RATIO_TARGET else "SLOW"
        rows.append((label, f"{total / samples.median(mine) / 1e6:.0f}",
                     f"{total / peers[best] / 1e6:.0f} (--transfers {best})",
                     " / ".join(f"{total / peers[n] / 1e6:.0f}" for n in TRANSFERS),
                     f"{ratio:.2f}x", verdict if "reference" not in label else "-"))
    full = samples.median("dataplane s3")
    cost = resume[1] / full
    rows.append((f"resume after kill -9 at {resume[0]:.0%} (local -> S3)",
                 f"{resume[1]:.2f} s", f"full run {full:.2f} s", "-", f"{cost:.2f} of full",
                 "ok" if cost <= RESUME_TARGET else "SLOW"))
    header = ("migration", "dataplane MB/s", "rclone best MB/s", "rclone 4 / 8 / 16 MB/s",
              "ratio", "verdict")
    return (f"{count} files, {total / 2**20:.0f} MiB; medians; MB/s = 10**6 bytes/s\n\n"
            + render(header, rows, {0}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=1000, help="files (1000)")
    parser.add_argument("--skew", type=float, default=4.0,
                        help="size skew to small files; higher is smaller in total (4.0)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (3)")
    parser.add_argument("--work-dir", help="folder for the data (default: a temp folder)")
    parser.add_argument("--json", metavar="PATH", help="also write the timings as JSON here")
    args = parser.parse_args(argv)
    if shutil.which("rclone") is None:
        raise SystemExit("rclone not found: apt-get install rclone")
    work = Path(tempfile.mkdtemp(prefix="dp-bench-migrate-", dir=args.work_dir))
    peer = subprocess.run(["rclone", "version"], capture_output=True, text=True).stdout
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {peer.splitlines()[0]}")
    try:
        with moto_server() as server:
            _raw_s3(server.endpoint).mkdir(BUCKET)
            with make_plane(work, args.repeat, server.endpoint) as plane:
                total = publish(plane, work, args.count, args.skew)
                print(f"published {args.count} files, {total / 2**20:.0f} MiB", flush=True)
                samples = measure(plane, work, server.endpoint, args.repeat)
                resume = resume_cost(plane, work, f"s3_{args.repeat}")
                print(f"  resume: killed at {resume[0]:.0%}, resumed in {resume[1]:.2f} s")
        print()
        print(table(samples, total, args.count, resume))
        if args.json:
            Path(args.json).write_text(json.dumps({"total": total, "times": samples.times,
                                                   "resume": resume}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
