"""Helpers shared by the dataset tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from dataplane import DataPlane, NotFoundError
from dataplane.testing.servers import Endpoint, create_s3_bucket, s3_options


def plane_config(tmp_path: Path, backend: str, s3: Endpoint | None) -> dict[str, Any]:
    """A plane whose default backend is ``backend`` ("local" or "s3"), all under tmp_path."""
    backends: dict[str, Any] = {"local": {"url": f"file://{tmp_path / 'blobs'}"}}
    if backend == "s3":
        assert s3 is not None
        bucket = create_s3_bucket(s3.endpoint_url)
        backends["s3"] = {"url": f"s3://{bucket}/root", **s3_options(s3.endpoint_url)}
    return {
        "catalog": {"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        "defaults": {"backend": backend},
        "backends": backends,
        "cache": {"dir": str(tmp_path / "cache")},
    }


def make_table(rows: int, *, start: int = 0, seed: int = 0) -> pa.Table:
    """``id`` (unique), ``group`` (4 values, one with a slash, some nulls), ``day``, ``x``."""
    rng = np.random.default_rng(seed)
    ids = np.arange(start, start + rows)
    groups = pa.array([["a", "b/c", None, "d"][i % 4] for i in range(rows)], pa.string())
    return pa.table({"id": ids, "group": groups, "day": (ids % 3).astype(np.int32),
                     "x": rng.random(rows)})


def sorted_by_id(table: pa.Table) -> pa.Table:
    return table.sort_by("id").combine_chunks()


def stored_keys(plane: DataPlane, name: str) -> list[str]:
    """Every object under ``name``'s prefix on the default backend."""
    store = plane.store(plane.config.default_backend)
    return sorted(info.key for info in store.list(plane.datasets.prefix(name) + "/"))


def partial_entries(plane: DataPlane) -> list[Path]:
    """What is left in the node cache's ``partial/`` folder (write temp files go there)."""
    return list((plane.cache.root / "partial").iterdir())


def version_numbers(plane: DataPlane, name: str) -> list[int]:
    """The committed versions of ``name`` ([] when the name was never committed)."""
    try:
        return [v.version for v in plane.datasets.versions(name)]
    except NotFoundError:
        return []
