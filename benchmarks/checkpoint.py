"""Checkpoint save and load through ``plane.checkpoints`` against raw file I/O, torch.save
and torch.distributed.checkpoint (DCP), side by side in one run.

One training-like state (a few large float32 tensors and a few thousand small ones, at
least ``--state-gib`` GiB) is saved and loaded by every peer in one process, interleaved
(the order rotates and flips every repetition, so drift on a noisy machine hits everyone
alike), after one warm-up each that is not counted. Every save is durable (dataplane's
local adapter fsyncs every object and folder; the peers fsync what they wrote) and every
local load is cold (the page cache of that checkpoint's files is dropped first). The
table reports medians and ratio = dataplane / peer, against the targets of issue 4:

- save MB/s: >= 0.85x a raw sequential write + fsync of the same bytes (one file), and
  >= 1.0x ``torch.save`` + fsync and DCP (``FileSystemWriter``, best of thread_count 1, 4);
- cold load MB/s: >= 0.85x a raw sequential read of the same bytes, >= 1.0x ``torch.load``
  and DCP load;
- ``save_async`` blocking time <= 1.5x a plain in-memory copy (``t.clone()`` of every
  tensor);
- peak RSS above the state, each in a fresh child process: sync save <= max(256 MiB, 10 %
  of the state), load <= 10 % of the state;
- save and load against S3 (a ``moto_server`` process) beside DCP through fsspec: reported.

Run: ``python benchmarks/checkpoint.py [--state-gib 2] [--repeat 3] [--s3-gib 0.25]
[--json results.json]``; ``--state-gib 0.5`` for a quick look.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import itertools
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from _report import render
from _servers import moto_server

import dataplane
from dataplane.facade import DataPlane

MiB = 2**20
GiB = 2**30
SAVE_VS_RAW = 0.85
LOAD_VS_RAW = 0.85
VS_TORCH = 1.0
ASYNC_LIMIT = 1.5
SAVE_RSS_FLOOR = 256 * MiB
RSS_FRACTION = 0.10
LARGE_TENSORS = ("model/embed/weight", "model/lm_head/weight", "optim/exp_avg/embed",
                 "optim/exp_avg_sq/embed")
LARGE_COLS = 4096
SMALL_FRACTION = 0.10  # of the state's bytes held by the small tensors
DCP_THREADS = (1, 4)
BUCKET = "dataplane-bench"
S3_CREDENTIALS = {"key": "testing", "secret": "testing"}
RUN = "bench"
CHILD = "--child"

warnings.filterwarnings("ignore", module=r"torch\.distributed\.checkpoint.*")


# ---------------------------------------------------------------------------- the state
def plan_state(total_bytes: int, n_small: int, seed: int) -> list[tuple[str, tuple[int, ...]]]:
    """``(key, shape)`` of every float32 tensor: ``n_small`` small ones (log-uniform sizes,
    about 10 % of the bytes in all, 1-D and 2-D) and four large ``(rows, 4096)`` ones
    holding the rest, so that the total is at least ``total_bytes``."""
    rng = np.random.default_rng(seed)
    small: list[tuple[str, tuple[int, ...]]] = []
    if n_small:
        weights = np.exp(rng.uniform(0.0, math.log(64.0), n_small))
        elements = np.maximum(16, np.round(weights / weights.sum() * total_bytes
                                           * SMALL_FRACTION / 4)).astype(int)
        for i, n in enumerate(elements):
            shape = (int(n) // 64, 64) if n >= 1024 and i % 2 else (int(n),)
            small.append((f"model/blocks/{i // 8:04d}/p{i % 8}", shape))
    small_bytes = sum(4 * math.prod(s) for _, s in small)
    per_large = max(0, total_bytes - small_bytes) / len(LARGE_TENSORS)
    rows = max(1, math.ceil(per_large / (4 * LARGE_COLS)))
    return [(key, (rows, LARGE_COLS)) for key in LARGE_TENSORS] + small


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a/b": x}`` -> ``{"a": {"b": x}}``."""
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The inverse of :func:`nest`: every leaf by its ``/``-joined path."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(flatten(value, path))
        else:
            flat[path] = value
    return flat


def build_state(plan: list[tuple[str, tuple[int, ...]]], seed: int) -> dict[str, Any]:
    """The state: tensors filled in place (no temporaries, so the peak RSS after building
    is the state itself) plus a few plain values, as in a training loop's state."""
    generator = torch.Generator().manual_seed(seed)
    flat: dict[str, Any] = {key: torch.empty(shape, dtype=torch.float32).normal_(
        generator=generator) for key, shape in plan}
    flat.update({"meta/step": 1000, "meta/lr": 3e-4, "meta/seed": seed})
    return nest(flat)


def tensors(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in flatten(state).items() if isinstance(v, torch.Tensor)}


def state_bytes(state: dict[str, Any]) -> int:
    return sum(t.nbytes for t in tensors(state).values())


def empty_like_state(state_or_plan: dict[str, Any]) -> dict[str, Any]:
    """Fresh uninitialised tensors of the same shapes (a DCP load target), plain values
    copied."""
    return nest({k: torch.empty_like(v) if isinstance(v, torch.Tensor) else v
                 for k, v in flatten(state_or_plan).items()})


def empty_state(plan: list[tuple[str, tuple[int, ...]]], seed: int) -> dict[str, Any]:
    """What :func:`build_state` makes, with uninitialised tensors (a DCP load target)."""
    flat: dict[str, Any] = {key: torch.empty(shape, dtype=torch.float32) for key, shape in plan}
    flat.update({"meta/step": 1000, "meta/lr": 3e-4, "meta/seed": seed})
    return nest(flat)


