"""CRC-32, the checksum of checkpoint chunks (and of zip entries): as fast as we can get it.

The value is the standard CRC-32 (zlib's and zip's polynomial), so it is the same whoever
computes it. ISA-L's implementation (the ``isal`` package, a dependency) runs about five
times faster than zlib's on x86 and releases the GIL; zlib is the fallback where ``isal``
is not installed.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["crc32"]

_crc32: Callable[[bytes | bytearray | memoryview], int]
try:
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover - isal is a dependency; zlib computes the same value
    from zlib import crc32 as _crc32


def crc32(data: bytes | bytearray | memoryview) -> int:
    """The unsigned CRC-32 of ``data`` (any contiguous buffer)."""
    return _crc32(data) & 0xFFFFFFFF
