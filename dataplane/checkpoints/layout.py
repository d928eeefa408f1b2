"""The on-storage layout of a checkpoint: a zarr v3 group any zarr reader can open.

::

    <prefix>/zarr.json                      group: attributes (spec, plain values, metadata)
                                            and consolidated metadata of every array
    <prefix>/<key>/zarr.json                one array per tensor, at the path of its key
    <prefix>/<key>/c.<i>.<j>...             its chunks (regular grid, '.' separated keys:
                                            one folder per array, not one per chunk row)
    <prefix>/dataplane-manifest.json        written LAST: keys, shapes, dtypes, per-chunk
                                            crc32 checksums; its presence marks completeness

Packed (:mod:`.archive`, the default), every key but the manifest is instead an entry
``checkpoint/<key>`` of one ``<prefix>/checkpoint.zip``, and the manifest also records
each chunk's offset in it.

Chunks are uncompressed little-endian bytes (the ``bytes`` codec), split along the leading
dimensions to about ``chunk_bytes`` each; edge chunks are padded to the full chunk shape,
as zarr v3 requires.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["GROUP_NODE", "MANIFEST", "ArrayLayout", "chunk_shape_for", "chunk_suffix",
           "compact_json", "intermediate_groups", "root_group_metadata"]

MANIFEST = "dataplane-manifest.json"
FORMAT_VERSION = 3  # 3: may be packed in one archive (manifest "archive", chunk "offsets");
#                    2: "." chunk key separator, recorded per array (1 used "/")


def chunk_shape_for(shape: tuple[int, ...], itemsize: int, chunk_bytes: int) -> tuple[int, ...]:
    """Split the leading dimensions until a chunk holds at most about ``chunk_bytes``.

    The split dimension is divided evenly (7375 rows in chunks of at most 1024 become 8
    chunks of 922, not 7 of 1024 and one of 207), since zarr pads the edge chunk to the
    full chunk shape on storage: even chunks write almost no padding.
    """
    chunk = list(shape)
    for dim in range(len(shape)):
        inner = itemsize * math.prod(chunk[dim + 1:])
        if inner * chunk[dim] <= chunk_bytes:
            break
        most = max(1, chunk_bytes // max(inner, 1))
        chunk[dim] = math.ceil(shape[dim] / math.ceil(shape[dim] / most))
        if chunk[dim] > 1 or inner <= chunk_bytes:
            break
    return tuple(max(1, c) for c in chunk)


@dataclass(frozen=True)
class ArrayLayout:
    """One array's shape, stored dtype and chunk grid, and where its objects go."""

    key: str
    shape: tuple[int, ...]
    stored_dtype: str
    chunks: tuple[int, ...]
    dtype: str  # the real dtype
    framework: str
    separator: str = "."  # chunk key separator; checkpoints of format 1 used "/"

    @property
    def grid(self) -> tuple[int, ...]:
        return tuple(math.ceil(s / c) if s else 0 for s, c in zip(self.shape, self.chunks,
                                                                  strict=True))

    @property
    def chunk_nbytes(self) -> int:
        """The stored size of every chunk (edge chunks are padded to the full shape)."""
        return math.prod(self.chunks) * np.dtype(self.stored_dtype).itemsize

    def chunk_indices(self) -> Iterator[tuple[int, ...]]:
        return itertools.product(*(range(n) for n in self.grid))

    def chunk_key(self, index: tuple[int, ...]) -> str:
        """zarr v3's ``default`` chunk key encoding: ``c`` then the index, joined."""
        sep = self.separator
        return f"{self.key}/c{sep}{sep.join(map(str, index))}" if index else f"{self.key}/c"

    def chunk_region(self, index: tuple[int, ...]) -> tuple[slice, ...]:
        """The part of the array chunk ``index`` covers (clipped at the edges)."""
        return tuple(slice(i * c, min((i + 1) * c, s))
                     for i, c, s in zip(index, self.chunks, self.shape, strict=True))

    def overlapping(self, region: tuple[slice, ...]) -> Iterator[tuple[int, ...]]:
        """The chunk indices that intersect ``region`` (normalized slices, step 1)."""
        ranges = [range(r.start // c, math.ceil(r.stop / c)) if r.stop > r.start else range(0)
                  for r, c in zip(region, self.chunks, strict=True)]
        return itertools.product(*ranges)

    def metadata(self) -> dict[str, Any]:
        """The array's zarr v3 ``zarr.json`` (built once per layout; do not mutate it)."""
        return self._metadata

    @functools.cached_property
    def metadata_bytes(self) -> bytes:
        """The ``zarr.json`` as stored (compact JSON), encoded once per layout."""
        return compact_json(self._metadata)

    @functools.cached_property
    def _metadata(self) -> dict[str, Any]:
        fill: Any = False if self.stored_dtype == "bool" else 0
        if self.stored_dtype.startswith("complex"):
            fill = [0.0, 0.0]
        return {
            "zarr_format": 3, "node_type": "array", "shape": list(self.shape),
            "data_type": self.stored_dtype,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(self.chunks)}},
            "chunk_key_encoding": {"name": "default",
                                   "configuration": {"separator": self.separator}},
            "fill_value": fill,
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
            "attributes": {"dataplane": {"dtype": self.dtype, "framework": self.framework}},
            "storage_transformers": [],
        }

    def to_json(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "stored_dtype": self.stored_dtype,
                "chunks": list(self.chunks), "dtype": self.dtype, "framework": self.framework,
                "separator": self.separator}

    @classmethod
    def from_json(cls, key: str, raw: dict[str, Any]) -> ArrayLayout:
        return cls(key, tuple(raw["shape"]), raw["stored_dtype"], tuple(raw["chunks"]),
                   raw["dtype"], raw["framework"], raw.get("separator", "/"))


