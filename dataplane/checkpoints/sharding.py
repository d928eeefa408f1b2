"""Planning a save across ranks: what each rank holds, whether the ranks fit together,
the chunk grid of every array, and which rank writes which chunks.

Every rank describes its arrays as :class:`Entry` values (no data: dtype, global shape, its
block and offsets) in a :class:`Plan`; once the plans are gathered, :func:`agree` turns
them into one :class:`GlobalArray` per key on every rank, identically, or raises the same
:class:`~dataplane.errors.InvalidSourceError` on every rank. :func:`owned_part` then says
what a rank writes. The storage side — writing the chunks, committing — is in
:mod:`.distributed`.

Rules:

- every rank saves the same run, step and array keys; a key is a Shard on every rank or on
  none; dtypes and global shapes agree (replicated arrays, written from rank 0 only, must
  have the same shape everywhere: an array that differs between ranks must be a Shard);
- the non-empty shards of a tensor tile it on a regular grid: the *block* is the largest
  shard's shape, and every shard is the block at a multiple of it, clipped only at the far
  edge of a dimension (``torch.chunk``, an even split); identical shards may be held by
  several ranks (the lowest one writes them), empty shards by any;
- the chunk shape of a sharded tensor divides its block (:func:`shard_chunks`), so every
  chunk lies inside one shard and is written by one rank.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import InvalidSourceError
from .dtypes import describe, stored_dtype
from .layout import ArrayLayout, chunk_shape_for
from .shard import Shard

__all__ = ["Entry", "GlobalArray", "Piece", "Plan", "Target", "agree", "entry_of",
           "owned_part", "shard_chunks"]


@dataclass(frozen=True)
class Entry:
    """One array as one rank holds it (``offsets`` is ``None`` for a replicated array)."""

    dtype: str
    framework: str
    shape: tuple[int, ...]  # the global shape
    block: tuple[int, ...]  # this rank's part of it
    offsets: tuple[int, ...] | None

    def summary(self) -> str:
        where = "replicated" if self.offsets is None else \
            f"Shard {self.block} at {self.offsets} of global"
        return f"{where} shape {self.shape} dtype {self.dtype} ({self.framework})"


@dataclass(frozen=True)
class Target:
    """Rank 0's choice of where the checkpoint goes and how it is chunked."""

    backend: str
    prefix: str
    chunk_bytes: int


@dataclass(frozen=True)
class Plan:
    """What one rank saves, as the other ranks see it (no array data)."""

    run: str
    step: int
    entries: dict[str, Entry]
    target: Target | None  # rank 0 only


@dataclass(frozen=True)
class Piece:
    """One distinct shard of a tensor: its block shape and the ranks holding it."""

    block: tuple[int, ...]
    ranks: tuple[int, ...]


@dataclass(frozen=True)
class GlobalArray:
    """One array of the checkpoint: its global layout and, if sharded, its pieces."""

    layout: ArrayLayout
    pieces: dict[tuple[int, ...], Piece] | None


def entry_of(key: str, value: Any) -> Entry:
    """How a rank holds the array leaf ``value`` (a Shard or a replicated array)."""
    local = value.local if isinstance(value, Shard) else value
    dtype, framework, shape = describe(key, local)
    if isinstance(value, Shard):
        return Entry(dtype, framework, value.global_shape, shape, value.offsets)
    return Entry(dtype, framework, shape, shape, None)


def agree(plans: list[Plan], chunk_bytes: int, what: str) -> dict[str, GlobalArray]:
    """Every array's global layout; the same InvalidSourceError on every rank when the
    ranks' states do not fit together."""
    first = plans[0]
    for rank, plan in enumerate(plans):
        if (plan.run, plan.step) != (first.run, first.step):
            raise InvalidSourceError(
                f"{what}: the ranks save different checkpoints: rank 0 {first.run!r} step "
                f"{first.step}, rank {rank} {plan.run!r} step {plan.step}")
        missing = [k for k in first.entries if k not in plan.entries]
        extra = [k for k in plan.entries if k not in first.entries]
        if missing or extra:
            raise InvalidSourceError(
                f"{what}: every rank must save the same array keys; rank {rank} "
                + (f"lacks {_few(missing)}" if missing else "")
                + (" and " if missing and extra else "")
                + (f"has {_few(extra)} that rank 0 does not" if extra else ""))
    return {key: _global(key, [plan.entries[key] for plan in plans], chunk_bytes, what)
            for key in first.entries}


def _few(keys: list[str]) -> str:
    shown = ", ".join(map(repr, keys[:5]))
    return shown + (f" (and {len(keys) - 5} more)" if len(keys) > 5 else "")


