"""What a version is made of on storage, and the digest each object must match.

A migration copies objects, and proves each copy against the digest recorded when the
object was first written, never against a digest taken from the copy's own source:

- a model or dataset file: the SHA-256 in the version's manifest (its key is
  content-addressed, ``<tenant>/<kind>/<name>/objects/<sha256>``);
- a checkpoint chunk: the crc32 in the checkpoint's manifest;
- a packed checkpoint's ``checkpoint.zip``: the crc32 of every chunk at its recorded
  offset in the archive (its zip headers and ``zarr.json`` entries carry no recorded
  digest, and the zip format's own CRC-32s cover those entries);
- a checkpoint's ``dataplane-manifest.json``: the version's digest (SHA-256 of its
  canonical JSON);
- a checkpoint's ``zarr.json`` metadata, for which nothing was recorded: the SHA-256 of
  the bytes read from the source while copying (``{"sha256": None}`` until then).

An expected digest is a small JSON mapping, stored as it is in the migration journal.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..blob import BlobStore
from ..catalog import VersionRecord
from ..checkpoints.layout import MANIFEST, ArrayLayout, chunk_suffix
from ..checksums import crc32

__all__ = [
    "PlannedObject", "check_bytes", "check_file", "file_sha256", "objects_of", "source_digest",
]

Expected = dict[str, Any]
_READ = 8 * 2**20


@dataclass(frozen=True)
class PlannedObject:
    """One object to move: its key (the same on every backend), size and expected digest."""

    key: str
    size: int
    expected: Expected


def objects_of(record: VersionRecord, source: BlobStore) -> list[PlannedObject]:
    """Every object of ``record``; a checkpoint's folder on ``source`` is listed once."""
    if record.kind == "checkpoints":
        return list(_checkpoint_objects(record, source))
    return [PlannedObject(f["key"], int(f["size"]), {"sha256": f["digest"].removeprefix("sha256:")})
            for f in record.manifest.get("files", [])]


def _checkpoint_objects(record: VersionRecord, source: BlobStore) -> Iterator[PlannedObject]:
    prefix = record.manifest["prefix"]
    recorded: dict[str, Expected] = {f"{prefix}/{MANIFEST}": {"manifest": record.digest}}
    archive = record.manifest.get("archive")
    regions: list[list[int]] = []
    for key, raw in record.manifest["arrays"].items():
        layout = ArrayLayout.from_json(key, raw)
        size = math.prod(layout.chunks) * np.dtype(layout.stored_dtype).itemsize
        for index in layout.chunk_indices():
            suffix = chunk_suffix(index)
            if archive:
                regions.append([raw["offsets"][suffix], size, raw["crc32"][suffix]])
            else:
                recorded[f"{prefix}/{layout.chunk_key(index)}"] = {"crc32": raw["crc32"][suffix]}
    if archive:
        recorded[f"{prefix}/{archive}"] = {"regions": sorted(regions)}
    listed = {info.key: info.size for info in source.list(prefix + "/")}
    for key in sorted(set(recorded) | set(listed)):
        yield PlannedObject(key, listed.get(key, 0), recorded.get(key, {"sha256": None}))


def source_digest(expected: Expected, data: bytes | memoryview) -> Expected:
    """``expected`` completed with the digest of ``data`` where nothing was recorded."""
    if "sha256" in expected and expected["sha256"] is None:
        return {"sha256": hashlib.sha256(data).hexdigest()}
    return expected


def check_bytes(expected: Expected, data: bytes | memoryview) -> str | None:
    """``None`` when ``data`` matches ``expected``, else what differs (for the report)."""
    if "crc32" in expected:
        crc = crc32(data)
        return None if crc == expected["crc32"] else f"crc32 {crc} != {expected['crc32']}"
    if "regions" in expected:
        view = memoryview(data)
        return _check_regions(expected["regions"], lambda start, size: view[start:start + size])
    if "manifest" in expected:
        try:
            parsed = json.loads(bytes(data))
        except ValueError:
            return "the checkpoint manifest is not JSON"
        canonical = json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode()
        actual = "sha256:" + hashlib.sha256(canonical).hexdigest()
        return None if actual == expected["manifest"] else f"{actual} != {expected['manifest']}"
    return _check_sha256(expected, hashlib.sha256(data).hexdigest())


def check_file(expected: Expected, path: Path) -> str | None:
    """Like :func:`check_bytes` for a local file, read in 8 MiB pieces."""
    if "regions" in expected:
        with open(path, "rb") as file:
            return _check_regions(expected["regions"],
                                  lambda start, size: os.pread(file.fileno(), size, start))
    if "sha256" not in expected or expected["sha256"] is None:
        return check_bytes(expected, path.read_bytes())
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(_READ):
            digest.update(block)
    return _check_sha256(expected, digest.hexdigest())


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a local file."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(_READ):
            digest.update(block)
    return digest.hexdigest()


def _check_regions(regions: list[list[int]],
                   read: Callable[[int, int], bytes | memoryview]) -> str | None:
    """Each ``[offset, size, crc32]`` region of an archive against its recorded crc32."""
    for start, size, wanted in regions:
        piece = read(start, size)
        crc = crc32(piece)
        if len(piece) != size or crc != wanted:
            return f"the chunk at offset {start}: crc32 {crc} != {wanted}"
    return None


def _check_sha256(expected: Expected, actual: str) -> str | None:
    wanted = expected.get("sha256")
    if wanted is None:
        return "no digest recorded and none taken from the source yet"
    return None if actual == wanted else f"sha256 {actual[:16]}... != {wanted[:16]}..."
