"""Datasets on the local backend: ``plane.datasets`` against raw pyarrow, side by side.

One table of ``--rows`` rows (int64, int32, float64 and string columns; ~63 bytes of Arrow
data a row, so ~300 MB with the default 5 M rows) is generated once and used by both
sides. dataplane runs on a ``dataplane.connect({...})`` mapping config whose catalog
(SQLite), ``file://`` blob store and node cache (``cache.dir``) all live in one temp
folder. In one run, interleaved (the pair alternates which goes first every repetition,
ABBA..., so drift on a noisy machine hits both alike), with medians:

1. write: ``plane.datasets.write(name, table)`` against
   ``pyarrow.parquet.write_to_dataset(table, root, compression="snappy")`` (dataplane's
   default codec is snappy too); a second row partitions both by ``region``
   (``partition_by=[...]`` against ``partition_cols=[...]``). Target ratio >= 0.9. Each
   repetition writes to a fresh name / folder: dataplane's keys are content-addressed
   and an upload of a key already stored is skipped, so reusing a name would time no
   upload at all. A reference row (not judged) runs the raw peer with 1 Mi-row row groups
   like dataplane's (write_to_dataset's defaults make 32 Ki-row groups from a table);
2. read: ``plane.datasets.read(ref).to_table()`` on a warm node cache against
   ``pyarrow.dataset.dataset(<the version's folder in the cache view>, format="parquet",
   partitioning="hive").to_table()``: the very same Parquet files. Target >= 0.95;
3. iter_batches: rows summed over ``plane.datasets.iter_batches(ref, batch_size=65536)``
   against the same dataset's ``.to_batches(batch_size=65536)``. Target >= 0.95.
   Reads and iterations run on the unpartitioned and the partitioned version;
4. streaming write: a child process writes ``--stream-gib`` GiB of Arrow data from a
   generator of record batches (never one table) through ``plane.datasets.write`` and
   reports its peak RSS (``ru_maxrss``) and the growth over its baseline after imports
   and ``connect``. Target: peak < 512 MiB. A second child does the same through raw
   ``write_to_dataset(RecordBatchReader)`` for reference. These children run first,
   while this process is still small: on Linux a child's ``ru_maxrss`` starts at its
   parent's peak (it survives fork and exec), so they also report ``VmHWM``, the peak of
   their own address space alone.

Throughput is Arrow bytes of the table over the median wall time (MB/s, 10**6 bytes per
second); ratio = dataplane / raw. ``os.sync()`` and ``gc.collect()`` run before every
timed call, outside the timed region; the raw write's files are fsync'd right after it,
also outside the timed region but timed separately (dataplane's write is durable: its
local blob store fsyncs every object), which gives the "raw + fsync" diagnostic. Every
result is checked outside the timed region (row counts; tables compared once).

Run: ``python benchmarks/datasets.py [--rows 5000000] [--repeat 7] [--read-repeat 21]
[--stream-gib 2] [--json results.json] [--profile]``.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib
import io
import json
import os
import platform
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from _report import render

import dataplane
from dataplane.facade import DataPlane

WRITE_THRESHOLD = 0.9
READ_THRESHOLD = 0.95
RSS_LIMIT_MIB = 512.0
BATCH_SIZE = 65536  # iter_batches / to_batches
TABLE_CHUNK = 2**20  # rows per chunk of the generated table
STREAM_BATCH = 65536  # rows per batch of the streaming write
VOCABULARY = 100_000  # distinct values of the "name" column
REGIONS = ["us-east", "us-west", "eu-central", "eu-west", "ap-south", "ap-east", "sa-east",
           "af-south"]
PARTITION = "region"
MiB = 2**20
STREAM_CHILD = "--stream-child"


# -------------------------------------------------------------------------- the data
def vocabulary(rng: np.random.Generator) -> pa.Array:
    """``VOCABULARY`` random lowercase strings of 4 to 19 characters, built without Python
    loops (from one buffer of letters and their offsets)."""
    lengths = rng.integers(4, 20, VOCABULARY)
    letters = rng.integers(ord("a"), ord("z") + 1, int(lengths.sum()), dtype=np.uint8)
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int32)
    return pa.StringArray.from_buffers(VOCABULARY, pa.py_buffer(offsets.tobytes()),
                                       pa.py_buffer(letters.tobytes()))


def make_batch(rng: np.random.Generator, words: pa.Array, start: int, rows: int
               ) -> pa.RecordBatch:
    """Rows ``start..start+rows``: mixed int/float/string columns, the partition column last
    (so hive discovery, which appends partition columns, gives the same column order)."""
    regions = pa.array(REGIONS)
    return pa.record_batch({
        "id": pa.array(np.arange(start, start + rows, dtype=np.int64)),
        "user": pa.array(rng.integers(0, 1_000_000, rows, dtype=np.int64)),
        "count": pa.array(rng.integers(0, 100, rows, dtype=np.int32)),
        "x": pa.array(rng.random(rows)),
        "y": pa.array(rng.normal(size=rows)),
        "name": words.take(pa.array(rng.integers(0, VOCABULARY, rows))),
        PARTITION: regions.take(pa.array(rng.integers(0, len(REGIONS), rows))),
    })


def make_table(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    words = vocabulary(rng)
    return pa.Table.from_batches([make_batch(rng, words, start, min(TABLE_CHUNK, rows - start))
                                  for start in range(0, rows, TABLE_CHUNK)])


@dataclass
class Counter:
    rows: int = 0
    nbytes: int = 0
    batches: int = 0


def stream_batches(total_bytes: int, counter: Counter, seed: int = 1
                   ) -> Iterator[pa.RecordBatch]:
    """Batches of ``STREAM_BATCH`` rows, made one at a time, until ``total_bytes`` of Arrow
    data have been produced (counted in ``counter``)."""
    rng = np.random.default_rng(seed)
    words = vocabulary(rng)
    while counter.nbytes < total_bytes:
        batch = make_batch(rng, words, counter.rows, STREAM_BATCH)
        counter.rows += batch.num_rows
        counter.nbytes += batch.nbytes
        counter.batches += 1
        yield batch


def plane_config(work: Path) -> dict[str, Any]:
    return {
        "catalog": {"url": f"sqlite:///{work / 'catalog.db'}"},
        "defaults": {"backend": "local"},
        "backends": {"local": {"url": f"file://{work / 'blobs'}"}},
        "cache": {"dir": str(work / "cache")},
    }


# ------------------------------------------------------------------------- measuring
@dataclass
class Samples:
    label: str
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # this process's CPU seconds, all threads
    extra: list[float] = field(default_factory=list)  # raw writes: the fsync afterwards

    def median(self) -> float:
        return statistics.median(self.seconds)


def timed(fn: Callable[[], Any], samples: Samples | None) -> Any:
    """Run ``fn`` after a sync and a collection; record wall and CPU seconds unless
    ``samples`` is None (warm-up)."""
    os.sync()
    gc.collect()
    cpu = time.process_time()
    started = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - started
    if samples is not None:
        samples.seconds.append(wall)
        samples.cpu.append(time.process_time() - cpu)
    return result


def fsync_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (what a durable raw write would add)."""
    for folder, _, files in os.walk(root):
        for name in [*files, "."]:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