def clone_state(state: dict[str, Any]) -> dict[str, Any]:
    """The peer of ``save_async``'s snapshot: a plain in-memory copy of every tensor."""
    return {k: clone_state(v) if isinstance(v, dict) else
            v.clone() if isinstance(v, torch.Tensor) else v for k, v in state.items()}


def fingerprint(state: dict[str, Any]) -> str:
    """A cheap digest of the values (float64 sums), for checks across processes."""
    total = 0.0
    for key, tensor in sorted(tensors(state).items()):
        total += float(tensor.sum(dtype=torch.float64)) * (1 + len(key) % 7)
    return f"{total:.10e}"


def check_equal(label: str, got: dict[str, Any], expected: dict[str, Any],
                plain: bool = True) -> None:
    """Every tensor bit-identical and (with ``plain``) every plain value equal, or
    AssertionError."""
    want, have = flatten(expected), flatten(got)
    if not plain:
        want = {k: v for k, v in want.items() if isinstance(v, torch.Tensor)}
    if set(want) != set(have):
        missing = sorted(set(want) ^ set(have))[:5]
        raise AssertionError(f"{label}: keys differ, e.g. {missing}")
    for key, value in want.items():
        other = have[key]
        if isinstance(value, torch.Tensor):
            same = (isinstance(other, torch.Tensor) and other.dtype == value.dtype
                    and other.shape == value.shape and torch.equal(other, value))
        else:
            same = other == value
        if not same:
            raise AssertionError(f"{label}: {key!r} differs from what was saved")


# ---------------------------------------------------------------------------- disk helpers
def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def files_under(root: Path) -> list[Path]:
    return [Path(folder) / name for folder, _, names in os.walk(root) for name in names]


def drop_cache(paths: list[Path]) -> None:
    """Evict these files from the page cache: fsync (DONTNEED drops clean pages only),
    then ``posix_fadvise(POSIX_FADV_DONTNEED)`` over the whole file."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def drop_caches_status() -> str:
    """Whether this process could write ``/proc/sys/vm/drop_caches`` (opening it for
    writing drops nothing; only a write does)."""
    try:
        with open("/proc/sys/vm/drop_caches", "w"):
            return "writable"
    except OSError as error:
        return f"not writable ({error.strerror})"


class Residency:
    """How much of a set of files is in the page cache (``mincore`` over a read-only
    mapping), to check that a drop worked. Linux only; ``None`` where unavailable."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE")
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            self.mmap, self.mincore, self.munmap = libc.mmap, libc.mincore, libc.munmap
        except (OSError, AttributeError):
            self.mmap = None
            return
        self.mmap.restype = ctypes.c_void_p
        self.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int, ctypes.c_long]
        self.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        self.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]

    def fraction(self, paths: list[Path]) -> float | None:
        if self.mmap is None:
            return None
        resident = total = 0
        for path in paths:
            size = path.stat().st_size
            if size == 0:
                continue
            pages = (size + self.page - 1) // self.page
            fd = os.open(path, os.O_RDONLY)
            try:
                address = self.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
                if address in (None, ctypes.c_void_p(-1).value):
                    return None
                try:
                    vector = (ctypes.c_ubyte * pages)()
                    if self.mincore(address, size, vector) != 0:
                        return None
                    resident += sum(b & 1 for b in vector)
                finally:
                    self.munmap(address, size)
            finally:
                os.close(fd)
            total += pages
        return resident / total if total else 0.0


# ---------------------------------------------------------------------------- peers
class Peer(ABC):
    """A way to save a state (returning a token naming what was written), load it back,
    list the local files it wrote, and discard it."""

    label = ""
    short = ""
    plain = True  # whether it stores the state's plain values too (raw peers: bytes only)

    @abstractmethod
    def save(self, state: dict[str, Any]) -> Any: ...

    @abstractmethod
    def load(self, token: Any) -> dict[str, Any]: ...

    @abstractmethod
    def files(self, token: Any) -> list[Path]: ...

    @abstractmethod
    def discard(self, token: Any) -> None: ...


class InMemoryCopy(Peer):
    """The reference for ``save_async``: a ``clone()`` of every tensor, nothing stored."""

    label = short = "clone"

    def save(self, state: dict[str, Any]) -> dict[str, Any]:
        return clone_state(state)

    def load(self, token: Any) -> dict[str, Any]:
        return dict(token)

    def files(self, token: Any) -> list[Path]:
        return []

    def discard(self, token: Any) -> None:
        pass


