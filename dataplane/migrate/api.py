"""``plane.migrate``: plan, run, status, verify, rollback and cleanup of migrations.

A migration is a plan, then a resumable state machine::

    planned -> running -> flipped (old copies draining) -> cleaned
                  |  \\-> incomplete (objects failed; run again to retry them)
                  \\----> rolled_back (after a flip; run again to flip again)

Call order: :meth:`Migrations.plan` records what to move; :meth:`Migrations.run`
redirects new writes to the destination, copies and verifies every object, flips each
version whose objects all verified, and picks up versions written meanwhile; it can be
interrupted at any point and run again. :meth:`Migrations.rollback` flips back;
:meth:`Migrations.cleanup` deletes the draining copies once the grace period is over.
One run (or rollback, or cleanup) of a plan at a time: a second is refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..catalog.schema import utcnow
from ..errors import ConflictError
from . import lock
from .cleanup import CleanupReport, clean
from .executor import Executor, Outcome, RunSettings, Totals
from .flip import FlipTotals, flip_ready, install_redirect, rollback
from .journal import Journal, ObjectRow, PlanRecord
from .planner import DEFAULT_GRACE_S, PlanSummary, make_plan, preflight, refresh
from .selectors import Selector, parse_selectors
from .verify import VerifyReport, verify_plan

if TYPE_CHECKING:
    from ..facade import DataPlane

__all__ = ["Migrations", "PlanStatus", "RunObserver", "RunReport"]

MAX_ROUNDS = 5


class RunObserver(Protocol):
    """Receives a run's progress (the CLI draws a progress bar from it)."""

    def started(self, objects: int, nbytes: int) -> None: ...

    def advanced(self, outcome: Outcome) -> None: ...


@dataclass
class RunReport:
    """What one ``run`` did; ``complete`` when every version of the plan is flipped."""

    plan_id: str
    state: str
    copied: int = 0
    verified: int = 0
    failed: int = 0
    bytes: int = 0
    seconds: float = 0.0
    flipped: int = 0
    versions_failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.state == "flipped"

    def to_json(self) -> dict[str, Any]:
        return {"plan_id": self.plan_id, "state": self.state, "complete": self.complete,
                "objects_copied": self.copied, "objects_verified": self.verified,
                "objects_failed": self.failed, "bytes_copied": self.bytes,
                "seconds": round(self.seconds, 3), "versions_flipped": self.flipped,
                "versions_failed": self.versions_failed, "errors": self.errors}


@dataclass(frozen=True)
class PlanStatus:
    """A plan and where it stands, from its journal."""

    plan: PlanRecord
    objects: dict[str, tuple[int, int]]  # state -> (count, bytes)
    versions: dict[str, int]  # state -> count
    errors: list[str]

    @property
    def running(self) -> bool:
        """Whether a live process holds the plan's lease (a killed one does not)."""
        owner = self.plan.lease_owner
        return owner is not None and not lock.stale(owner, self.plan.lease_until)

    def count(self, *states: str) -> int:
        return sum(self.objects.get(s, (0, 0))[0] for s in states)

    def to_json(self) -> dict[str, Any]:
        plan = self.plan
        total = sum(n for n, _ in self.objects.values())
        return {
            "plan_id": plan.id, "state": plan.state, "tenant": plan.tenant,
            "source": plan.source, "destination": plan.destination,
            "selector": Selector.from_json(plan.selectors).describe(),
            "created_at": plan.created_at.isoformat(), "created_by": plan.created_by,
            "grace_s": plan.grace_s, "running": self.running,
            "objects": total, "bytes": sum(b for _, b in self.objects.values()),
            "matched": self.count("verified"), "missing": self.count("pending", "copying"),
            "differing": self.count("failed"), "skipped": self.count("skipped"),
            "bytes_verified": self.objects.get("verified", (0, 0))[1],
            "versions": dict(self.versions), "stats": plan.stats,
            "last_verify": plan.report, "errors": self.errors,
        }


