"""Checkpoints across ranks: every rank writes its own shards, rank 0 commits once all have.

A state saved from several ranks holds :class:`~.shard.Shard` leaves for tensors split
across ranks, and ordinary arrays for replicated ones, which rank 0 writes (plain values
and ``metadata`` are rank 0's too). Each sharded tensor is stored as one *global* zarr
array whose chunk grid is aligned with the shards, so every chunk is written by exactly
one rank and the result is an ordinary checkpoint: it loads on any number of ranks or in
one process, and any zarr reader sees the global arrays.

Save protocol — every rank of the group calls :meth:`CheckpointStore.save`; three
collectives, each also a barrier:

1. **plan**: each rank flattens its state and describes its arrays (key, dtype, global
   shape, its block's offsets and shape), without copying them; rank 0 also refuses an
   existing step and picks the backend, the prefix and the chunk size. ``all_gather_object``
   of the plans; every rank then validates them the same way (same run, step and keys
   everywhere; shards that tile their tensor on a regular grid), so a bad state raises the
   same error on every rank before a byte is written.
2. **write**: each rank writes the chunks it owns — its shards (of identical shards held
   by several ranks, the lowest rank's copy) and, on rank 0, the replicated arrays — in
   parallel and memory-bounded, as a single-process save does. ``all_gather_object`` of
   the chunk checksums, or of the error.
3. **commit**: rank 0 writes every array's and group's ``zarr.json`` and the manifest, which
   records each sharded tensor's global shape and every shard's offsets, shape and ranks
   under ``sharding``; it commits the step in the catalog and applies retention.
   ``broadcast_object_list`` of the catalog record (or the error): every rank returns the
   same :class:`~.store.Checkpoint`.

A failure on any rank, in any phase, makes every rank raise — the failing rank its own
exception, the others the same dataplane error class (``DataplaneError`` for anything
else) naming each failed rank and its error — and nothing is committed: objects already
written form a torn save that :meth:`CheckpointStore.gc` removes. A rank that never calls
``save``, or dies, leaves the others waiting in a collective until the process group's
timeout.

What the ranks must agree on (same keys, shards that tile each tensor on a regular grid
— what ``torch.chunk`` or an even split gives, not ``numpy.array_split``'s 3, 3, 2, 2) and
how each tensor is chunked so that every chunk lies inside one shard: :mod:`.sharding`.

Loading is not collective: :func:`load_into` (``load(..., template=...)`` with Shard
leaves) reads, for each Shard, only the chunks overlapping its region, whatever the number
of ranks that saved the checkpoint.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .. import errors
from ..errors import ConfigError, DataplaneError, InvalidSourceError, NotFoundError
from ..names import check_name
from .dtypes import describe, from_stored, to_stored
from .io import read_arrays, read_region, workers_for, write_arrays, write_metadata
from .layout import ArrayLayout
from .placement import FolderSink
from .shard import Shard
from .sharding import Entry, GlobalArray, Plan, Target, agree, entry_of, owned_part
from .store import Checkpoint, CheckpointStore, _check_step, _checksums, _layouts
from .tree import flatten, unflatten

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["ALONE", "Ranks", "Shard", "has_shards", "load_into", "ranks_for", "save"]


# ------------------------------------------------------------------------------ ranks
class Ranks(Protocol):
    """The group a save runs across: this process's rank, the size, two collectives."""

    rank: int
    size: int

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value``, on every rank."""


class _Alone:
    """One process holding the whole state (every shard of each tensor)."""

    rank = 0
    size = 1

    def gather(self, value: Any) -> list[Any]:
        return [value]

    def broadcast(self, value: Any) -> Any:
        return value


ALONE: Ranks = _Alone()


class _TorchRanks:
    """A torch.distributed process group (``None``: the default one); objects travel by
    pickle through ``all_gather_object`` / ``broadcast_object_list``."""

    def __init__(self, dist: Any, group: Any):
        self._dist = dist
        self._group = group
        self.rank: int = dist.get_rank(group)
        if self.rank < 0:
            raise ConfigError("this process is not a member of the process group it saves "
                              "the checkpoint with")
        self.size: int = dist.get_world_size(group)
        self._root = 0 if group is None else dist.get_global_rank(group, 0)

    def gather(self, value: Any) -> list[Any]:
        out: list[Any] = [None] * self.size
        self._dist.all_gather_object(out, value, group=self._group)
        return out

    def broadcast(self, value: Any) -> Any:
        box = [value]
        self._dist.broadcast_object_list(box, src=self._root, group=self._group)
        return box[0]


def ranks_for(group: Any, collective: bool | None) -> Ranks | None:
    """The ranks a save runs across, or ``None`` for a single-process save.

    ``collective=None`` (the default): collective over ``group`` when one is given, else
    over the default group when torch.distributed is initialized with more than one rank.
    ``True`` insists on a collective save, ``False`` refuses one.
    """
    if collective is False:
        if group is not None:
            raise ConfigError("save: a process group was given with collective=False")
        return None
    dist = _initialized_dist()
    if dist is None:
        if collective or group is not None:
            raise ConfigError("a collective checkpoint save needs torch.distributed: call "
                              "torch.distributed.init_process_group first, or pass "
                              "collective=False")
        return None
    ranks = _TorchRanks(dist, group)
    if ranks.size == 1 and group is None and not collective:
        return None
    return ranks


def _initialized_dist() -> Any:
    """``torch.distributed`` when a process group is up (never imports torch itself)."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    return dist


