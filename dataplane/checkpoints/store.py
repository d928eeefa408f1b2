"""``plane.checkpoints``: save, load, read regions of, list and prune training checkpoints.

A checkpoint is ``(run, step)``. Save, in this order:

1. flatten the state (refusing unsupported leaves and colliding keys) and refuse a step
   that already exists;
2. write every chunk and array's ``zarr.json`` under a fresh prefix
   ``<tenant>/checkpoints/<run>/step-<step>-<attempt>/`` (parallel, memory-bounded),
   packed into one ``checkpoint.zip`` (the default for a single process) or as one object
   each (multi-rank saves, ``IOSettings(pack=False)``) (:mod:`.placement`);
3. write the groups' ``zarr.json``, make all of it durable, then write the manifest, last;
4. commit the step in the catalog (kind ``checkpoints``, name ``run``) — the moment it
   becomes visible to ``steps``, ``latest`` and ``load``;
5. apply retention (``keep_last``, ``keep_every``).

A crash anywhere before 4 leaves a prefix no catalog entry points at: never loaded, and
removed by :meth:`CheckpointStore.gc`. Every load verifies each chunk's crc32.

Under torch.distributed, ``save`` is collective and ``load`` into a template of
:class:`~.shard.Shard` leaves reads each rank's region: see :mod:`.distributed`.
"""

from __future__ import annotations

import gc
import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..catalog import VersionRecord
from ..config import mask_url
from ..errors import (
    AlreadyExistsError,
    IntegrityError,
    InvalidSourceError,
    NotFoundError,
    NotSupportedError,
)
from ..identity import current_actor
from ..names import Ref, check_name
from .archive import ARCHIVE, ROOT
from .dtypes import StoredArray, from_stored, to_stored
from .io import (
    IOSettings,
    commit_save,
    read_arrays,
    read_region,
    workers_for,
    write_arrays,
)
from .layout import FORMAT_VERSION, MANIFEST, ArrayLayout, chunk_suffix
from .placement import ArchiveSink, ChunkSource, FolderSink, Sink
from .saveplan import SavePlanner, group_entries
from .shard import Shard
from .tree import array_keys, flatten, unflatten

if TYPE_CHECKING:
    from ..facade import DataPlane

__all__ = ["Checkpoint", "CheckpointStore", "Retention", "SaveHandle"]


@dataclass(frozen=True)
class Retention:
    """Which committed steps survive pruning: the newest ``keep_last`` and every step
    divisible by ``keep_every``. ``None`` for both keeps everything."""

    keep_last: int | None = None
    keep_every: int | None = None

    def doomed(self, steps: Sequence[int]) -> list[int]:
        if self.keep_last is None and self.keep_every is None:
            return []
        newest = set(sorted(steps)[-self.keep_last:]) if self.keep_last else set()
        return [s for s in steps if s not in newest
                and not (self.keep_every and s % self.keep_every == 0)]


@dataclass(frozen=True)
class Checkpoint:
    """A committed checkpoint; ``location`` opens it with any zarr v3 reader."""

    run: str
    step: int
    url: str
    storage_options: Mapping[str, Any] = field(repr=False)
    keys: tuple[str, ...]
    metadata: Mapping[str, Any]
    created_at: Any
    record: VersionRecord = field(repr=False)

    @property
    def location(self) -> tuple[str, dict[str, Any]]:
        """``(url, storage_options)`` for ``zarr.open_group(url, storage_options=...,
        mode="r")``. A packed save is ``zip://checkpoint::file:///.../checkpoint.zip``
        (or ``zarr.storage.ZipStore(path)`` with ``path="checkpoint"``), on S3
        ``zip://checkpoint::s3://...`` with the store's options under ``"s3"``; a folder
        on local disk is ``file:///...`` (``zarr.open_group(path)``)."""
        return self.url, dict(self.storage_options)

    def __repr__(self) -> str:
        return f"Checkpoint(run={self.run!r}, step={self.step}, url={mask_url(self.url)!r})"


class SaveHandle:
    """The result of :meth:`CheckpointStore.save_async`: ``result()`` waits for the commit."""

    def __init__(self, future: Future[Checkpoint]):
        self._future = future

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout: float | None = None) -> Checkpoint:
        return self._future.result(timeout)