def chunk_suffix(index: tuple[int, ...]) -> str:
    """How the manifest names chunk ``index``: ``"i.j"`` (``"0"`` for a 0-d array)."""
    return ".".join(map(str, index)) or "0"


def padded_chunk(data: np.ndarray, layout: ArrayLayout, index: tuple[int, ...]) -> np.ndarray:
    """Chunk ``index`` of ``data`` as a C-contiguous array of the full chunk shape.

    Interior chunks split only along the first dimension are views (no copy); edge chunks
    are copied into a zero-padded buffer, as zarr v3 stores full-shape chunks.
    """
    region = layout.chunk_region(index)
    part = data[region]
    if part.shape == layout.chunks and part.flags.c_contiguous:
        return part
    full = np.zeros(layout.chunks, dtype=data.dtype)
    full[tuple(slice(0, n) for n in part.shape)] = part
    return full


def root_group_metadata(attributes: dict[str, Any], arrays: Iterable[ArrayLayout]) -> bytes:
    """The root group's ``zarr.json`` (compact JSON) with inline consolidated metadata of
    every array: each array's node is its own ``zarr.json``, encoded once per layout."""
    nodes: dict[str, bytes] = {}
    for layout in arrays:
        parts = layout.key.split("/")
        for depth in range(1, len(parts)):
            nodes.setdefault("/".join(parts[:depth]), GROUP_NODE)
        nodes[layout.key] = layout.metadata_bytes
    metadata = b",".join(compact_json(name) + b":" + node for name, node in nodes.items())
    return (b'{"zarr_format":3,"node_type":"group","attributes":' + compact_json(attributes)
            + b',"consolidated_metadata":{"kind":"inline","must_understand":false,'
            + b'"metadata":{' + metadata + b"}}}")


def compact_json(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON (no spaces; NaN and infinities refused)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("utf-8")


GROUP_NODE = compact_json({"zarr_format": 3, "node_type": "group", "attributes": {}})
"""The ``zarr.json`` of a group that only holds other nodes (every folder above an array)."""


def intermediate_groups(arrays: Iterable[ArrayLayout]) -> set[str]:
    """Every folder above an array: each needs its own group ``zarr.json``."""
    return {"/".join(a.key.split("/")[:d]) for a in arrays for d in range(1, a.key.count("/") + 1)}