class FolderPeer(Peer):
    """Writes each save into a fresh folder under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True)
        self._numbers = itertools.count()

    def keys(self, flat: dict[str, torch.Tensor]) -> list[str]:
        """The tensors of ``flat`` in layout order (a raw peer's implicit header)."""
        layout: list[tuple[str, tuple[int, ...]]] = getattr(self, "layout", [])
        return [key for key, _ in layout if key in flat]

    def fresh(self) -> Path:
        return self.root / f"save-{next(self._numbers):03d}"

    def files(self, token: Path) -> list[Path]:
        return files_under(token)

    def discard(self, token: Path) -> None:
        shutil.rmtree(token)


class DataplanePeer(Peer):
    """``plane.checkpoints.save(run, step, state)`` / ``.load(run, step)``."""

    def __init__(self, plane: DataPlane, catalog: Path | None, run: str = RUN) -> None:
        self.plane = plane
        self.catalog = catalog
        self.run = run
        self.label = "plane.checkpoints.save / load"
        self.short = "dataplane"
        self._steps = itertools.count(1)

    def save(self, state: dict[str, Any]) -> int:
        step = next(self._steps)
        self.plane.checkpoints.save(self.run, step, state)
        return step

    def load(self, token: int) -> dict[str, Any]:
        loaded: dict[str, Any] = self.plane.checkpoints.load(self.run, token)
        return loaded

    def folder(self, token: int) -> Path:
        url = self.plane.checkpoints.checkpoint(self.run, token).url
        return Path(url.removeprefix("file://"))

    def files(self, token: int) -> list[Path]:
        catalog = [] if self.catalog is None else [
            p for p in self.catalog.parent.glob(self.catalog.name + "*") if p.is_file()]
        return files_under(self.folder(token)) + catalog

    def discard(self, token: int) -> None:
        self.plane.checkpoints.delete(self.run, token)


class S3DataplanePeer(DataplanePeer):
    """The same calls against an ``s3://`` backend; ``discard`` removes the checkpoint's
    objects with one recursive s3fs delete (batched DeleteObjects) instead of
    ``checkpoints.delete``'s one request per object, to keep the run short (untimed)."""

    def __init__(self, plane: DataPlane, fs: Any, root: str) -> None:
        super().__init__(plane, None)
        self.fs = fs
        self.root = root

    def files(self, token: int) -> list[Path]:
        return []

    def discard(self, token: int) -> None:
        prefix = self.plane.checkpoints.checkpoint(self.run, token).record.manifest["prefix"]
        self.fs.rm(f"{self.root}/{prefix}", recursive=True)


class RawOneFile(FolderPeer):
    """Every tensor's bytes, one after the other, into one file; fsync it and its folder.
    Load: allocate each tensor and ``readinto`` it from the file, in order."""

    label = "raw: write all tensor bytes to one file + fsync / readinto"
    short = "raw"
    plain = False

    def __init__(self, root: Path, layout: list[tuple[str, tuple[int, ...]]]) -> None:
        super().__init__(root)
        self.layout = layout

    def save(self, state: dict[str, Any]) -> Path:
        folder = self.fresh()
        folder.mkdir()
        flat = tensors(state)
        with open(folder / "state.bin", "wb") as file:
            for key in self.keys(flat):
                file.write(memoryview(flat[key].numpy()).cast("B"))
            file.flush()
            os.fsync(file.fileno())
        fsync_path(folder)
        return folder

    def load(self, token: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        with open(token / "state.bin", "rb", buffering=0) as file:
            for key, shape in self.layout:
                tensor = torch.empty(shape, dtype=torch.float32)
                view = memoryview(tensor.numpy()).cast("B")
                done = 0
                while done < len(view):
                    got = file.readinto(view[done:])
                    if not got:
                        raise EOFError(f"{token}: short file at {key}")
                    done += got
                out[key] = tensor
        return nest(out)


class RawFilePerTensor(FolderPeer):
    """Reference: one file per tensor, each written and fsync'd in turn, then the folder."""

    label = "raw: one file per tensor, each fsync'd / readinto"
    short = "raw, file per tensor"
    plain = False

    def __init__(self, root: Path, layout: list[tuple[str, tuple[int, ...]]]) -> None:
        super().__init__(root)
        self.layout = layout

    def save(self, state: dict[str, Any]) -> Path:
        folder = self.fresh()
        folder.mkdir()
        flat = tensors(state)
        for key in self.keys(flat):
            with open(folder / key.replace("/", "__"), "wb") as file:
                file.write(memoryview(flat[key].numpy()).cast("B"))
                file.flush()
                os.fsync(file.fileno())
        fsync_path(folder)
        return folder

    def load(self, token: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, shape in self.layout:
            tensor = torch.empty(shape, dtype=torch.float32)
            with open(token / key.replace("/", "__"), "rb", buffering=0) as file:
                file.readinto(memoryview(tensor.numpy()).cast("B"))
            out[key] = tensor
        return nest(out)


class TorchSave(FolderPeer):
    """``torch.save(state, file)``, flush, fsync the file and its folder /
    ``torch.load(path, weights_only=True)``."""

    label = "torch.save + fsync / torch.load"
    short = "torch"

    def save(self, state: dict[str, Any]) -> Path:
        folder = self.fresh()
        folder.mkdir()
        with open(folder / "state.pt", "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        fsync_path(folder)
        return folder

    def load(self, token: Path) -> dict[str, Any]:
        loaded: dict[str, Any] = torch.load(token / "state.pt", weights_only=True)
        return loaded


class DCP(FolderPeer):
    """``dcp.save(state, storage_writer=FileSystemWriter(path, thread_count=n,
    sync_files=True), no_dist=True)`` / ``dcp.load`` into freshly allocated tensors
    (allocated inside the timed region: the load's result is the state)."""

    def __init__(self, root: Path, threads: int) -> None:
        super().__init__(root)
        self.threads = threads
        self.label = f"DCP FileSystemWriter(thread_count={threads}, sync_files=True) / load"
        self.short = f"DCP t{threads}"
        self.template: dict[str, Any] | None = None

    def save(self, state: dict[str, Any]) -> Path:
        folder = self.fresh()
        writer = dcp.FileSystemWriter(folder, thread_count=self.threads, sync_files=True)
        dcp.save(state, storage_writer=writer, no_dist=True)
        return folder

    def load(self, token: Path) -> dict[str, Any]:
        assert self.template is not None
        target = empty_like_state(self.template)
        dcp.load(target, storage_reader=dcp.FileSystemReader(token), no_dist=True)
        return target


class S3DCP(Peer):
    """DCP through fsspec: ``FsspecWriter("s3://...", thread_count=n, sync_files=False)``
    (an s3fs file has no fileno, so sync_files=True would fall back to ``os.sync()`` of
    the local disks) / ``FsspecReader``."""

    def __init__(self, fs: Any, options: dict[str, Any], threads: int) -> None:
        self.fs = fs
        self.options = options
        self.threads = threads
        self.label = f"DCP FsspecWriter(s3://, thread_count={threads}) / FsspecReader"
        self.short = f"DCP t{threads}"
        self.template: dict[str, Any] | None = None
        self._numbers = itertools.count()

    def save(self, state: dict[str, Any]) -> str:
        from torch.distributed.checkpoint._fsspec_filesystem import FsspecWriter

        path = f"s3://{BUCKET}/dcp-t{self.threads}/save-{next(self._numbers):03d}"
        writer = FsspecWriter(path, thread_count=self.threads, sync_files=False,
                              **self.options)
        dcp.save(state, storage_writer=writer, no_dist=True)
        return path

    def load(self, token: str) -> dict[str, Any]:
        from torch.distributed.checkpoint._fsspec_filesystem import FsspecReader

        assert self.template is not None
        target = empty_like_state(self.template)
        dcp.load(target, storage_reader=FsspecReader(token, **self.options), no_dist=True)
        return target

    def files(self, token: str) -> list[Path]:
        return []

    def discard(self, token: str) -> None:
        self.fs.rm(token.removeprefix("s3://"), recursive=True)


# ---------------------------------------------------------------------------- measuring
@dataclass
class Samples:
    """Wall and CPU seconds (this process, all threads) of one peer doing one operation."""

    peer: Peer
    op: str
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    resident_after_drop: list[float] = field(default_factory=list)

    def median(self) -> float:
        return statistics.median(self.seconds)

    def spread(self) -> float:
        return (max(self.seconds) - min(self.seconds)) / self.median()


def timed(fn: Callable[[], Any], samples: Samples | None) -> Any:
    """Run ``fn`` after a collection; record wall and CPU seconds unless warm-up."""
    gc.collect()
    cpu = time.process_time()
    started = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - started
    if samples is not None:
        samples.seconds.append(wall)
        samples.cpu.append(time.process_time() - cpu)
    return result


def rotation(items: list[Any], rep: int) -> list[Any]:
    """Every repetition starts with a different peer and runs in the other direction,
    so none always goes first or right after the same neighbour."""
    shift = rep % len(items)
    order = items[shift:] + items[:shift]
    return order[::-1] if rep % 2 else order


class LocalBench:
    """Every local peer's saves and cold loads, interleaved."""

    def __init__(self, work: Path, state: dict[str, Any],
                 layout: list[tuple[str, tuple[int, ...]]], reference: bool) -> None:
        self.work = work
        self.state = state
        self.size = state_bytes(state)
        self.plane = dataplane.connect(plane_config(work / "dataplane"))
        self.dataplane = DataplanePeer(self.plane, work / "dataplane" / "catalog.db")
        self.raw = RawOneFile(work / "raw", layout)
        self.torch = TorchSave(work / "torch")
        self.dcp = [DCP(work / f"dcp-t{n}", n) for n in DCP_THREADS]
        for peer in self.dcp:
            peer.template = state
        self.references: list[Peer] = [RawFilePerTensor(work / "raw-per-tensor", layout)
                                       ] if reference else []
        self.peers: list[Peer] = [self.dataplane, self.raw, self.torch, *self.dcp,
                                  *self.references]
        self.saves = {p.short: Samples(p, "save") for p in self.peers}
        self.loads = {p.short: Samples(p, "load") for p in self.peers}
        self.kept: dict[str, Any] = {}  # the checkpoint each peer loads
        self.files: dict[str, int] = {}
        self.residency = Residency()
        self.async_block = Samples(self.dataplane, "save_async blocking")
        self.async_total: list[float] = []
        self.clone = Samples(InMemoryCopy(), "clone")
        self.split: dict[str, float] = {}

    def close(self) -> None:
        self.plane.close()

    def save_once(self, peer: Peer, samples: Samples | None, keep: bool = False) -> None:
        os.sync()  # nobody pays for another's dirty pages
        token = timed(lambda: peer.save(self.state), samples)
        if keep:
            self.kept[peer.short] = token
            self.files[peer.short] = len(peer.files(token))
        else:
            peer.discard(token)

    def load_once(self, peer: Peer, samples: Samples | None, check: bool = False) -> None:
        paths = peer.files(self.kept[peer.short])
        drop_cache(paths)
        resident = self.residency.fraction(paths)
        if samples is not None and resident is not None:
            samples.resident_after_drop.append(resident)
        loaded = timed(lambda: peer.load(self.kept[peer.short]), samples)
        if check:
            check_equal(peer.label, loaded, self.state, peer.plain)
        del loaded

    def async_once(self, timed_samples: bool) -> None:
        os.sync()
        gc.collect()
        step = next(self.dataplane._steps)
        started = time.perf_counter()
        handle = timed(lambda: self.plane.checkpoints.save_async(RUN, step, self.state),
                       self.async_block if timed_samples else None)
        handle.result()
        if timed_samples:
            self.async_total.append(time.perf_counter() - started)
        self.dataplane.discard(step)

    def clone_once(self, timed_samples: bool) -> None:
        copy = timed(lambda: clone_state(self.state), self.clone if timed_samples else None)
        del copy

    def warm_up(self, split: bool) -> None:
        for peer in self.peers:
            self.save_once(peer, None, keep=True)
        for peer in self.peers:
            self.load_once(peer, None, check=True)
        self.async_once(False)
        self.clone_once(False)
        if split:  # one save of each half of the state, to see where dataplane's time goes
            flat = flatten(self.state)
            for part, keep in (("large tensors", lambda k: k in LARGE_TENSORS),
                               ("small tensors", lambda k: k.startswith("model/blocks/"))):
                sub = nest({k: v for k, v in flat.items() if keep(k)})
                size = state_bytes(sub)
                for peer in (self.dataplane, self.raw):
                    os.sync()
                    started = time.perf_counter()
                    token = peer.save(sub)
                    self.split[f"{peer.short}|{part}|{size}"] = time.perf_counter() - started
                    peer.discard(token)

    def run(self, repeat: int, progress: Callable[[str], None]) -> None:
        for rep in range(repeat):
            for peer in rotation(self.peers, rep):
                self.save_once(peer, self.saves[peer.short])
            for peer in rotation(self.peers, rep):
                self.load_once(peer, self.loads[peer.short])
            for first in (("async", "clone") if rep % 2 == 0 else ("clone", "async")):
                if first == "async":
                    self.async_once(True)
                else:
                    self.clone_once(True)
            progress(f"repetition {rep + 1}/{repeat}")


def plane_config(work: Path, backend: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "catalog": {"url": f"sqlite:///{work / 'catalog.db'}"},
        "defaults": {"backend": "main"},
        "backends": {"main": backend or {"url": f"file://{work / 'blobs'}"}},
        "cache": {"dir": str(work / "cache")},
    }


# ---------------------------------------------------------------------------- S3
@contextlib.contextmanager
def s3_bench(work: Path) -> Iterator[tuple[DataplanePeer, list[S3DCP]]]:
    import s3fs

    with moto_server() as server:
        options = {**S3_CREDENTIALS, "endpoint_url": server.endpoint}
        fs = s3fs.S3FileSystem(skip_instance_cache=True, **options)
        fs.mkdir(BUCKET)
        plane = dataplane.connect(plane_config(
            work / "s3-dataplane", {"url": f"s3://{BUCKET}/dataplane", **options}))
        try:
            yield (S3DataplanePeer(plane, fs, f"{BUCKET}/dataplane"),
                   [S3DCP(fs, options, n) for n in DCP_THREADS])
        finally:
            plane.close()


def run_s3(work: Path, state: dict[str, Any], repeat: int) -> dict[str, Samples]:
    samples: dict[str, Samples] = {}
    with s3_bench(work) as (dp, dcps):
        for peer in dcps:
            peer.template = state
        peers: list[Peer] = [dp, *dcps]
        for peer in peers:
            samples[f"save|{peer.short}"] = Samples(peer, "save")
            samples[f"load|{peer.short}"] = Samples(peer, "load")
        kept = {}
        for peer in peers:  # warm-up, and the checkpoint each one loads
            kept[peer.short] = peer.save(state)
            check_equal(f"s3 {peer.label}", peer.load(kept[peer.short]), state)
        for rep in range(repeat):
            for peer in rotation(peers, rep):
                token = timed(lambda p=peer: p.save(state), samples[f"save|{peer.short}"])
                peer.discard(token)
            for peer in rotation(peers, rep):
                loaded = timed(lambda p=peer: p.load(kept[p.short]),
                               samples[f"load|{peer.short}"])
                del loaded
    return samples


# ---------------------------------------------------------------------------- RSS (children)
def peak_rss() -> int:
    """``ru_maxrss`` in bytes (KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def proc_status(field_name: str) -> int | None:
    """A ``/proc/self/status`` figure in bytes (``VmHWM``, ``VmRSS``), or None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def tiny_state() -> dict[str, Any]:
    return {"w": torch.zeros(64), "b": {"x": torch.ones(3)}, "step": 0}


def rss_child(op: str, peer: str, total_bytes: int, n_small: int, seed: int, work: Path
              ) -> None:
    """Save (or load) the benchmark state with one peer in this fresh process; print one
    JSON line: ru_maxrss and VmHWM before (baseline) and after, the state's bytes."""
    plan = plan_state(total_bytes, n_small, seed)
    plane = dataplane.connect(plane_config(work / "dataplane")) if peer == "dataplane" else None
    folder = work / peer.replace(" ", "-")
    warm = work / f"warm-{peer.replace(' ', '-')}"

    def save(state: dict[str, Any], target: Path, run: str = RUN) -> None:
        if plane is not None:
            plane.checkpoints.save(run, 1, state)
        elif peer == "torch":
            target.mkdir(parents=True, exist_ok=True)
            with open(target / "state.pt", "wb") as file:
                torch.save(state, file)
                file.flush()
                os.fsync(file.fileno())
        else:
            dcp.save(state, storage_writer=dcp.FileSystemWriter(target, sync_files=True),
                     no_dist=True)

    def load(source: Path, template: Callable[[], dict[str, Any]], run: str = RUN
             ) -> dict[str, Any]:
        if plane is not None:
            loaded: dict[str, Any] = plane.checkpoints.load(run, 1)
            return loaded
        if peer == "torch":
            loaded = torch.load(source / "state.pt", weights_only=True)
            return loaded
        target = template()  # DCP loads in place: allocating the state is part of it
        dcp.load(target, storage_reader=dcp.FileSystemReader(source), no_dist=True)
        return target

    if op == "save":
        state = build_state(plan, seed)
        save(tiny_state(), warm, "warm")  # code paths and lazy imports, before the baseline
        gc.collect()
        size = state_bytes(state)
    else:
        load(warm, tiny_state, "warm")
        size = sum(4 * math.prod(s) for _, s in plan)
        gc.collect()
    baseline, baseline_hwm, baseline_now = peak_rss(), proc_status("VmHWM"), proc_status("VmRSS")
    started = time.perf_counter()
    if op == "save":
        save(state, folder)
    else:
        state = load(folder, lambda: empty_state(plan, seed))
    seconds = time.perf_counter() - started
    peak, peak_hwm = peak_rss(), proc_status("VmHWM")
    print(json.dumps({"op": op, "peer": peer, "state_bytes": size, "baseline": baseline,
                      "baseline_hwm": baseline_hwm, "baseline_rss": baseline_now,
                      "peak": peak, "peak_hwm": peak_hwm, "seconds": seconds,
                      "fingerprint": fingerprint(state)}))
    if plane is not None:
        plane.close()


def run_rss(total_bytes: int, n_small: int, seed: int, work: Path, peers: list[str],
            progress: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Each peer saves in one child and loads in another (both fresh processes)."""
    found: dict[str, dict[str, Any]] = {}
    for peer in peers:
        for op in ("save", "load"):
            done = subprocess.run([sys.executable, str(Path(__file__).resolve()), CHILD, op,
                                   peer, str(total_bytes), str(n_small), str(seed), str(work)],
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"the {op} child of {peer} failed:\n{done.stderr[-4000:]}")
            found[f"{op}|{peer}"] = json.loads(done.stdout.strip().splitlines()[-1])
        if found[f"save|{peer}"]["fingerprint"] != found[f"load|{peer}"]["fingerprint"]:
            raise AssertionError(f"{peer}: the load child did not get the state saved")
        progress(f"peak RSS children of {peer} done")
    return found


# ---------------------------------------------------------------------------- reporting
@dataclass
class Row:
    measure: str
    dataplane: str
    peer: str
    ratio: float | None
    target: str
    verdict: str  # "ok", "MISS", "reference", "reported"
    detail: dict[str, Any] = field(default_factory=dict)


def speed_row(measure: str, dp: Samples, peer: Samples, size: int, target: float | None,
              judged: bool = True) -> Row:
    """dataplane MB/s against a peer's: ratio = peer median time / dataplane median time."""
    ratio = peer.median() / dp.median()
    paired = [p / d for d, p in zip(dp.seconds, peer.seconds, strict=True)]
    if target is None:
        verdict = "reported"
    elif not judged:
        verdict = "reference"
    else:
        verdict = "ok" if ratio >= target else "MISS"
    return Row(measure, f"{size / 1e6 / dp.median():.0f} MB/s",
               f"{size / 1e6 / peer.median():.0f} MB/s", ratio,
               "-" if target is None or not judged else f">= {target:g}", verdict, {
                   "peer": peer.peer.label, "dataplane_seconds": dp.seconds,
                   "peer_seconds": peer.seconds, "dataplane_cpu": dp.cpu, "peer_cpu": peer.cpu,
                   "paired_ratios": paired, "peer_spread": peer.spread(),
                   "dataplane_spread": dp.spread(),
                   "resident_after_drop": {"dataplane": dp.resident_after_drop,
                                           "peer": peer.resident_after_drop}})


def best_dcp(samples: dict[str, Samples], faster: Callable[[Samples], float]) -> Samples:
    """The DCP variant (thread_count 1 or 4) with the better median."""
    return min((samples[f"DCP t{n}"] for n in DCP_THREADS), key=faster)


def local_rows(bench: LocalBench) -> list[Row]:
    size = bench.size
    rows = []
    for op, raw_target, saves in (("save", SAVE_VS_RAW, bench.saves),
                                  ("cold load", LOAD_VS_RAW, bench.loads)):
        dp = saves["dataplane"]
        rows.append(speed_row(f"{op} vs raw, one file", dp, saves["raw"], size, raw_target))
        rows.append(speed_row(f"{op} vs torch.{'save' if op == 'save' else 'load'}", dp,
                              saves["torch"], size, VS_TORCH))
        dcp_best = best_dcp(saves, lambda s: s.median())
        rows.append(speed_row(f"{op} vs DCP (best: {dcp_best.peer.short})", dp, dcp_best,
                              size, VS_TORCH))
        for peer in bench.references:
            rows.append(speed_row(f"  {op} vs {peer.short}", dp, saves[peer.short], size,
                                  raw_target, judged=False))
    block, clone = bench.async_block, bench.clone
    ratio = block.median() / clone.median()
    rows.append(Row("save_async blocking time", f"{block.median():.3f} s",
                    f"{clone.median():.3f} s (clone)", ratio, f"<= {ASYNC_LIMIT:g}",
                    "ok" if ratio <= ASYNC_LIMIT else "MISS", {
                        "dataplane_seconds": block.seconds, "peer_seconds": clone.seconds,
                        "dataplane_cpu": block.cpu, "peer_cpu": clone.cpu,
                        "paired_ratios": [b / c for b, c in zip(block.seconds, clone.seconds,
                                                                 strict=True)],
                        "peer_spread": clone.spread(), "dataplane_spread": block.spread(),
                        "save_async_until_result_seconds": bench.async_total}))
    return rows


def extra_rss(found: dict[str, Any], hwm: bool = False) -> int:
    """Peak RSS above the baseline, less the state itself for a load (whose result is the
    state): what the operation held beyond the data it was given or returned."""
    peak, base = (found["peak_hwm"], found["baseline_hwm"]) if hwm else (found["peak"],
                                                                           found["baseline"])
    grown: int = peak - base
    return grown - (found["state_bytes"] if found["op"] == "load" else 0)


def rss_rows(rss: dict[str, dict[str, Any]], peers: list[str]) -> list[Row]:
    rows = []
    for op in ("save", "load"):
        dp = rss[f"{op}|dataplane"]
        size = dp["state_bytes"]
        limit = max(SAVE_RSS_FLOOR, RSS_FRACTION * size) if op == "save" else RSS_FRACTION * size

        extras = {p: extra_rss(rss[f"{op}|{p}"]) for p in peers}
        others = ", ".join(f"{p} {extras[p] / MiB:.0f}" for p in peers if p != "dataplane")
        rows.append(Row(f"{op}: peak RSS above the state", f"{extras['dataplane'] / MiB:.0f} MiB",
                        f"{others} MiB" if others else "-", None,
                        f"<= {limit / MiB:.0f} MiB", "ok" if extras["dataplane"] <= limit
                        else "MISS", {"limit_bytes": limit, "extra_bytes": extras,
                                      "children": {p: rss[f"{op}|{p}"] for p in peers}}))
    return rows


def s3_rows(samples: dict[str, Samples], size: int) -> list[Row]:
    rows = []
    for op in ("save", "load"):
        group = {s.peer.short: s for k, s in samples.items() if k.startswith(op + "|")}
        best = best_dcp(group, lambda s: s.median())
        rows.append(speed_row(f"S3 {op} vs DCP fsspec (best: {best.peer.short})",
                              group["dataplane"], best, size, None))
    return rows


def table(rows: list[Row]) -> str:
    body = [(r.measure, r.dataplane, r.peer, "-" if r.ratio is None else f"{r.ratio:.3f}",
             r.target, f"({r.verdict})" if r.verdict in ("reference", "reported") else r.verdict)
            for r in rows]
    return render(("measure", "dataplane", "peer", "ratio", "target", "verdict"), body,
                  {0, 2})


def diagnostics(rows: list[Row]) -> str:
    body = []
    for r in rows:
        d = r.detail
        if "paired_ratios" not in d:
            continue
        dp_cpu, peer_cpu = statistics.median(d["dataplane_cpu"]), statistics.median(d["peer_cpu"])
        resident = d.get("resident_after_drop", {})
        worst = max([*resident.get("dataplane", []), *resident.get("peer", [])], default=None)
        body.append((r.measure, f"{statistics.median(d['paired_ratios']):.3f}",
                     f"{min(d['paired_ratios']):.2f}..{max(d['paired_ratios']):.2f}",
                     f"{d['dataplane_spread']:.0%} / {d['peer_spread']:.0%}",
                     f"{dp_cpu:.2f} / {peer_cpu:.2f}",
                     "-" if worst is None else f"{worst:.1%}"))
    return render(("measure", "paired ratio median", "paired min..max",
                   "spread dataplane / peer", "CPU s dataplane / peer",
                   "cache left after drop"), body, {0})


def versions() -> dict[str, str]:
    found = {}
    for name in ("dataplane", "torch", "numpy", "fsspec", "s3fs", "moto"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def describe_state(plan: list[tuple[str, tuple[int, ...]]]) -> str:
    large = [(k, s) for k, s in plan if k in LARGE_TENSORS]
    small = [4 * math.prod(s) for k, s in plan if k not in LARGE_TENSORS]
    total = sum(4 * math.prod(s) for _, s in plan)
    text = (f"{total / GiB:.3f} GiB in {len(plan)} float32 tensors: {len(large)} large "
            f"{large[0][1]} ({4 * math.prod(large[0][1]) / MiB:.0f} MiB each)")
    if small:
        text += (f", {len(small)} small ({sum(small) / MiB:.0f} MiB in all, "
                 f"{min(small) / 1024:.1f}..{max(small) / 1024:.0f} KiB, median "
                 f"{statistics.median(small) / 1024:.0f} KiB)")
    return text + "; plus 3 plain values"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--state-gib", type=float, default=2.0,
                        help="size of the local state in GiB (default 2; 0.5 for a quick run)")
    parser.add_argument("--small-tensors", type=int, default=3000,
                        help="how many small tensors the state holds (default 3000)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="measured repetitions per peer and op, after one warm-up (3)")
    parser.add_argument("--s3-gib", type=float, default=0.25,
                        help="size of the S3 state in GiB (default 0.25; 0 skips S3)")
    parser.add_argument("--s3-repeat", type=int, default=2,
                        help="measured S3 repetitions per peer and op, after one warm-up (2)")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak RSS children")
    parser.add_argument("--reference", action="store_true",
                        help="add reference figures (not judged): a raw peer writing one file "
                             "per tensor, torch's and DCP's peak RSS, and one dataplane and "
                             "raw save of each half (large/small tensors) of the state")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", metavar="DIR",
                        help="where every checkpoint is written (default: the temp folder; "
                             "put it on the disk you care about)")
    parser.add_argument("--json", metavar="PATH", help="also write every figure as JSON here")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.state_gib <= 0 or args.repeat < 1 or args.s3_gib < 0 or args.s3_repeat < 1:
        parser.error("--state-gib and --repeat must be positive, --s3-gib >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    total = int(args.state_gib * GiB)
    plan = plan_state(total, args.small_tensors, args.seed)
    work = Path(tempfile.mkdtemp(prefix="dataplane-ckpt-bench-", dir=args.work_dir))
    started = time.monotonic()

    def progress(text: str) -> None:
        print(f"  [{time.monotonic() - started:5.0f} s] {text}", flush=True)

    print(f"checkpoint benchmark: --state-gib {args.state_gib:g}, {args.repeat} repetitions "
          f"(+1 warm-up), peers interleaved; --s3-gib {args.s3_gib:g}, {args.s3_repeat} "
          "repetitions (+1 warm-up); MB/s = 10**6 bytes/s of tensor data, medians; ratio = "
          "dataplane/peer speed (save_async: time/time)")
    print(f"state: {describe_state(plan)}")
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} "
          f"CPUs, torch threads {torch.get_num_threads()}; "
          + ", ".join(f"{k} {v}" for k, v in versions().items()))
    print(f"dataplane from {Path(dataplane.__file__).parent}; work dir {work}")
    print("cold loads: fsync + posix_fadvise(POSIX_FADV_DONTNEED) on every file of the "
          f"checkpoint being loaded (/proc/sys/vm/drop_caches: {drop_caches_status()}; "
          "not used: it would empty the whole machine's cache)")
    rows: list[Row] = []
    results: dict[str, Any] = {}
    try:
        rss: dict[str, dict[str, Any]] = {}
        rss_peers = ["dataplane"] + (["torch", "DCP"] if args.reference else [])
        if not args.no_rss:  # first, while this process is small (ru_maxrss is inherited)
            rss = run_rss(total, args.small_tensors, args.seed, work / "rss", rss_peers,
                          progress)
            shutil.rmtree(work / "rss", ignore_errors=True)
        state = build_state(plan, args.seed)
        progress("state built")
        bench = LocalBench(work / "local", state, plan, args.reference)
        try:
            bench.warm_up(split=args.reference)
            progress("warm-up done (every load checked equal to the state)")
            bench.run(args.repeat, progress)
            rows += local_rows(bench)
            files, split = bench.files, bench.split
        finally:
            bench.close()
            shutil.rmtree(work / "local", ignore_errors=True)
        if rss:
            rows += rss_rows(rss, rss_peers)
        s3_size = 0
        if args.s3_gib > 0:
            s3_plan = plan_state(int(args.s3_gib * GiB), args.small_tensors, args.seed + 1)
            s3_state = build_state(s3_plan, args.seed + 1)
            s3_size = state_bytes(s3_state)
            progress(f"S3 state: {describe_state(s3_plan)}")
            rows += s3_rows(run_s3(work / "s3", s3_state, args.s3_repeat), s3_size)
            del s3_state
            progress("S3 done")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(table(rows))
    print()
    print("diagnostics: paired ratio = dataplane/peer speed within one repetition; spread =")
    print("(max - min) / median of the times; CPU = this process's CPU seconds per op, all")
    print("threads (the S3 server is another process); cache left = the largest fraction of a")
    print("checkpoint's pages still cached right after the drop (mincore), 0% = fully cold.")
    print(diagnostics(rows))
    print()
    print("files per checkpoint: " + ", ".join(f"{k} {v}" for k, v in files.items()))
    if split:
        parts = []
        for key, seconds in split.items():
            peer, part, size = key.split("|")
            parts.append(f"{peer} {part} ({int(size) / MiB:.0f} MiB) {seconds:.2f} s "
                         f"= {int(size) / 1e6 / seconds:.0f} MB/s")
        print("one save of each half of the state (warm-up, 1 sample): " + "; ".join(parts))
    async_row = next(r for r in rows if r.measure.startswith("save_async"))
    detail = async_row.detail
    print(f"save_async blocking min {min(detail['dataplane_seconds']):.3f} s, clone min "
          f"{min(detail['peer_seconds']):.3f} s; save_async until result(): median "
          f"{statistics.median(detail['save_async_until_result_seconds']):.2f} s")
    if rss:
        print("peak RSS children (MiB; extra = peak - baseline [- state for loads]; "
              "ru_maxrss, VmHWM in brackets):")
        for key, found in rss.items():
            extra, extra_hwm = extra_rss(found), extra_rss(found, hwm=True)
            print(f"  {key:15s} baseline {found['baseline'] / MiB:6.0f} "
                  f"(now {found['baseline_rss'] / MiB:.0f}) peak {found['peak'] / MiB:6.0f} "
                  f"extra {extra / MiB:5.0f} [{extra_hwm / MiB:.0f}] "
                  f"in {found['seconds']:.1f} s")
    missed = [r for r in rows if r.verdict == "MISS"]
    print()
    print("missed: " + ", ".join(f"{r.measure} ({r.ratio:.3f})" if r.ratio is not None
                                 else r.measure for r in missed) if missed
          else "every target met")
    print(f"total {time.monotonic() - started:.0f} s")
    if args.json:
        results.update({
            "state_gib": args.state_gib, "state_bytes": sum(4 * math.prod(s) for _, s in plan),
            "small_tensors": args.small_tensors, "repeat": args.repeat,
            "s3_gib": args.s3_gib, "s3_state_bytes": s3_size, "s3_repeat": args.s3_repeat,
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "versions": versions(), "files_per_checkpoint": files, "split": split,
            "rows": [{"measure": r.measure, "dataplane": r.dataplane, "peer": r.peer,
                      "ratio": r.ratio, "target": r.target, "verdict": r.verdict, **r.detail}
                     for r in rows],
        })
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        op, peer, total_bytes, n_small, seed, work = sys.argv[2:8]
        rss_child(op, peer, int(total_bytes), int(n_small), int(seed), Path(work))
        sys.exit(0)
    sys.exit(main())