class Phases:
    """Wall seconds a dataplane write spends in each step, from wrappers around three of
    its internals (a few microseconds of overhead per write): ``encode`` (Parquet part
    files under the node cache's partial folder), ``hash`` (per-file and per-chunk
    SHA-256 of those files), ``upload`` (copies into the local blob store, fsync'd);
    the rest is the catalog commit, schema checks and cleanup. Missing internals are
    skipped (the benchmark still runs, without this breakdown)."""

    STEPS = (("encode", "dataplane.datasets._store", None, "_write_parts"),
             ("hash", "dataplane.artifacts.store", "ArtifactStore", "_hash_all"),
             ("upload", "dataplane.artifacts.store", None, "upload_files"))

    def __init__(self) -> None:
        self.current: dict[str, float] = {}
        self.installed: list[str] = []

    def install(self) -> None:
        for step, module_name, owner_name, attribute in self.STEPS:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            owner = getattr(module, owner_name, None) if owner_name else module
            original = getattr(owner, attribute, None)
            if original is None:
                continue
            setattr(owner, attribute, self._wrap(step, original))
            self.installed.append(step)

    def _wrap(self, step: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.current[step] = self.current.get(step, 0.0) + time.perf_counter() - started
        return wrapper

    def take(self) -> dict[str, float]:
        found, self.current = self.current, {}
        return found


@dataclass
class Pair:
    """One judged measure: dataplane and its raw peer, plus reference peers."""

    measure: str
    kind: str  # "write" or "read"
    dataplane: Samples
    raw: Samples
    run_dataplane: Callable[[Samples | None], None]
    run_raw: Callable[[Samples | None], None]
    references: list[tuple[Samples, Callable[[Samples | None], None]]] = field(
        default_factory=list)
    phases: list[dict[str, float]] = field(default_factory=list)

    @property
    def threshold(self) -> float:
        return WRITE_THRESHOLD if self.kind == "write" else READ_THRESHOLD


class Bench:
    def __init__(self, work: Path, table: pa.Table, phases: Phases) -> None:
        self.work = work
        self.table = table
        self.phases = phases
        self.plane: DataPlane = dataplane.connect(plane_config(work))
        self.blob_root = work / "blobs"
        self.raw_root = work / "raw"
        self.raw_root.mkdir()
        self.serial = 0

    def fresh(self, label: str) -> str:
        self.serial += 1
        return f"bench/{label}-{self.serial}"

    # ------------------------------------------------------------------ writes
    def dataplane_write(self, samples: Samples | None, partition: bool, pair: Pair) -> None:
        name = self.fresh("write-part" if partition else "write")
        self.phases.take()
        written = timed(lambda: self.plane.datasets.write(
            name, self.table, partition_by=[PARTITION] if partition else None), samples)
        phases = self.phases.take()
        if samples is not None:
            pair.phases.append(phases)
        if written.manifest.extra["rows"] != self.table.num_rows:
            raise AssertionError(f"dataplane wrote {written.manifest.extra['rows']} rows")
        shutil.rmtree(self.blob_root / self.plane.datasets.prefix(name))  # untimed

    def raw_write(self, samples: Samples | None, partition: bool, **options: Any) -> None:
        root = self.raw_root / self.fresh("raw")
        timed(lambda: pq.write_to_dataset(
            self.table, str(root), partition_cols=[PARTITION] if partition else None,
            compression="snappy", **options), samples)
        started = time.perf_counter()
        fsync_tree(root)  # untimed in the row, kept as the raw + fsync diagnostic
        if samples is not None:
            samples.extra.append(time.perf_counter() - started)
        rows = ds.dataset(str(root), format="parquet").count_rows()
        if rows != self.table.num_rows:
            raise AssertionError(f"write_to_dataset wrote {rows} rows")
        shutil.rmtree(root)

    def write_pair(self, partition: bool, reference: bool) -> Pair:
        what = f"partitioned by {PARTITION}" if partition else "unpartitioned"
        raw_label = ("write_to_dataset(partition_cols=[...])" if partition
                     else "write_to_dataset")
        pair = Pair(f"write, {what}", "write",
                    Samples("datasets.write" + ("(partition_by=[...])" if partition else "")),
                    Samples(raw_label), lambda s: None, lambda s: None)
        pair.run_dataplane = lambda s: self.dataplane_write(s, partition, pair)
        pair.run_raw = lambda s: self.raw_write(s, partition)
        if reference:
            groups = {"row_group_size": TABLE_CHUNK, "min_rows_per_group": TABLE_CHUNK}
            pair.references.append((Samples(f"{raw_label} with 1 Mi-row groups"),
                                    lambda s: self.raw_write(s, partition, **groups)))
        return pair

    # ------------------------------------------------------------------- reads
    def read_pairs(self, partition: bool) -> list[Pair]:
        """Write the version once, fill the cache, check both sides read the same rows."""
        written = self.plane.datasets.write(self.fresh("read"), self.table,
                                            partition_by=[PARTITION] if partition else None)
        ref = written.uri
        view = self.plane.datasets.fetch(ref)  # fills the node cache: reads are warm
        what = f"partitioned ({len(written.files)} files)" if partition else (
            f"unpartitioned ({len(written.files)} files)")

        def raw_dataset() -> ds.Dataset:
            return ds.dataset(str(view), format="parquet", partitioning="hive")

        found = sorted(str(Path(p).relative_to(view)) for p in raw_dataset().files)
        if found != sorted(f.path for f in written.files):
            raise AssertionError(f"the raw dataset sees {found}, the version holds "
                                 f"{[f.path for f in written.files]}")
        ours = self.plane.datasets.read(ref).to_table()
        theirs = raw_dataset().to_table()
        if not ours.equals(theirs):
            raise AssertionError("dataplane and raw pyarrow read different tables")
        expected = self.table if not partition else None
        if expected is not None and not ours.equals(expected):
            raise AssertionError("dataplane read back another table than it wrote")
        del ours, theirs
        rows = self.table.num_rows

        def check(got: int, who: str) -> None:
            if got != rows:
                raise AssertionError(f"{who} gave {got} rows, not {rows}")

        def dp_read(s: Samples | None) -> None:
            check(timed(lambda: self.plane.datasets.read(ref).to_table(), s).num_rows,
                  "datasets.read")

        def raw_read(s: Samples | None) -> None:
            check(timed(lambda: raw_dataset().to_table(), s).num_rows, "dataset.to_table")

        def dp_iter(s: Samples | None) -> None:
            check(timed(lambda: sum(b.num_rows for b in self.plane.datasets.iter_batches(
                ref, batch_size=BATCH_SIZE)), s), "datasets.iter_batches")

        def raw_iter(s: Samples | None) -> None:
            check(timed(lambda: sum(b.num_rows for b in raw_dataset().to_batches(
                batch_size=BATCH_SIZE)), s), "dataset.to_batches")

        return [
            Pair(f"read().to_table(), {what}", "read", Samples("datasets.read(ref).to_table()"),
                 Samples("ds.dataset(view).to_table()"), dp_read, raw_read),
            Pair(f"iter_batches({BATCH_SIZE}), {what}", "read",
                 Samples(f"datasets.iter_batches(ref, batch_size={BATCH_SIZE})"),
                 Samples(f"ds.dataset(view).to_batches(batch_size={BATCH_SIZE})"),
                 dp_iter, raw_iter),
        ]

    def close(self) -> None:
        self.plane.close()


def measure(pairs: list[Pair], repeat: int, label: str) -> None:
    """One warm-up each, then ``repeat`` interleaved repetitions (ABBA per pair)."""
    for rep in range(-1, repeat):
        started = time.monotonic()
        for pair in pairs:
            main = [(pair.dataplane, pair.run_dataplane), (pair.raw, pair.run_raw)]
            order = main if rep % 2 == 0 else main[::-1]
            for samples, run in [*order, *pair.references]:
                run(None if rep < 0 else samples)
        what = "warm-up" if rep < 0 else f"repetition {rep + 1}/{repeat}"
        print(f"  {label} {what}: {time.monotonic() - started:.1f} s", flush=True)


def profile_writes(bench: Bench, top: int) -> str:
    """cProfile of one extra dataplane write of each variant (after the measurements)."""
    out = io.StringIO()
    for partition in (False, True):
        name = bench.fresh("profile")
        profiler = cProfile.Profile()
        os.sync()
        profiler.enable()
        bench.plane.datasets.write(name, bench.table,
                                   partition_by=[PARTITION] if partition else None)
        profiler.disable()
        shutil.rmtree(bench.blob_root / bench.plane.datasets.prefix(name))
        out.write(f"\n--- cProfile: datasets.write, partition_by="
                  f"{[PARTITION] if partition else None} (cumulative, top {top})\n")
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# ---------------------------------------------------------------- streaming (child)
def peak_rss() -> int:
    """This process's ``ru_maxrss`` in bytes (KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def vm_hwm() -> int | None:
    """Peak RSS of this process's own address space (``VmHWM``), in bytes, or None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def stream_child(peer: str, total_bytes: int, work: Path) -> None:
    """Write ``total_bytes`` of generated batches; print one JSON line of measurements."""
    counter = Counter()
    batches = stream_batches(total_bytes, counter)
    first = next(batches)  # both peers start with the generator primed (its vocabulary made)

    def everything() -> Iterator[pa.RecordBatch]:
        yield first
        yield from batches

    plane = dataplane.connect(plane_config(work)) if peer == "dataplane" else None
    baseline, baseline_hwm = peak_rss(), vm_hwm()
    started = time.perf_counter()
    if plane is not None:
        written = plane.datasets.write("bench/stream", everything())
        seconds = time.perf_counter() - started
        files, rows = len(written.files), written.manifest.extra["rows"]
        plane.close()
    else:
        reader = pa.RecordBatchReader.from_batches(first.schema, everything())
        pq.write_to_dataset(reader, str(work / "raw"), compression="snappy")
        seconds = time.perf_counter() - started
        found = ds.dataset(str(work / "raw"), format="parquet")
        files, rows = len(found.files), found.count_rows()
    if rows != counter.rows:
        raise AssertionError(f"{peer} wrote {rows} rows of {counter.rows}")
    print(json.dumps({"peer": peer, "baseline": baseline, "peak": peak_rss(),
                      "baseline_hwm": baseline_hwm, "peak_hwm": vm_hwm(), "seconds": seconds,
                      "rows": counter.rows, "bytes": counter.nbytes, "files": files}))


def run_stream(peer: str, total_bytes: int, parent: str | None) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"dataplane-ds-stream-{peer}-", dir=parent))
    try:
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), STREAM_CHILD,
                               peer, str(total_bytes), str(work)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the {peer} streaming child failed:\n{done.stderr}")
        found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return found
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------- reporting
def paired(dp: Samples, raw: Samples) -> list[float]:
    """dataplane/raw speed of each repetition (the two ran back to back)."""
    return [r / d for d, r in zip(dp.seconds, raw.seconds, strict=True)]


