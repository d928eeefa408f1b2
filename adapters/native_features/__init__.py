"""The native feature adapter: pyarrow point-in-time joins offline, SQLite (embedded
default) or Redis online. Selected with ``[features] adapter = "native"``."""

from .backend import NativeFeatureBackend

__all__ = ["NativeFeatureBackend"]
