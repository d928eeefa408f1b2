"""The blob port (the byte-level interface) and the registry that finds adapters by scheme."""

from .port import (
    BlobStore,
    ByteRequest,
    Capabilities,
    ListPage,
    ObjectInfo,
    OffsetRequest,
    PositionalWriter,
    RangeRequest,
    SuffixRequest,
    WriteBatch,
)
from .reader import PositionalReader
from .registry import known_schemes, open_store, register_adapter

__all__ = [
    "BlobStore",
    "ByteRequest",
    "Capabilities",
    "ListPage",
    "ObjectInfo",
    "OffsetRequest",
    "PositionalReader",
    "PositionalWriter",
    "RangeRequest",
    "SuffixRequest",
    "WriteBatch",
    "known_schemes",
    "open_store",
    "register_adapter",
]