class Migrations:
    """The migrations of one plane (``plane.migrate``); see the module docstring."""

    def __init__(self, plane: DataPlane):
        self.plane = plane

    @property
    def _db(self) -> Any:
        return self.plane.catalog.database

    def journal(self, plan_id: str) -> Journal:
        return Journal(self._db, plan_id)

    # ------------------------------------------------------------------ plan
    def plan(self, to: str, *selectors: str, source: str | None = None,
             selector: Selector | None = None,
             grace_period_s: float = DEFAULT_GRACE_S) -> PlanSummary:
        """Record a plan to move the selected versions to backend ``to``.

        ``selectors`` are command-line words (``models``, ``nlp/*``, ``@prod``,
        ``versions=3..``; see :mod:`.selectors`), or pass a :class:`Selector`.
        """
        chosen = selector or parse_selectors(list(selectors))
        return make_plan(self.plane, to, chosen, source=source, grace_s=grace_period_s)

    def plans(self) -> list[PlanRecord]:
        return Journal.plans(self._db)

    # ------------------------------------------------------------------- run
    def run(self, plan_id: str, *, settings: RunSettings | None = None,
            observer: RunObserver | None = None) -> RunReport:
        """Copy, verify and flip (see the module docstring); safe to run again."""
        journal = self.journal(plan_id)
        journal.plan()  # NotFoundError before taking any lease
        with lock.hold(self._db, plan_id) as lease:
            return self._run(journal, settings or RunSettings(), observer, lease)

    def _run(self, journal: Journal, settings: RunSettings, observer: RunObserver | None,
             lease: lock.Lease) -> RunReport:
        plan = journal.plan()
        if plan.state == "cleaned":
            raise ConflictError(f"migration {plan.id} is finished and cleaned up")
        target = self.plane.store(plan.destination)
        preflight(target, plan.tenant)
        journal.reset_failed()
        journal.set_state("running")
        install_redirect(self.plane, plan, [(v.kind, v.name) for v in journal.versions()])
        started, totals, flips = time.monotonic(), Totals(), FlipTotals()
        for round_number in range(MAX_ROUNDS):
            added = refresh(self.plane, journal, plan)
            rows = journal.objects(states=("pending", "copying"))
            if round_number and not added and not rows:
                break
            if rows:
                if observer is not None:
                    observer.started(len(rows), sum(r.size for r in rows))
                executor = Executor(journal, self.plane.store, target, settings,
                                    observer.advanced if observer else None, lease.lost)
                _merge(totals, executor.run(rows, self._prefixes(journal, rows)))
            _merge_flips(flips, flip_ready(self.plane, journal, plan))
            if lease.lost.is_set():
                break
        return self._finish(journal, totals, flips, time.monotonic() - started)

    def _prefixes(self, journal: Journal, rows: list[ObjectRow]) -> list[str]:
        """Destination prefixes to list for objects already there: on a plan's first
        attempt only (a resumed run checks just the objects it left ``copying``)."""
        if any(row.state != "pending" for row in rows) or "verified" in journal.counts():
            return []
        return sorted({f"{v.uri}/" if v.kind == "checkpoints" else f"{v.uri}/objects/"
                       for v in journal.versions() if v.state in ("pending", "failed")})

    def _finish(self, journal: Journal, totals: Totals, flips: FlipTotals,
                seconds: float) -> RunReport:
        versions = journal.versions()
        done = all(v.state in ("flipped", "skipped", "cleaned") for v in versions)
        state = "flipped" if done else "incomplete"
        plan = journal.plan()
        stats = dict(plan.stats)
        stats.update(runs=int(stats.get("runs", 0)) + 1, last_run_at=utcnow().isoformat(),
                     seconds=round(seconds, 3), bytes_copied=totals.bytes,
                     objects_copied=totals.copied)
        if totals.bytes and seconds > 0:
            stats["rate_bps"] = totals.bytes / seconds
        journal.set_state(state, stats=stats)
        return RunReport(plan.id, state, totals.copied, totals.verified, totals.failed,
                         totals.bytes, seconds, flips.flipped,
                         sum(v.state == "failed" for v in versions), totals.errors)

    # ------------------------------------------------------------- the rest
    def status(self, plan_id: str) -> PlanStatus:
        """Where a plan stands: objects and versions by state, the last errors."""
        journal = self.journal(plan_id)
        plan = journal.plan()
        versions: dict[str, int] = {}
        for version in journal.versions():
            versions[version.state] = versions.get(version.state, 0) + 1
        failed = journal.objects(states=("failed",))[:20]
        return PlanStatus(plan, journal.counts(), versions,
                          [f"{row.key}: {row.error}" for row in failed])

    def verify(self, plan_id: str, *, settings: RunSettings | None = None) -> VerifyReport:
        """Re-read every destination copy and compare it with the recorded digests."""
        journal = self.journal(plan_id)
        return verify_plan(self.plane, journal, journal.plan(), settings)

    def rollback(self, plan_id: str) -> int:
        """Flip every flipped version back to its source; returns how many moved."""
        journal = self.journal(plan_id)
        journal.plan()
        with lock.hold(self._db, plan_id):
            moved = rollback(self.plane, journal, journal.plan())
            journal.set_state("rolled_back")
            return moved

    def cleanup(self, plan_id: str, *, grace_period_s: float | None = None) -> CleanupReport:
        """Delete the draining copies of versions moved at least the grace period ago."""
        journal = self.journal(plan_id)
        journal.plan()
        with lock.hold(self._db, plan_id):
            plan = journal.plan()
            report = clean(self.plane, journal, plan, grace_period_s)
            if all(v.state in ("cleaned", "skipped") for v in journal.versions()):
                journal.set_state("cleaned")
            return report


def _merge(into: Totals, more: Totals) -> None:
    into.verified += more.verified
    into.failed += more.failed
    into.copied += more.copied
    into.bytes += more.bytes
    into.errors.extend(more.errors[: max(0, 20 - len(into.errors))])


def _merge_flips(into: FlipTotals, more: FlipTotals) -> None:
    into.flipped += more.flipped
    into.failed += more.failed
    into.skipped += more.skipped
    into.waiting += more.waiting