def has_shards(arrays: Mapping[str, Any]) -> bool:
    return any(isinstance(value, Shard) for value in arrays.values())


# ------------------------------------------------------------------- what travels
@dataclass(frozen=True)
class _Failure:
    """An exception as it travels to the other ranks."""

    kind: str
    message: str

    @classmethod
    def of(cls, error: BaseException) -> _Failure:
        return cls(type(error).__name__, str(error))


# ----------------------------------------------------------------------- saving
def save(store: CheckpointStore, ranks: Ranks, run: str, step: int, state: Any,
         metadata: Mapping[str, Any] | None) -> Checkpoint:
    """Save ``state`` (this rank's part) across ``ranks``; see the module docstring."""
    what = f"checkpoint {run!r} step {step}"
    # 1. plan
    own: Exception | None = None
    arrays: dict[str, Any] = {}
    spec: dict[str, Any] = {}
    mine: Any = None
    try:
        arrays, spec = flatten(state)
        mine = _plan(store, ranks.rank, run, step, arrays)
    except Exception as error:
        own, mine = error, _Failure.of(error)
    plans = ranks.gather(mine)
    _raise_failures(plans, own, what)
    target = plans[0].target
    assert target is not None
    layout = agree(plans, target.chunk_bytes, what)
    # 2. write
    try:
        mine = _write(store, ranks.rank, arrays, plans[ranks.rank].entries, layout, target)
    except Exception as error:
        own, mine = error, _Failure.of(error)
    reports = ranks.gather(mine)
    _raise_failures(reports, own, what)
    # 3. commit
    checkpoint: Checkpoint | None = None
    result: Any = None
    if ranks.rank == 0:
        try:
            checkpoint = _commit(store, ranks.size, plans[0], spec, metadata, layout, reports,
                                 what)
            result = checkpoint.record
        except Exception as error:
            own, result = error, _Failure.of(error)
    result = ranks.broadcast(result)
    _raise_failures([result], own, what)
    return checkpoint if checkpoint is not None else store._checkpoint(result)


def _plan(store: CheckpointStore, rank: int, run: str, step: int, arrays: dict[str, Any]
          ) -> Plan:
    run = check_name(run)
    _check_step(step)
    entries = {key: entry_of(key, value) for key, value in arrays.items()}
    target = None
    if rank == 0:
        store._refuse_existing(run, step)
        target = Target(store.plane.route("checkpoints", run), store._new_prefix(run, step),
                         store.settings.chunk_bytes)
    return Plan(run, step, entries, target)


def _write(store: CheckpointStore, rank: int, arrays: dict[str, Any], entries: dict[str, Entry],
           layouts: dict[str, GlobalArray], target: Target) -> dict[str, dict[str, int]]:
    """Write the chunks this rank owns; their crc32s by key."""
    data: dict[str, np.ndarray] = {}
    owned: dict[str, ArrayLayout] = {}
    origins: dict[str, tuple[int, ...]] = {}
    for key, entry in entries.items():
        part = owned_part(rank, entry, layouts[key])
        if part is None:
            continue
        owned[key], origin = part
        if origin is not None:
            origins[key] = origin
        value = arrays[key]
        data[key] = to_stored(key, value.local if isinstance(value, Shard) else value).data
    if not owned:
        return {}
    blob = store.plane.store(target.backend)
    sink = FolderSink(blob, target.prefix)  # ranks cannot share one archive's offsets
    sums = write_arrays(sink, data, owned, store.settings, workers_for(store.settings, blob),
                        origins=origins, metadata=False)
    sink.commit()
    return sums


def _commit(store: CheckpointStore, size: int, plan: Plan, spec: dict[str, Any],
            metadata: Mapping[str, Any] | None, arrays: dict[str, GlobalArray],
            reports: list[dict[str, dict[str, int]]], what: str) -> Checkpoint:
    """Rank 0, once every rank has written: metadata, manifest, catalog commit."""
    target = plan.target
    assert target is not None
    checksums: dict[str, dict[str, int]] = {key: {} for key in arrays}
    for report in reports:
        for key, sums in report.items():
            checksums[key].update(sums)
    for key, array in arrays.items():
        if len(checksums[key]) != math.prod(array.layout.grid):
            raise DataplaneError(f"{what}: array {key!r} has {len(checksums[key])} of its "
                                 f"{math.prod(array.layout.grid)} chunks written")
    layouts = {key: array.layout for key, array in arrays.items()}
    blob = store.plane.store(target.backend)
    sink = FolderSink(blob, target.prefix)
    write_metadata(sink, layouts.values(), workers_for(store.settings, blob))
    sharding = {"world_size": size, "arrays": {
        key: [{"offsets": list(offsets), "shape": list(piece.block), "ranks": list(piece.ranks)}
              for offsets, piece in sorted(array.pieces.items())]
        for key, array in arrays.items() if array.pieces is not None}}
    return store._commit(plan.run, plan.step, target.backend, target.prefix, layouts,
                         checksums, spec, metadata, sharding, sink=sink)


