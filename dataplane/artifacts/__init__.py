"""What models and datasets share: manifests, verified transfers, versions, GC."""

from .gc import GcReport, collect_garbage
from .manifest import FileEntry, Manifest
from .store import ArtifactStore, FileInfo, Version

__all__ = [
    "ArtifactStore",
    "FileEntry",
    "FileInfo",
    "GcReport",
    "Manifest",
    "Version",
    "collect_garbage",
]