def compare(pair: Pair, dp: Samples, raw: Samples, size: int, judged: bool) -> dict[str, Any]:
    ratio = raw.median() / dp.median()
    pairs = paired(dp, raw)
    return {
        "measure": pair.measure, "dataplane": dp.label, "raw": raw.label, "judged": judged,
        "dataplane_mb_s": size / 1e6 / dp.median(), "raw_mb_s": size / 1e6 / raw.median(),
        "ratio": ratio, "threshold": pair.threshold,
        "verdict": ("ok" if ratio >= pair.threshold else "SLOW") if judged else "reference",
        "paired_ratios": pairs, "paired_median": statistics.median(pairs),
        "raw_spread": (max(raw.seconds) - min(raw.seconds)) / raw.median(),
        "dataplane_seconds": dp.seconds, "raw_seconds": raw.seconds,
        "dataplane_cpu_seconds": dp.cpu, "raw_cpu_seconds": raw.cpu,
        "raw_fsync_seconds": raw.extra,
    }


def stream_result(dp: dict[str, Any], raw: dict[str, Any] | None) -> dict[str, Any]:
    peak = dp["peak"] / MiB
    return {"dataplane": dp, "raw": raw, "limit_mib": RSS_LIMIT_MIB,
            "peak_mib": peak, "growth_mib": (dp["peak"] - dp["baseline"]) / MiB,
            "verdict": "ok" if peak < RSS_LIMIT_MIB else "TOO BIG"}