def _global(key: str, entries: list[Entry], chunk_bytes: int, what: str) -> GlobalArray:
    first = entries[0]
    for rank, entry in enumerate(entries):
        same = (entry.offsets is None) == (first.offsets is None) and \
            (entry.dtype, entry.framework, entry.shape) == (first.dtype, first.framework,
                                                            first.shape)
        if not same:
            hint = "" if first.offsets is not None else \
                " (an array that differs between ranks must be a Shard)"
            raise InvalidSourceError(f"{what}: the ranks disagree on {key!r}: rank 0 holds "
                                     f"{first.summary()}, rank {rank} {entry.summary()}{hint}")
    stored = stored_dtype(first.dtype)
    itemsize = np.dtype(stored).itemsize
    if first.offsets is None:
        chunks = chunk_shape_for(first.shape, itemsize, chunk_bytes)
        return GlobalArray(ArrayLayout(key, first.shape, stored, chunks, first.dtype,
                                       first.framework), None)
    pieces = _pieces(key, entries, what)
    block = _tile(key, first.shape, pieces, what)
    chunks = shard_chunks(block, itemsize, chunk_bytes)
    layout = ArrayLayout(key, first.shape, stored, chunks, first.dtype, first.framework)
    return GlobalArray(layout, pieces)


def _pieces(key: str, entries: list[Entry], what: str) -> dict[tuple[int, ...], Piece]:
    """The distinct shards of one tensor, each with the ranks that hold it (ascending)."""
    pieces: dict[tuple[int, ...], Piece] = {}
    for rank, entry in enumerate(entries):
        assert entry.offsets is not None
        seen = pieces.get(entry.offsets)
        if seen is None:
            pieces[entry.offsets] = Piece(entry.block, (rank,))
        elif seen.block != entry.block:
            raise InvalidSourceError(
                f"{what}: the shards of {key!r} overlap: rank {seen.ranks[0]} holds shape "
                f"{seen.block} and rank {rank} shape {entry.block}, both at offsets "
                f"{entry.offsets}")
        else:
            pieces[entry.offsets] = Piece(seen.block, (*seen.ranks, rank))
    return pieces


def _tile(key: str, shape: tuple[int, ...], pieces: dict[tuple[int, ...], Piece], what: str
          ) -> tuple[int, ...]:
    """The block shape, once the non-empty shards are checked to tile ``shape`` exactly."""
    full = {offsets: piece for offsets, piece in pieces.items() if math.prod(piece.block)}
    if not full:
        if math.prod(shape):
            raise InvalidSourceError(f"{what}: every shard of {key!r} (global shape {shape}) "
                                     "is empty")
        return shape
    block = tuple(max(piece.block[d] for piece in full.values()) for d in range(len(shape)))
    for offsets, piece in sorted(full.items()):
        expected = tuple(min(b, s - o) for b, s, o in zip(block, shape, offsets, strict=True))
        aligned = all(o % b == 0 for o, b in zip(offsets, block, strict=True))
        if not aligned or piece.block != expected:
            raise InvalidSourceError(
                f"{what}: the shards of {key!r} (global shape {shape}) do not tile it on a "
                f"regular grid: rank {piece.ranks[0]} holds shape {piece.block} at offsets "
                f"{offsets}, but every shard must be the block {block} at a multiple of it, "
                "smaller only at the far edge (as torch.chunk or an even split gives)")
    grid = [math.ceil(s / b) for s, b in zip(shape, block, strict=True)]
    if len(full) < math.prod(grid):
        for index in itertools.product(*(range(n) for n in grid)):
            offsets = tuple(i * b for i, b in zip(index, block, strict=True))
            if offsets not in full:
                raise InvalidSourceError(
                    f"{what}: the shards of {key!r} (global shape {shape}) leave a gap: no "
                    f"rank holds the block {block} at offsets {offsets}")
    return block


def shard_chunks(block: tuple[int, ...], itemsize: int, chunk_bytes: int) -> tuple[int, ...]:
    """A chunk shape that divides ``block`` (so every chunk lies inside one shard), split
    along the leading dimensions until a chunk holds at most about ``chunk_bytes``."""
    chunk = list(block)
    for dim in range(len(block)):
        inner = itemsize * math.prod(chunk[dim + 1:])
        if inner * chunk[dim] <= chunk_bytes:
            break
        chunk[dim] = _largest_divisor(chunk[dim], max(1, chunk_bytes // max(inner, 1)))
        if chunk[dim] > 1 or inner <= chunk_bytes:
            break
    return tuple(max(1, c) for c in chunk)


def _largest_divisor(n: int, limit: int) -> int:
    """The largest divisor of ``n`` that is at most ``limit``."""
    best = 1
    for d in range(1, math.isqrt(n) + 1):
        if n % d == 0:
            for x in (d, n // d):
                if best < x <= limit:
                    best = x
    return best


def owned_part(rank: int, entry: Entry, array: GlobalArray
               ) -> tuple[ArrayLayout, tuple[int, ...] | None] | None:
    """What ``rank`` writes of ``array`` (which it holds as ``entry``): ``None``, or the
    layout of its block and the chunk index the block starts at (``None``: the whole
    array, for rank 0's replicated arrays)."""
    if array.pieces is None or entry.offsets is None:
        return (array.layout, None) if rank == 0 else None
    if array.pieces[entry.offsets].ranks[0] != rank:
        return None  # a lower rank holds the same shard and writes it
    origin = tuple(o // c for o, c in zip(entry.offsets, array.layout.chunks, strict=True))
    return replace(array.layout, shape=entry.block), origin
