"""Training checkpoints: parallel chunked zarr v3 I/O, crash-safe commit, verified loads."""

from .io import IOSettings
from .shard import Shard
from .store import Checkpoint, CheckpointStore, Retention, SaveHandle

__all__ = ["Checkpoint", "CheckpointStore", "IOSettings", "Retention", "SaveHandle", "Shard"]