def main_table(rows: list[dict[str, Any]], stream: dict[str, Any] | None, repeat: int,
               read_repeat: int) -> str:
    body = []
    for r in rows:
        n = repeat if r["measure"].startswith("write") else read_repeat
        label = r["measure"] + f", MB/s (median of {n})"
        if not r["judged"]:
            label = f"  reference, not judged: raw = {r['raw']}"
        body.append((label, f"{r['dataplane_mb_s']:.1f}", f"{r['raw_mb_s']:.1f}",
                     f"{r['ratio']:.3f}", f">= {r['threshold']}" if r["judged"] else "-",
                     r["verdict"] if r["judged"] else "(reference)"))
    if stream is not None:
        dp, raw = stream["dataplane"], stream["raw"]
        gib = dp["bytes"] / 2**30
        body.append((f"streaming write {gib:.2f} GiB: peak RSS, MiB", f"{dp['peak'] / MiB:.0f}",
                     f"{raw['peak'] / MiB:.0f}" if raw else "-", "-",
                     f"< {RSS_LIMIT_MIB:g} MiB", stream["verdict"]))
        body.append(("  growth over the baseline after imports, MiB",
                     f"{(dp['peak'] - dp['baseline']) / MiB:.0f}",
                     f"{(raw['peak'] - raw['baseline']) / MiB:.0f}" if raw else "-", "-",
                     "-", "-"))
    return render(("measure", "dataplane", "raw", "ratio", "target", "verdict"), body, {0})


