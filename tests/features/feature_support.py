"""Helpers the feature tests share: a config mapping under one folder, a plane factory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dataplane
from dataplane import DataPlane


def plane_config(root: Path, **features: Any) -> dict[str, Any]:
    """A config mapping with everything under ``root`` and the given ``[features]``."""
    return {
        "catalog": {"url": f"sqlite:///{root / 'catalog.db'}"},
        "backends": {"local": {"url": f"file://{root / 'blobs'}", "fsync": False}},
        "cache": {"dir": str(root / "cache")},
        "features": {"dir": str(root / "features"), **features},
    }


def factory(tmp_path: Path, **features: Any) -> Callable[[str], DataPlane]:
    def make(project: str) -> DataPlane:
        return dataplane.connect(plane_config(tmp_path / project, project=project,
                                              **features))
    return make
