"""Deleting the copies a migration left behind, once the grace period has passed.

For a flipped version the source copy is deleted; for a rolled-back one, the destination
copy (cleanup always removes the side that is no longer active). A version is cleaned
only when ``grace_s`` seconds have passed since it was moved, so a reader that resolved
it before the move can still finish. Then, in this order: its objects are deleted from
the draining backend — except objects that another live version still keeps there
(content-addressed model and dataset files are shared between versions of one name) —
and its location there is marked ``deleted``. A version whose cleanup fails stays
``flipped`` and is retried by the next cleanup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..catalog.schema import utcnow
from ..errors import DataplaneError
from ..identity import current_actor
from .journal import Journal, PlanRecord, VersionRow

if TYPE_CHECKING:
    from ..facade import DataPlane

__all__ = ["CleanupReport", "clean"]


@dataclass
class CleanupReport:
    """What a cleanup removed, and what it left for later (and why)."""

    versions: int = 0
    objects: int = 0
    kept_shared: int = 0
    waiting: list[tuple[str, float]] = field(default_factory=list)  # (address, seconds left)
    errors: list[str] = field(default_factory=list)


def clean(plane: DataPlane, journal: Journal, plan: PlanRecord,
          grace_s: float | None = None) -> CleanupReport:
    """Clean every moved version of ``plan`` whose grace period is over."""
    grace = plan.grace_s if grace_s is None else grace_s
    report = CleanupReport()
    now = utcnow()
    due: list[tuple[VersionRow, str]] = []
    for version in journal.versions():
        side = _draining_side(version, plan)
        if side is None:
            continue
        left = grace - (now - (version.flipped_at or now)).total_seconds()
        if left > 0:
            report.waiting.append((_address(plan, version), left))
        else:
            due.append((version, side))
    cleaning = {v.version_id for v, _ in due}
    deleted: set[tuple[str, str]] = set()
    for version, side in due:
        try:
            _clean_one(plane, journal, plan, version, side, cleaning, deleted, report)
        except DataplaneError as error:
            report.errors.append(f"{_address(plan, version)}: {error}")
    return report


def _draining_side(version: VersionRow, plan: PlanRecord) -> str | None:
    if version.state == "flipped":
        return version.source
    if version.state == "rolled_back":
        return plan.destination
    return None


def _clean_one(plane: DataPlane, journal: Journal, plan: PlanRecord, version: VersionRow,
               side: str, cleaning: set[int], deleted: set[tuple[str, str]],
               report: CleanupReport) -> None:
    keep = _kept_by_others(plane, plan.tenant, version, side, cleaning)
    store = plane.store(side)
    for key in version.keys:
        if (side, key) in deleted:
            continue  # seen for an earlier version of this cleanup
        deleted.add((side, key))
        if key in keep:
            report.kept_shared += 1
        else:
            store.delete(key)
            report.objects += 1
    plane.catalog.set_location_state(version.version_id, side, "deleted", actor=current_actor())
    journal.set_version(version.version_id, "cleaned")
    report.versions += 1


def _kept_by_others(plane: DataPlane, tenant: str, version: VersionRow, side: str,
                    cleaning: set[int]) -> set[str]:
    """Keys of ``version`` that another live version still has on ``side``."""
    keep: set[str] = set()
    for other in plane.catalog.versions(tenant, version.kind, version.name):
        if other.id in cleaning or other.id == version.version_id:
            continue
        if any(loc.backend == side and loc.state in ("active", "draining")
               for loc in other.locations):
            keep.update(f["key"] for f in other.manifest.get("files", []))
    return keep


def _address(plan: PlanRecord, version: VersionRow) -> str:
    return f"dp://{plan.tenant}/{version.kind}/{version.name}@{version.number}"