def diagnostics(rows: list[dict[str, Any]]) -> str:
    body = []
    for r in rows:
        dp_cpu = statistics.median(r["dataplane_cpu_seconds"])
        raw_cpu = statistics.median(r["raw_cpu_seconds"])
        what = r["measure"] if r["judged"] else "  (reference)"
        body.append((what, f"{r['paired_median']:.3f}",
                     f"{min(r['paired_ratios']):.2f}..{max(r['paired_ratios']):.2f}",
                     f"{r['raw_spread']:.0%}",
                     f"{dp_cpu:.2f}/{raw_cpu:.2f} = {dp_cpu / max(raw_cpu, 1e-9):.2f}"))
    return render(("measure", "paired ratio median", "paired min..max", "raw spread",
                   "CPU s dataplane/raw"), body, {0})


def write_breakdown(pairs: list[Pair], rows: list[dict[str, Any]], steps: list[str]) -> str:
    """Median seconds of each dataplane write step, against raw and raw + fsync."""
    lines = []
    judged = [r for r in rows if r["judged"] and r["measure"].startswith("write")]
    for pair, r in zip(pairs, judged, strict=True):
        total = statistics.median(r["dataplane_seconds"])
        parts = []
        if pair.phases and steps:
            for step in steps:
                step_s = statistics.median(p.get(step, 0.0) for p in pair.phases)
                parts.append(f"{step} {step_s:.2f}")
            rest = statistics.median(s - sum(p.values()) for s, p in
                                     zip(pair.dataplane.seconds, pair.phases, strict=True))
            parts.append(f"rest {rest:.2f}")
        raw = statistics.median(r["raw_seconds"])
        durable = statistics.median(s + f for s, f in
                                    zip(r["raw_seconds"], r["raw_fsync_seconds"], strict=True))
        lines.append(f"{pair.measure}: dataplane {total:.2f} s (" + ", ".join(parts)
                     + f"); raw {raw:.2f} s, raw + fsync of its files {durable:.2f} s "
                     f"(ratio vs that {durable / total:.3f})")
        seconds = "  ".join(f"{d:.2f}/{s:.2f}" for d, s in
                            zip(r["dataplane_seconds"], r["raw_seconds"], strict=True))
        lines.append(f"  seconds dataplane/raw per repetition: {seconds}")
    return "\n".join(lines)


