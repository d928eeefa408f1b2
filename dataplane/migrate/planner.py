"""Making a plan: select versions, list their objects, check the destination, record it.

:func:`make_plan` changes nothing until every check has passed: the backends exist and
differ, the selection is not empty, and the destination accepts a write (a probe object
is written and deleted, so an unreachable endpoint or missing permission is reported
now, not half-way through a run). Only then is the plan written to the journal.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..blob import BlobStore
from ..catalog import VersionRecord
from ..catalog.schema import utcnow
from ..errors import ConfigError
from ..identity import current_actor
from .journal import Journal, PlanRecord
from .objects import PlannedObject, objects_of
from .selectors import Selector, require_some, select_versions

if TYPE_CHECKING:
    from ..facade import DataPlane

__all__ = ["DEFAULT_GRACE_S", "PlanSummary", "make_plan", "preflight", "refresh"]

DEFAULT_GRACE_S = 24 * 3600.0
DEFAULT_RATE_BPS = 100e6  # until a finished run to the same destination says better
PER_OBJECT_S = 0.002


@dataclass(frozen=True)
class PlanSummary:
    """What a plan would move, as ``migrate plan`` prints it."""

    plan_id: str
    source: str | None
    destination: str
    selector: str
    versions: dict[str, int] = field(default_factory=dict)  # kind -> count
    objects: int = 0
    bytes: int = 0
    estimated_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"plan_id": self.plan_id, "source": self.source,
                "destination": self.destination, "selector": self.selector,
                "versions": dict(self.versions), "objects": self.objects, "bytes": self.bytes,
                "estimated_s": round(self.estimated_s, 1)}


def make_plan(plane: DataPlane, destination: str, selector: Selector, *,
              source: str | None = None, grace_s: float = DEFAULT_GRACE_S) -> PlanSummary:
    """Check everything, then record a new plan; returns what it will move."""
    target = _check_backends(plane, destination, source)
    if grace_s < 0:
        raise ConfigError("the grace period must be zero or more seconds")
    selected = select_versions(plane, selector, source, destination)
    require_some(selected, selector, source, destination)
    preflight(target, selector.tenant or plane.tenant)
    entries = [(record, origin, objects_of(record, plane.store(origin)))
               for record, origin in selected]
    at = utcnow()
    plan = PlanRecord(f"m-{at:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}",
                      selector.tenant or plane.tenant, source, destination,
                      selector.to_json(), "planned", grace_s, at, current_actor(), at, None,
                      None, {}, None)
    journal = Journal.create(plane.catalog.database, plan)
    journal.add_versions(entries)
    return summarize(plane, plan, entries)


def summarize(plane: DataPlane, plan: PlanRecord,
              entries: list[tuple[VersionRecord, str, list[PlannedObject]]]) -> PlanSummary:
    kinds: dict[str, int] = {}
    unique: dict[str, int] = {}
    for record, _origin, objects in entries:
        kinds[record.kind] = kinds.get(record.kind, 0) + 1
        unique.update((o.key, o.size) for o in objects)
    size = sum(unique.values())
    estimate = size / _rate(plane, plan.destination) + len(unique) * PER_OBJECT_S
    return PlanSummary(plan.id, plan.source, plan.destination,
                       Selector.from_json(plan.selectors).describe(), kinds, len(unique), size,
                       estimate)


def refresh(plane: DataPlane, journal: Journal, plan: PlanRecord) -> int:
    """Add versions that match the plan but arrived since (writes during the migration)."""
    known = {v.version_id for v in journal.versions()}
    selected = select_versions(plane, Selector.from_json(plan.selectors), plan.source,
                               plan.destination)
    fresh = [(r, o, objects_of(r, plane.store(o))) for r, o in selected if r.id not in known]
    return journal.add_versions(fresh) if fresh else 0


def preflight(target: BlobStore, tenant: str) -> None:
    """Write and delete a probe object: raises if the destination cannot take writes."""
    probe = f"{tenant}/_dataplane-migrate-probe/{uuid.uuid4().hex}"
    target.put(probe, b"dataplane migrate probe")
    target.delete(probe)


def _check_backends(plane: DataPlane, destination: str, source: str | None) -> BlobStore:
    if source is not None:
        plane.store(source)  # UnknownBackendError naming the configured ones
        if source == destination:
            raise ConfigError(f"source and destination are both {destination!r}")
    return plane.store(destination)


def _rate(plane: DataPlane, destination: str) -> float:
    rates = [float(p.stats["rate_bps"]) for p in Journal.plans(plane.catalog.database)
             if p.destination == destination and p.stats.get("rate_bps")]
    return rates[-1] if rates else DEFAULT_RATE_BPS
