"""Garbage collection: delete stored objects that no live version references.

An object under ``<tenant>/<kind>/<name>/objects/`` is garbage when no version that is
not tombstoned lists its key, and it is older than the grace period. The grace period
protects publishes in flight: their objects are uploaded before the commit that will
reference them. So a publish killed at any point leaves only objects this finds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..blob import ObjectInfo
from .store import age_seconds

if TYPE_CHECKING:
    from ..facade import DataPlane

__all__ = ["GcReport", "collect_garbage"]

_OBJECT_KEY = re.compile(r".+/objects/[0-9a-f]{64}")


@dataclass
class GcReport:
    """What a GC run found (and, unless it was a dry run, deleted)."""

    dry_run: bool
    objects: list[tuple[str, ObjectInfo]] = field(default_factory=list)  # (backend, info)

    @property
    def bytes(self) -> int:
        return sum(info.size for _, info in self.objects)


def referenced_keys(plane: DataPlane, kind: str) -> set[str]:
    """Every object key that a live (not tombstoned) version of ``kind`` lists."""
    keys: set[str] = set()
    for name in plane.catalog.names(plane.tenant, kind):
        for record in plane.catalog.versions(plane.tenant, kind, name.name):
            keys.update(f["key"] for f in record.manifest.get("files", []))
    return keys


def collect_garbage(plane: DataPlane, kinds: tuple[str, ...], *, grace_period_s: float,
                    dry_run: bool) -> GcReport:
    """Find (and unless ``dry_run``, delete) unreferenced objects older than the grace."""
    report = GcReport(dry_run)
    for kind in kinds:
        live = referenced_keys(plane, kind)
        for backend in plane.config.backends:
            store = plane.store(backend)
            for info in store.list(f"{plane.tenant}/{kind}/"):
                if (_OBJECT_KEY.fullmatch(info.key) and info.key not in live
                        and age_seconds(info.modified) >= grace_period_s):
                    report.objects.append((backend, info))
    if not dry_run:
        for backend, info in report.objects:
            plane.store(backend).delete(info.key)
    return report