def stream_lines(stream: dict[str, Any]) -> str:
    lines = []
    for peer in ("dataplane", "raw"):
        s = stream[peer]
        if s is None:
            continue
        hwm = ""
        if s["peak_hwm"] is not None and s["baseline_hwm"] is not None:
            hwm = (f"; own address space (VmHWM): baseline {s['baseline_hwm'] / MiB:.0f}, "
                   f"peak {s['peak_hwm'] / MiB:.0f} MiB")
        lines.append(f"streaming {peer}: {s['rows']:,} rows, {s['bytes'] / 2**30:.2f} GiB "
                     f"Arrow in {s['seconds']:.1f} s ({s['bytes'] / 1e6 / s['seconds']:.0f} "
                     f"MB/s), {s['files']} files; ru_maxrss baseline "
                     f"{s['baseline'] / MiB:.0f}, peak {s['peak'] / MiB:.0f} MiB{hwm}")
    return "\n".join(lines)


def versions() -> dict[str, str]:
    found = {}
    for name in ("dataplane", "pyarrow", "numpy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=5_000_000,
                        help="rows of the table written and read (default 5,000,000: "
                             "~300 MB of Arrow data)")
    parser.add_argument("--repeat", type=int, default=7,
                        help="measured write repetitions per peer, after one warm-up (7)")
    parser.add_argument("--read-repeat", type=int, default=21,
                        help="measured read and iter_batches repetitions per peer (21)")
    parser.add_argument("--stream-gib", type=float, default=2.0,
                        help="GiB of Arrow data for the streaming-write RSS check; 0 skips "
                             "it (default 2)")
    parser.add_argument("--no-reference", dest="reference", action="store_false",
                        help="skip the reference rows (raw write with 1 Mi-row groups, raw "
                             "streaming write)")
    parser.add_argument("--profile", action="store_true",
                        help="after measuring, print a cProfile of one dataplane write of "
                             "each variant")
    parser.add_argument("--work-dir", metavar="DIR",
                        help="folder for the catalog, blobs, cache and raw copies "
                             "(default: the temp folder)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.repeat < 1 or args.read_repeat < 1 or args.stream_gib < 0:
        parser.error("--rows, --repeat and --read-repeat must be >= 1, --stream-gib >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    print(f"datasets on the local backend: {args.rows:,} rows; writes {args.repeat}x, reads "
          f"{args.read_repeat}x per peer (+1 warm-up), interleaved ABBA; MB/s = Arrow bytes "
          f"/ 10**6 / median s; ratio = dataplane/raw")
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} "
          f"CPUs; " + ", ".join(f"{k} {v}" for k, v in versions().items()))

    stream = None
    if args.stream_gib > 0:  # first, while this process is small (see the docstring)
        total = int(args.stream_gib * 2**30)
        dp = run_stream("dataplane", total, args.work_dir)
        print(f"  streaming write, dataplane: {dp['seconds']:.1f} s", flush=True)
        raw = run_stream("raw", total, args.work_dir) if args.reference else None
        if raw is not None:
            print(f"  streaming write, raw: {raw['seconds']:.1f} s", flush=True)
        stream = stream_result(dp, raw)

    t0 = time.perf_counter()
    table = make_table(args.rows)
    print(f"  table: {table.num_rows:,} rows, {table.nbytes / 1e6:.0f} MB of Arrow data "
          f"({', '.join(f'{f.name} {f.type}' for f in table.schema)}), made in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    phases = Phases()
    phases.install()
    work = Path(tempfile.mkdtemp(prefix="dataplane-ds-bench-", dir=args.work_dir))
    profile = ""
    try:
        bench = Bench(work, table, phases)
        try:
            writes = [bench.write_pair(False, args.reference), bench.write_pair(True, False)]
            measure(writes, args.repeat, "writes")
            reads = bench.read_pairs(False) + bench.read_pairs(True)
            measure(reads, args.read_repeat, "reads")
            if args.profile:
                profile = profile_writes(bench, 25)
        finally:
            bench.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    size = table.nbytes
    rows = []
    for pair in [*writes, *reads]:
        rows.append(compare(pair, pair.dataplane, pair.raw, size, True))
        rows += [compare(pair, pair.dataplane, ref, size, False) for ref, _ in pair.references]
    print()
    print(main_table(rows, stream, args.repeat, args.read_repeat))
    print()
    print("diagnostics: paired ratio = dataplane/raw speed within one repetition (the two ran")
    print("back to back); raw spread = (max - min) / median of the raw times; CPU = this")
    print("process's CPU seconds per op, all threads (medians).")
    print(diagnostics(rows))
    print()
    print("dataplane write steps, median s (" + (", ".join(phases.installed) or "unavailable")
          + ", rest = catalog commit, checks, cleanup):")
    print(write_breakdown(writes, rows, phases.installed))
    if stream is not None:
        print(stream_lines(stream))
        dp = stream["dataplane"]
        if dp["baseline_hwm"] is not None and dp["baseline"] > 1.5 * dp["baseline_hwm"]:
            print("  note: the ru_maxrss baseline includes this process's peak, inherited "
                  "across fork and exec; VmHWM shows the child alone")
    if profile:
        print(profile)
    missed = [r["measure"] for r in rows if r["judged"] and r["verdict"] != "ok"]
    if stream is not None and stream["verdict"] != "ok":
        missed.append("streaming write peak RSS")
    print()
    print(("targets missed: " + "; ".join(missed)) if missed else "all targets met",
          f"(total {time.monotonic() - started:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "rows": args.rows, "arrow_bytes": size, "repeat": args.repeat,
            "read_repeat": args.read_repeat, "batch_size": BATCH_SIZE,
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "versions": versions(), "results": rows, "stream": stream,
            "write_phases": {p.measure: p.phases for p in writes},
        }, indent=2) + "\n")
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == STREAM_CHILD:
        stream_child(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
        sys.exit(0)
    sys.exit(main())
