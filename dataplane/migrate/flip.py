"""Switching versions between backends in the catalog, and the route redirect.

- :func:`flip_ready`: each version whose every object is verified at the destination
  gets its location moved in one catalog transaction (destination ``active``, source
  ``draining``); a version with a failed object is not flipped and names the error.
- :func:`rollback`: the reverse move for every flipped version, and the redirect removed.
  Nothing is deleted: both copies stay until :mod:`.cleanup`.
- :func:`install_redirect`: route overrides so new writes of the moved names go to the
  destination (from the moment a run starts, so nothing new lands on the source).

Readers never see a gap: before a move commits they resolve the source, after it the
destination, and a handle resolved before keeps reading the source, which stays until the
grace period has passed and ``cleanup`` runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..catalog.schema import utcnow
from ..errors import ConflictError, NotFoundError
from ..identity import current_actor
from .journal import Journal, PlanRecord, VersionRow
from .selectors import MIGRATABLE_KINDS, Selector

if TYPE_CHECKING:
    from ..facade import DataPlane

__all__ = ["FlipTotals", "flip_ready", "install_redirect", "is_live", "rollback"]


@dataclass
class FlipTotals:
    """Versions moved, refused (an object failed), skipped (deleted meanwhile), waiting."""

    flipped: int = 0
    failed: int = 0
    skipped: int = 0
    waiting: int = 0


def flip_ready(plane: DataPlane, journal: Journal, plan: PlanRecord) -> FlipTotals:
    """Flip every pending version whose objects are all verified (see the module doc)."""
    states = {row.key: (row.state, row.error) for row in journal.objects()}
    totals = FlipTotals()
    for version in journal.versions():
        if version.state not in ("pending", "failed", "rolled_back"):
            continue
        mine = [states.get(key, ("pending", None)) for key in version.keys]
        failed = [error for state, error in mine if state == "failed"]
        if (failed or all(state == "verified" for state, _ in mine)) and \
                not is_live(plane, plan.tenant, version):
            journal.set_version(version.version_id, "skipped", error="deleted meanwhile")
            totals.skipped += 1
        elif failed:
            journal.set_version(version.version_id, "failed",
                                error=f"{len(failed)} object(s) failed, e.g. {failed[0]}")
            totals.failed += 1
        elif any(state != "verified" for state, _ in mine):
            totals.waiting += 1
        else:
            plane.catalog.move_location(version.version_id, version.source, plan.destination,
                                        version.uri, actor=current_actor())
            journal.set_version(version.version_id, "flipped", flipped_at=utcnow())
            totals.flipped += 1
    return totals


def is_live(plane: DataPlane, tenant: str, version: VersionRow) -> bool:
    """Whether the version still exists and is not tombstoned."""
    try:
        records = plane.catalog.versions(tenant, version.kind, version.name)
    except NotFoundError:
        return False
    return any(r.id == version.version_id for r in records)


def rollback(plane: DataPlane, journal: Journal, plan: PlanRecord) -> int:
    """Move every flipped version back to its source; returns how many moved."""
    versions = journal.versions()
    cleaned = [v for v in versions if v.state == "cleaned"]
    if cleaned:
        raise ConflictError(f"migration {plan.id} cannot be rolled back: cleanup already "
                            f"deleted the source copies of {len(cleaned)} version(s)")
    moved = 0
    for version in versions:
        if version.state != "flipped":
            continue
        plane.catalog.move_location(version.version_id, plan.destination, version.source,
                                    version.uri, actor=current_actor())
        journal.set_version(version.version_id, "rolled_back", flipped_at=utcnow())
        moved += 1
    plane.catalog.remove_route_overrides(plan.id)
    return moved


def install_redirect(plane: DataPlane, plan: PlanRecord, names: list[tuple[str, str]]) -> int:
    """Route new writes of the plan's names to its destination; returns overrides added.

    A selection by name glob and kind redirects those globs (new names included); one
    narrowed by alias or version range redirects the exact names it moves.
    """
    existing = {o.pattern for o in plane.catalog.route_overrides() if o.migration_id == plan.id}
    selector = Selector.from_json(plan.selectors)
    if selector.aliases or selector.first is not None or selector.last is not None:
        patterns = {f"{plan.tenant}/{kind}/{name}" for kind, name in names}
    else:
        patterns = {f"{plan.tenant}/{kind}/{glob}" for kind in selector.kinds or MIGRATABLE_KINDS
                    for glob in selector.names or ("*",)}
    added = 0
    for pattern in sorted(patterns - existing):
        plane.catalog.add_route_override(pattern, plan.destination, from_backend=plan.source,
                                         migration_id=plan.id)
        added += 1
    return added