# --------------------------------------------------------------------- failures
def _raise_failures(reports: list[Any], own: BaseException | None, what: str) -> None:
    """Raise on every rank when any rank's report is a failure."""
    failed = [(rank, r) for rank, r in enumerate(reports) if isinstance(r, _Failure)]
    if not failed:
        return
    if own is not None:
        own.add_note(f"{what} was not saved on any rank")
        raise own
    detail = "; ".join(f"rank {rank} failed: {f.kind}: {f.message}" for rank, f in failed)
    raise _error(failed[0][1].kind, f"{what} was not saved: {detail}")


def _error(kind: str, message: str) -> DataplaneError:
    """An error of the dataplane class named ``kind`` (or the nearest base class that
    takes a message alone), else ``DataplaneError``."""
    found = getattr(errors, kind, None)
    if isinstance(found, type) and issubclass(found, DataplaneError):
        for cls in found.__mro__:
            if issubclass(cls, DataplaneError):
                try:
                    return cls(message)
                except TypeError:
                    continue
    return DataplaneError(message)


# ----------------------------------------------------------------------- loading
def load_into(store: CheckpointStore, checkpoint: Checkpoint, template: Any) -> Any:
    """The template's tree with its arrays filled from the checkpoint: a :class:`Shard`
    gets the region it names (only the chunks overlapping it are read), any other array
    the whole array. Buffers are filled in place where they can be (contiguous, writable,
    on the CPU) and copied into otherwise. Global shapes and dtypes must match exactly."""
    raw = checkpoint.record.manifest
    layouts, checksums = _layouts(raw), _checksums(raw)
    what = f"checkpoint {checkpoint.run}@{checkpoint.step}"
    arrays, spec = flatten(template)
    buffers: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        buffers[key] = _buffer(key, value, layouts.get(key), what)
    source = store._source_of(checkpoint)
    whole = [layouts[k] for k, v in arrays.items() if not isinstance(v, Shard)]
    read_arrays(source, whole, checksums, store.settings, what,
                {layout.key: buffers[layout.key] for layout in whole})
    for key, value in arrays.items():
        if isinstance(value, Shard):
            read_region(source, layouts[key], checksums[key], value.region,
                        store.settings, what, out=buffers[key])

    def fill(key: str) -> Any:
        value, layout = arrays[key], layouts[key]
        local = value.local if isinstance(value, Shard) else value
        filled = _fill(local, buffers[key], layout)
        if not isinstance(value, Shard):
            return filled
        return value if filled is local else Shard(filled, value.global_shape, value.offsets)

    return unflatten(spec, fill)


def _buffer(key: str, value: Any, layout: ArrayLayout | None, what: str) -> np.ndarray:
    """Where ``value``'s data is read to: its own memory when it can be, else a new array."""
    if layout is None:
        raise NotFoundError(f"template key {key!r} is not in {what}")
    local = value.local if isinstance(value, Shard) else value
    dtype, _, shape = describe(key, local)
    wanted = value.global_shape if isinstance(value, Shard) else shape
    if wanted != layout.shape or dtype != layout.dtype:
        has = f"{'global ' if isinstance(value, Shard) else ''}shape {wanted} dtype {dtype}"
        raise InvalidSourceError(f"template mismatch at {key!r}: {what} has shape "
                                 f"{layout.shape} dtype {layout.dtype}, the template {has}")
    if isinstance(local, np.ndarray):
        if local.flags.c_contiguous and local.flags.writeable:
            return local.view(np.dtype(layout.stored_dtype))
    elif isinstance(local, np.generic):
        pass
    elif local.device.type == "cpu" and local.is_contiguous():
        return to_stored(key, local).data  # a view of the tensor's own memory
    return np.empty(shape, dtype=np.dtype(layout.stored_dtype))


def _fill(local: Any, buffer: np.ndarray, layout: ArrayLayout) -> Any:
    """``local`` holding ``buffer``'s data (``local`` itself where it can be)."""
    if isinstance(local, np.ndarray):
        if not local.flags.writeable:
            return from_stored(buffer, layout.dtype, layout.framework)
        if not np.shares_memory(local, buffer):
            local[...] = buffer.view(local.dtype)
        return local
    if isinstance(local, np.generic):
        return from_stored(buffer, layout.dtype, layout.framework)
    if local.device.type != "cpu" or not local.is_contiguous():
        import torch

        with torch.no_grad():
            local.copy_(from_stored(buffer, layout.dtype, "torch"))
    return local
