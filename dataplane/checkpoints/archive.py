"""The packed layout: a whole checkpoint in one uncompressed zip archive.

On a file system every object is a file, and creating a file costs far more than writing
a small one (on the machines we measured, ~0.3 ms each: 3,000 small tensors are 6,000
files and two seconds before a byte of data); on an object store every object is a
request. So a single-process save is one object, ``checkpoint.zip``, holding exactly the
keys of the folder layout (``zarr.json`` files and chunks) under one folder,
``checkpoint/``: written in place on local disk, staged in a local file and uploaded in
parallel parts on object stores. Zip is the container zarr v3 readers already open: the
URL ``zip://checkpoint::file:///.../checkpoint.zip`` (or ``zip://checkpoint::s3://...``,
zarr-python through fsspec), ``zarr.storage.ZipStore(path)`` with ``path="checkpoint"``,
TensorStore's ``zip`` kvstore.

Entries are *stored* (method 0, no compression), so every entry's size is known before a
byte is written and :class:`ArchivePlan` fixes every offset up front: chunks are written
straight to their place, in any order, from many threads. An entry's CRC-32 (the zip
field) is the chunk checksum the manifest records, so zip readers verify it too. Entries
of 4 GiB or more, archives past 4 GiB and more than 65,535 entries use the zip64
extensions, as the format requires.
"""

from __future__ import annotations

import copy
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

__all__ = ["ARCHIVE", "ROOT", "ArchivePlan", "PlannedEntry"]

ARCHIVE = "checkpoint.zip"
#: The folder inside the archive that holds the zarr group. A root folder, not the
#: archive's top level: zarr-python's FsspecStore lists nested groups of a zip only below
#: a non-empty path (``zip://checkpoint::file:///.../checkpoint.zip``).
ROOT = "checkpoint"

_LOCAL = struct.Struct("<IHHHHHIIIHH")  # local file header, 30 bytes
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # central directory header, 46 bytes
_END = struct.Struct("<IHHHHIIH")  # end of central directory, 22 bytes
_END64 = struct.Struct("<IQHHIIQQQQ")  # zip64 end of central directory, 56 bytes
_LOCATOR64 = struct.Struct("<IIQI")  # zip64 end of central directory locator, 20 bytes
_MAX32, _MAX16 = 0xFFFFFFFF, 0xFFFF
_VERSION_MADE = (3 << 8) | 45  # Unix, zip spec 4.5
_EXTERNAL_ATTR = (0o100644 << 16)  # a regular file, rw-r--r--


@dataclass(frozen=True)
class PlannedEntry:
    """Where one entry goes: its local header at ``header_offset``, its bytes at
    ``data_offset``."""

    name: str
    size: int
    header_offset: int
    data_offset: int

    @property
    def zip64_size(self) -> bool:
        return self.size >= _MAX32


class ArchivePlan:
    """Every entry's offset, the central directory's, and the archive's total size.

    Call order: build it from every ``(name, size)``; write each entry's data at
    ``entry(name).data_offset`` and :meth:`local_header` at its ``header_offset``; then
    :meth:`central_directory` (given every entry's CRC-32) at ``directory_offset``.
    """

    def __init__(self, entries: Sequence[tuple[str, int]], *, when: datetime | None = None):
        self._dos_time, self._dos_date = _dos_datetime(when or datetime.now())
        self._entries: dict[str, PlannedEntry] = {}
        offset = 0
        for name, size in entries:
            if name in self._entries:
                raise ValueError(f"archive entry {name!r} is planned twice")
            encoded = name.encode("utf-8")
            header = _LOCAL.size + len(encoded) + (20 if size >= _MAX32 else 0)
            self._entries[name] = PlannedEntry(name, size, offset, offset + header)
            offset += header + size
        self.directory_offset = offset
        self._directory_size = sum(_CENTRAL.size + len(e.name.encode("utf-8"))
                                   + len(_central_extra(e)) for e in self._entries.values())
        self.total_size = offset + self._directory_size + len(self._end_records())

    def dated(self, when: datetime) -> ArchivePlan:
        """This plan with every entry dated ``when``: the same offsets, sharing the entries."""
        plan = copy.copy(self)
        plan._dos_time, plan._dos_date = _dos_datetime(when)
        return plan

    def entry(self, name: str) -> PlannedEntry:
        return self._entries[name]

    def __iter__(self) -> Iterator[PlannedEntry]:
        return iter(self._entries.values())

    def local_header(self, name: str, crc: int) -> bytes:
        """The local file header of entry ``name`` whose bytes have CRC-32 ``crc``."""
        entry = self._entries[name]
        encoded = name.encode("utf-8")
        size32 = _MAX32 if entry.zip64_size else entry.size
        extra = struct.pack("<HHQQ", 1, 16, entry.size, entry.size) if entry.zip64_size else b""
        return _LOCAL.pack(0x04034B50, _needed(entry), _flags(encoded, name), 0,
                           self._dos_time, self._dos_date, crc, size32, size32,
                           len(encoded), len(extra)) + encoded + extra

    def central_directory(self, crcs: Mapping[str, int]) -> bytes:
        """The central directory and end records; ``crcs`` holds every entry's CRC-32."""
        parts = []
        for entry in self._entries.values():
            encoded = entry.name.encode("utf-8")
            extra = _central_extra(entry)
            size32 = _MAX32 if entry.zip64_size else entry.size
            offset32 = min(entry.header_offset, _MAX32)
            parts.append(_CENTRAL.pack(
                0x02014B50, _VERSION_MADE, _needed(entry), _flags(encoded, entry.name), 0,
                self._dos_time, self._dos_date, crcs[entry.name], size32, size32,
                len(encoded), len(extra), 0, 0, 0, _EXTERNAL_ATTR, offset32) + encoded + extra)
        parts.append(self._end_records())
        return b"".join(parts)

    def _end_records(self) -> bytes:
        count, size, start = len(self._entries), self._directory_size, self.directory_offset
        end = _END.pack(0x06054B50, 0, 0, min(count, _MAX16), min(count, _MAX16),
                        min(size, _MAX32), min(start, _MAX32), 0)
        if count < _MAX16 and size < _MAX32 and start < _MAX32:
            return end
        end64_offset = start + size
        return (_END64.pack(0x06064B50, _END64.size - 12, 45, 45, 0, 0, count, count, size,
                            start)
                + _LOCATOR64.pack(0x07064B50, 0, end64_offset, 1) + end)


def _central_extra(entry: PlannedEntry) -> bytes:
    """The zip64 extra field of a central directory header: the sizes, then the offset,
    each only where its 32-bit field overflowed (in that order, as the spec says)."""
    values = [entry.size, entry.size] if entry.zip64_size else []
    if entry.header_offset >= _MAX32:
        values.append(entry.header_offset)
    if not values:
        return b""
    return struct.pack(f"<HH{len(values)}Q", 1, 8 * len(values), *values)


def _needed(entry: PlannedEntry) -> int:
    return 45 if entry.zip64_size or entry.header_offset >= _MAX32 else 20


def _flags(encoded: bytes, name: str) -> int:
    return 0x800 if len(encoded) != len(name) else 0  # bit 11: the name is UTF-8


def _dos_datetime(when: datetime) -> tuple[int, int]:
    year = min(max(when.year, 1980), 2107)
    time = (when.hour << 11) | (when.minute << 5) | (when.second // 2)
    date = ((year - 1980) << 9) | (when.month << 5) | when.day
    return time, date