class CheckpointStore:
    """Checkpoints of the plane's tenant; one instance is safe to share between threads."""

    def __init__(self, plane: DataPlane, settings: IOSettings | None = None,
                 retention: Retention | None = None):
        self.plane = plane
        self.settings = settings or IOSettings()
        self.retention = retention or Retention()
        self._async = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dp-ckpt-async")
        self._in_flight: dict[str, Future[Checkpoint]] = {}
        self._run_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._planner = SavePlanner()

    # ---------------------------------------------------------------- saving
    def save(self, run: str, step: int, state: Any, *,
             metadata: Mapping[str, Any] | None = None, group: Any = None,
             collective: bool | None = None) -> Checkpoint:
        """Save ``state`` as ``(run, step)``; visible only once everything is durable.

        Across ranks (:mod:`.distributed`): when torch.distributed is initialized with more
        than one rank, or ``group`` (a process group) is given, or ``collective=True``, this
        is a collective call — every rank of the group calls it with its part of the state
        (:class:`Shard` leaves for split tensors), each writes its own chunks, rank 0 commits
        once all have written, and every rank returns the same checkpoint (or raises).
        ``collective=False`` saves from this process alone (e.g. ``if rank == 0: save(...)``).
        """
        from . import distributed

        _check_metadata(metadata)
        ranks = distributed.ranks_for(group, collective)
        if ranks is not None:
            return distributed.save(self, ranks, run, step, state, metadata)
        with _gc_paused():
            arrays, spec = flatten(state)
        if distributed.has_shards(arrays):  # a single process holding every shard
            return distributed.save(self, distributed.ALONE, run, step, state, metadata)
        with _gc_paused():
            stored = {key: to_stored(key, value) for key, value in arrays.items()}
        return self._save(run, step, stored, spec, metadata)

    def save_async(self, run: str, step: int, state: Any, *,
                   metadata: Mapping[str, Any] | None = None) -> SaveHandle:
        """Snapshot ``state`` (one host copy of every array), then save it in the background.

        When this returns, the caller may mutate or free ``state``: what is written is the
        state as it was at the call. At most one save per run is in flight: a second call
        for the same run first waits for the previous one to finish (its errors surface
        from that save's own handle). It is never collective: under torch.distributed, call
        it from one rank; a state with :class:`Shard` leaves is refused.
        """
        run = check_name(run)
        _check_step(step)
        _check_metadata(metadata)
        with self._run_lock(run):  # one caller per run from here to registration
            previous = self._in_flight.get(run)
            if previous is not None:
                previous.exception()  # wait; the error belongs to the earlier handle
            with _gc_paused():
                arrays, spec = flatten(state)
            if any(isinstance(value, Shard) for value in arrays.values()):
                raise NotSupportedError("save_async does not take Shard leaves: save a "
                                        "state split across ranks with save(), on every rank")
            with _gc_paused():
                snapshot = {key: to_stored(key, value, copy=True)
                            for key, value in arrays.items()}
            future = self._async.submit(self._save, run, step, snapshot, spec, metadata)
            self._in_flight[run] = future
        return SaveHandle(future)

    def _run_lock(self, run: str) -> threading.Lock:
        with self._lock:
            return self._run_locks.setdefault(run, threading.Lock())

    def _save(self, run: str, step: int, stored: dict[str, StoredArray], spec: dict[str, Any],
              metadata: Mapping[str, Any] | None) -> Checkpoint:
        run = check_name(run)
        _check_step(step)
        self._refuse_existing(run, step)
        backend = self.plane.route("checkpoints", run)
        store = self.plane.store(backend)
        prefix = self._new_prefix(run, step)
        with _gc_paused():
            plan = self._planner.plan(stored, _attributes(run, step, spec, metadata),
                                      self.settings.chunk_bytes, self.settings.pack)
        layouts = plan.layouts
        sink: Sink = (ArchiveSink(store, prefix, plan.archive) if plan.archive is not None
                      else FolderSink(store, prefix))
        try:
            checksums = write_arrays(sink, {k: s.data for k, s in stored.items()}, layouts,
                                     self.settings, workers_for(self.settings, store))
            offsets = _archive_offsets(sink, layouts) if isinstance(sink, ArchiveSink) else None
            return self._commit(run, step, backend, prefix, layouts, checksums, spec, metadata,
                                sink=sink, groups=plan.groups, offsets=offsets)
        except BaseException:
            sink.abort()
            raise

    def _new_prefix(self, run: str, step: int) -> str:
        return f"{self._run_prefix(run)}/step-{step:010d}-{uuid.uuid4().hex[:8]}"

    def _commit(self, run: str, step: int, backend: str, prefix: str,
                layouts: dict[str, ArrayLayout], checksums: dict[str, dict[str, int]],
                spec: dict[str, Any], metadata: Mapping[str, Any] | None,
                sharding: dict[str, Any] | None = None, *, sink: Sink | None = None,
                groups: dict[str, bytes] | None = None,
                offsets: dict[str, dict[str, int]] | None = None) -> Checkpoint:
        """Steps 3-5 once every chunk is in ``sink`` (default: a new folder sink): the
        groups' ``zarr.json``, the barrier and the manifest (with ``sharding``, where the
        arrays were split across ranks), the catalog commit, retention."""
        store = self.plane.store(backend)
        extra: dict[str, Any] = {} if sharding is None else {"sharding": sharding}
        if offsets is not None:
            extra["archive"] = ARCHIVE
        manifest = _manifest(run, step, layouts, checksums, offsets)
        manifest.update(extra)
        if groups is None:
            groups = group_entries(_attributes(run, step, spec, metadata, sharding),
                                   layouts.values())
        commit_save(store, prefix, sink or FolderSink(store, prefix), groups, manifest)
        self._refuse_existing(run, step)
        record = self.plane.catalog.commit_version(
            self.plane.tenant, "checkpoints", run, digest=_digest(manifest),
            manifest={"step": step, "prefix": prefix, "spec": spec,
                      "arrays": manifest["arrays"], **extra},
            metadata={**dict(metadata or {}), "step": step}, created_by=current_actor(),
            locations=[(backend, prefix)],
        )
        self._apply_retention(run)
        return self._checkpoint(record)

    def _refuse_existing(self, run: str, step: int) -> None:
        if step in self.steps(run):
            raise AlreadyExistsError(f"checkpoint {run!r} step {step} already exists")

    # --------------------------------------------------------------- loading
    def load(self, run: str, step: int | str = "latest", *, keys: Sequence[str] | None = None,
             template: Any = None) -> Any:
        """The saved state (or only ``keys``, or loaded into ``template``'s arrays)."""
        checkpoint = self.checkpoint(run, step)
        raw = checkpoint.record.manifest
        layouts = _layouts(raw)
        spec = raw["spec"]
        if template is not None and _has_shard_leaf(template):
            from .distributed import load_into  # each Shard reads only its region

            def no_arrays(key: str) -> Any:
                raise KeyError(key)

            return _overlay_plain(load_into(self, checkpoint, template),
                                  unflatten(spec, no_arrays))
        wanted = self._wanted(checkpoint, layouts, keys)
        into = _template_buffers(template, layouts) if template is not None else {}
        if template is not None:  # read only what the template holds
            held = set(flatten(template)[0])
            wanted = [k for k in wanted if k in held]
        data = read_arrays(self._source_of(checkpoint), [layouts[k] for k in wanted],
                           _checksums(raw),
                           self.settings, f"checkpoint {run}@{checkpoint.step}", into)
        if template is not None:
            return _fill_template(template, data, layouts, spec)

        def load_one(key: str) -> Any:
            if key not in data:
                raise KeyError(key)
            return from_stored(data[key], layouts[key].dtype, layouts[key].framework)

        return unflatten(spec, load_one)

    def read(self, run: str, step: int | str, key: str,
             region: Sequence[slice | int] | slice | None = None) -> Any:
        """A slice of one array, reading only the chunks that overlap it."""
        checkpoint = self.checkpoint(run, step)
        layouts = _layouts(checkpoint.record.manifest)
        if key not in layouts:
            raise NotFoundError(f"checkpoint {run}@{checkpoint.step} has no array {key!r}")
        layout = layouts[key]
        slices, squeeze = _normalize(region, layout.shape)
        part = read_region(self._source_of(checkpoint), layout,
                           _checksums(checkpoint.record.manifest)[key],
                           slices, self.settings, f"checkpoint {run}@{checkpoint.step}")
        # reshape, not indexing: indexing a 0-d result gives a numpy scalar, and
        # np.ascontiguousarray turns that into shape (1,)
        part = part.reshape(tuple(n for n, s in zip(part.shape, squeeze, strict=True) if not s))
        return from_stored(part, layout.dtype, layout.framework)

    def verify(self, run: str, step: int | str = "latest") -> Checkpoint:
        """Re-read every chunk of a checkpoint and check every checksum."""
        checkpoint = self.checkpoint(run, step)
        raw = checkpoint.record.manifest
        source = self._source_of(checkpoint)
        stored = json.loads(source.store.get(f"{source.prefix}/{MANIFEST}"))
        if _digest(stored) != checkpoint.record.digest:
            raise IntegrityError(f"checkpoint {run}@{checkpoint.step} manifest",
                                 checkpoint.record.digest, _digest(stored))
        read_arrays(source, list(_layouts(raw).values()), _checksums(raw),
                    self.settings, f"checkpoint {run}@{checkpoint.step}")
        return checkpoint

    # ------------------------------------------------------------- listing
    def steps(self, run: str) -> list[int]:
        """Committed steps of ``run``, ascending (an unknown run has none)."""
        return sorted(self._numbers(run))

    def latest(self, run: str) -> Checkpoint | None:
        """The newest committed checkpoint of ``run``, or ``None``."""
        steps = self.steps(run)
        return self.checkpoint(run, steps[-1]) if steps else None

    def checkpoint(self, run: str, step: int | str = "latest") -> Checkpoint:
        """The committed checkpoint ``(run, step)``; ``NotFoundError`` names what is missing."""
        numbers = self._numbers(run)
        if step == "latest":
            if not numbers:
                raise NotFoundError(f"run {run!r} has no checkpoints")
            step = max(numbers)
        if not isinstance(step, int) or step not in numbers:
            raise NotFoundError(f"run {run!r} has no checkpoint at step {step} "
                                f"(steps: {sorted(numbers) or 'none'})")
        record = self.plane.catalog.resolve(self.plane.tenant, "checkpoints", check_name(run),
                                            Ref("version", numbers[step]))
        return self._checkpoint(record)

    def delete(self, run: str, step: int) -> None:
        """Remove a checkpoint: hidden at once (catalog tombstone), then its objects."""
        checkpoint = self.checkpoint(run, step)
        self.plane.catalog.tombstone(self.plane.tenant, "checkpoints", run,
                                     checkpoint.record.number, actor=current_actor())
        source = self._source_of(checkpoint)
        store, prefix = source.store, source.prefix
        for info in list(store.list(prefix + "/")):
            store.delete(info.key)

    def gc(self, run: str, *, grace_period_s: float = 3600.0) -> list[str]:
        """Delete objects of torn (never committed) saves of ``run`` older than the grace;
        returns the prefixes removed."""
        live = {r.manifest["prefix"] for r in self._records(run)}
        removed: set[str] = set()
        for backend in self.plane.config.backends:
            store = self.plane.store(backend)
            root = self._run_prefix(run) + "/"
            for info in list(store.list(root)):
                folder, inside, _ = info.key[len(root):].partition("/")
                if not inside or not _STEP_FOLDER.fullmatch(folder):
                    continue  # not a save's folder: a nested run's (``run/sub``) objects
                base = root + folder
                age = time.time() - info.modified.timestamp() if info.modified else 0.0
                if base not in live and age >= grace_period_s:
                    store.delete(info.key)
                    removed.add(base)
        return sorted(removed)

    def close(self) -> None:
        self._async.shutdown(wait=True)

    # ------------------------------------------------------------- helpers
    def _numbers(self, run: str) -> dict[int, int]:
        """Step -> catalog version number of every committed step, read without decoding
        any manifest (each names every chunk: a long run keeps many)."""
        try:
            records = self.plane.catalog.versions(self.plane.tenant, "checkpoints",
                                                  check_name(run), manifests=False)
        except NotFoundError:
            return {}
        return {int(r.metadata["step"]): r.number for r in records}

    def _records(self, run: str) -> list[VersionRecord]:
        try:
            return self.plane.catalog.versions(self.plane.tenant, "checkpoints", check_name(run))
        except NotFoundError:
            return []

    def _run_prefix(self, run: str) -> str:
        return f"{self.plane.tenant}/checkpoints/{run}"

    def _apply_retention(self, run: str) -> None:
        if self.retention == Retention():
            return  # keeps everything: no need to list the steps
        for step in self.retention.doomed(self.steps(run)):
            self.delete(run, step)

    def _source_of(self, checkpoint: Checkpoint) -> ChunkSource:
        """Where the checkpoint's chunks are read from: its active location, as a folder
        of objects or (a packed save) its archive."""
        active = [loc for loc in checkpoint.record.locations if loc.state == "active"]
        if not active:
            raise NotFoundError(f"checkpoint {checkpoint.run}@{checkpoint.step} has no "
                                "active location")
        raw = checkpoint.record.manifest
        offsets = ({key: value["offsets"] for key, value in raw["arrays"].items()}
                   if raw.get("archive") else None)
        return ChunkSource(self.plane.store(active[0].backend), raw["prefix"], offsets)

    def _checkpoint(self, record: VersionRecord) -> Checkpoint:
        prefix = record.manifest["prefix"]
        backend = next((loc.backend for loc in record.locations if loc.state == "active"),
                       record.locations[0].backend if record.locations else "")
        spec = self.plane.config.backends[backend]
        url, options = f"{spec.url.rstrip('/')}/{prefix}", dict(spec.options)
        if record.manifest.get("archive"):  # fsspec's chained URL: zip over the store
            url = f"zip://{ROOT}::{url}/{record.manifest['archive']}"
            scheme = spec.url.partition("://")[0]
            options = {scheme: options} if options and scheme != "file" else {}
        return Checkpoint(record.name, record.manifest["step"], url, options,
                          tuple(array_keys(record.manifest["spec"])), record.metadata,
                          record.created_at, record)

    def _wanted(self, checkpoint: Checkpoint, layouts: dict[str, ArrayLayout],
                keys: Sequence[str] | None) -> list[str]:
        if keys is None:
            return list(layouts)
        wanted = [k for k in layouts if any(k == p or k.startswith(p + "/") for p in keys)]
        missing = [p for p in keys if not any(k == p or k.startswith(p + "/") for k in layouts)]
        if missing:
            raise NotFoundError(f"checkpoint {checkpoint.run}@{checkpoint.step} has no "
                                f"key(s) {', '.join(map(repr, missing))}")
        return wanted


