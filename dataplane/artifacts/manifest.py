"""Manifests: the list of files a version holds, with sizes and digests, and its digest.

A file's digest is the SHA-256 of its bytes. Files are also hashed in fixed-size chunks
(``chunk_size``, 8 MiB by default), so a ranged read or a parallel chunked download can
verify each chunk on its own, long before the whole file has been read. The version
digest is the SHA-256 of the canonical JSON of ``[path, size, digest]`` for every file,
sorted by path: two versions with the same files have the same digest, whatever the
backend, the chunking or the order they were uploaded in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..errors import IntegrityError

__all__ = ["DEFAULT_CHUNK_SIZE", "FileEntry", "Manifest", "hash_stream", "sha256_hex"]

DEFAULT_CHUNK_SIZE = 8 * 2**20
_READ_SIZE = 2**20


def sha256_hex(data: bytes | bytearray | memoryview) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class FileEntry:
    """One file of a version: where it sits in the tree, its size and digests, and its key.

    ``key`` is the blob key (relative to the backend root) that holds the bytes;
    ``chunks`` are the hex SHA-256 digests of consecutive ``chunk_size`` slices.
    """

    path: str
    size: int
    digest: str
    key: str
    chunk_size: int
    chunks: tuple[str, ...]

    def chunk_range(self, index: int) -> tuple[int, int]:
        """The ``[start, end)`` byte window of chunk ``index``."""
        start = index * self.chunk_size
        return start, min(start + self.chunk_size, self.size)

    def verify_chunk(self, index: int, data: bytes | bytearray | memoryview, what: str) -> None:
        """Raise ``IntegrityError`` naming ``what`` and the chunk unless ``data`` matches."""
        start, end = self.chunk_range(index)
        if len(data) != end - start:
            raise IntegrityError(what, f"{end - start} bytes", f"{len(data)} bytes",
                                 f"chunk {index} of {self.path} has the wrong length")
        actual = sha256_hex(data)
        if actual != self.chunks[index]:
            raise IntegrityError(what, f"sha256:{self.chunks[index]}", f"sha256:{actual}",
                                 f"chunk {index} of {self.path}")

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "digest": self.digest, "key": self.key,
                "chunk_size": self.chunk_size, "chunks": list(self.chunks)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> FileEntry:
        return cls(raw["path"], int(raw["size"]), raw["digest"], raw["key"],
                   int(raw["chunk_size"]), tuple(raw["chunks"]))


@dataclass(frozen=True)
class Manifest:
    """The files of one version (sorted by path) and extra structured data (e.g. a schema)."""

    files: tuple[FileEntry, ...]
    extra: Mapping[str, Any]

    @classmethod
    def build(cls, files: Iterable[FileEntry], extra: Mapping[str, Any] | None = None
              ) -> Manifest:
        ordered = tuple(sorted(files, key=lambda entry: entry.path))
        paths = [entry.path for entry in ordered]
        if len(set(paths)) != len(paths):
            raise ValueError("a manifest cannot list the same path twice")
        return cls(ordered, dict(extra or {}))

    @property
    def digest(self) -> str:
        """``sha256:`` over the canonical JSON of (path, size, digest) of every file."""
        canonical = json.dumps([[f.path, f.size, f.digest] for f in self.files],
                               separators=(",", ":"), ensure_ascii=False)
        return "sha256:" + sha256_hex(canonical.encode("utf-8"))

    @property
    def size(self) -> int:
        return sum(entry.size for entry in self.files)

    def file(self, path: str) -> FileEntry:
        """The entry for ``path``; ``KeyError`` names the path when the version lacks it."""
        for entry in self.files:
            if entry.path == path:
                return entry
        raise KeyError(path)

    def select(self, paths: Sequence[str] | None) -> tuple[FileEntry, ...]:
        """The entries for ``paths`` (all of them for ``None``)."""
        if paths is None:
            return self.files
        return tuple(self.file(p) for p in dict.fromkeys(paths))  # once each, in order

    def to_json(self) -> dict[str, Any]:
        return {"files": [entry.to_json() for entry in self.files], "extra": dict(self.extra)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Manifest:
        return cls(tuple(FileEntry.from_json(f) for f in raw.get("files", [])),
                   dict(raw.get("extra", {})))


def hash_stream(stream: BinaryIO, chunk_size: int = DEFAULT_CHUNK_SIZE
                ) -> tuple[int, str, tuple[str, ...]]:
    """Read ``stream`` to its end: ``(size, "sha256:<hex>", per-chunk hex digests)``."""
    whole = hashlib.sha256()
    chunks: list[str] = []
    size = 0
    while True:
        chunk = hashlib.sha256()
        filled = 0
        while filled < chunk_size:
            data = stream.read(min(_READ_SIZE, chunk_size - filled))
            if not data:
                break
            whole.update(data)
            chunk.update(data)
            filled += len(data)
        if filled == 0 and chunks:
            break
        if filled or not chunks:
            chunks.append(chunk.hexdigest())
        size += filled
        if filled < chunk_size:
            break
    return size, "sha256:" + whole.hexdigest(), tuple(chunks)