# ------------------------------------------------------------------- module helpers
#: The folder of one save attempt under the run's prefix (see ``_new_prefix``).
_STEP_FOLDER = re.compile(r"step-\d{10,}-[0-9a-f]{8}")


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the few milliseconds of planning a save.

    Planning allocates tens of thousands of small dicts, tuples and strings (layouts,
    zarr metadata, archive entries), none in a reference cycle; the collections they set
    off walk every object of the process (millions, with torch loaded) and took up to a
    quarter of a second per save of 3,000 tensors. Reference counting still frees
    everything at once; collection resumes afterwards if it was on.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _has_shard_leaf(template: Any) -> bool:
    arrays, _ = flatten(template)
    return any(isinstance(value, Shard) for value in arrays.values())


def _check_metadata(metadata: Mapping[str, Any] | None) -> None:
    """Refuse metadata that cannot be stored (JSON, no nan/infinity) before any write:
    otherwise it fails only after every chunk is written, with a bare TypeError."""
    try:
        json.dumps(dict(metadata or {}), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InvalidSourceError(f"checkpoint metadata must be JSON (str keys; None, bool, "
                                 f"int, finite float, str, lists, dicts): {error}") from error


def _check_step(step: int) -> None:
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise InvalidSourceError(f"step must be a non-negative integer, got {step!r}")


def _manifest(run: str, step: int, layouts: dict[str, ArrayLayout],
              checksums: dict[str, dict[str, int]],
              offsets: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:
    arrays = {key: {**layout.to_json(), "crc32": checksums[key]}
              for key, layout in layouts.items()}
    for key, where in (offsets or {}).items():
        arrays[key]["offsets"] = where
    return {"format": FORMAT_VERSION, "run": run, "step": step, "arrays": arrays}


def _attributes(run: str, step: int, spec: dict[str, Any], metadata: Mapping[str, Any] | None,
                sharding: dict[str, Any] | None = None) -> dict[str, Any]:
    """The root group's attributes: what a plain zarr reader sees of the checkpoint."""
    attributes: dict[str, Any] = {"format": FORMAT_VERSION, "run": run, "step": step,
                                  "spec": spec, "metadata": dict(metadata or {})}
    if sharding is not None:
        attributes["sharding"] = sharding
    return {"dataplane": attributes}


def _archive_offsets(sink: ArchiveSink, layouts: dict[str, ArrayLayout]
                     ) -> dict[str, dict[str, int]]:
    """Where each chunk's bytes start in the archive, per array, per chunk suffix."""
    return {key: {chunk_suffix(index):
                  sink.entry(layout.chunk_key(index)).data_offset
                  for index in layout.chunk_indices()}
            for key, layout in layouts.items()}


def _digest(manifest: dict[str, Any]) -> str:
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _layouts(raw: dict[str, Any]) -> dict[str, ArrayLayout]:
    return {key: ArrayLayout.from_json(key, value) for key, value in raw["arrays"].items()}


def _checksums(raw: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {key: value["crc32"] for key, value in raw["arrays"].items()}


def _normalize(region: Sequence[slice | int] | slice | None, shape: tuple[int, ...]
               ) -> tuple[tuple[slice, ...], list[bool]]:
    """Normalized step-1 slices for every dimension, and which ones an int squeezes."""
    items = [] if region is None else [region] if isinstance(region, slice | int) else list(region)
    if len(items) > len(shape):
        raise IndexError(f"region has {len(items)} dimensions, the array {len(shape)}")
    slices, squeeze = [], []
    for dim, size in enumerate(shape):
        item = items[dim] if dim < len(items) else slice(None)
        if isinstance(item, int):
            index = item + size if item < 0 else item
            if not 0 <= index < size:
                raise IndexError(f"index {item} out of range for dimension {dim} of {size}")
            slices.append(slice(index, index + 1))
            squeeze.append(True)
            continue
        start, stop, step = item.indices(size)
        if step != 1:
            raise IndexError("regions take slices with step 1")
        slices.append(slice(start, max(start, stop)))
        squeeze.append(False)
    return tuple(slices), squeeze


def _template_buffers(template: Any, layouts: dict[str, ArrayLayout]) -> dict[str, np.ndarray]:
    """Check the template against the checkpoint; numpy buffers to load into in place."""
    arrays, _ = flatten(template)
    buffers: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        if key not in layouts:
            raise NotFoundError(f"template key {key!r} is not in the checkpoint")
        stored = to_stored(key, value)
        layout = layouts[key]
        if stored.data.shape != layout.shape or stored.dtype != layout.dtype:
            raise InvalidSourceError(
                f"template mismatch at {key!r}: checkpoint has shape {layout.shape} dtype "
                f"{layout.dtype}, template has shape {stored.data.shape} dtype {stored.dtype}"
            )
        if isinstance(value, np.ndarray) and value.flags.c_contiguous and value.flags.writeable:
            buffers[key] = value.view(np.dtype(layout.stored_dtype))
    return buffers


def _fill_template(template: Any, data: dict[str, np.ndarray],
                   layouts: dict[str, ArrayLayout], saved_spec: dict[str, Any]) -> Any:
    """The template's tree with every array replaced by (or filled with) the loaded data,
    and every plain value the checkpoint also holds (at the same path) taken from it."""
    arrays, spec = flatten(template)

    def load(key: str) -> Any:
        value = arrays[key]
        loaded = from_stored(data[key], layouts[key].dtype, layouts[key].framework)
        if isinstance(value, np.ndarray):
            if not np.shares_memory(value, data[key]):
                value[...] = loaded
            return value
        if hasattr(value, "copy_") and layouts[key].framework == "torch":
            value.copy_(loaded)
            return value
        return loaded

    def no_arrays(key: str) -> Any:
        raise KeyError(key)

    return _overlay_plain(unflatten(spec, load), unflatten(saved_spec, no_arrays))


_PLAIN = (type(None), bool, int, float, str)


def _overlay_plain(mine: Any, saved: Any) -> Any:
    """``mine`` with each plain value replaced by the plain value ``saved`` has there."""
    if isinstance(mine, dict) and isinstance(saved, dict):
        return {k: _overlay_plain(v, saved[k]) if k in saved else v for k, v in mine.items()}
    if isinstance(mine, list | tuple) and type(saved) is type(mine) and len(saved) == len(mine):
        return type(mine)(_overlay_plain(m, s) for m, s in zip(mine, saved, strict=True))
    if isinstance(mine, _PLAIN) and isinstance(saved, _PLAIN):
        return saved
    return mine
