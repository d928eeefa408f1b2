"""Re-checking a plan's destination copies against the digests recorded at write time.

Every object of the plan is read back from the destination (in parallel, memory-bounded)
and sorted into matched, missing or differing, like ``rclone check --combined``; the
combined listing marks each key with ``=`` (matched), ``-`` (missing at the
destination), ``*`` (differing) or ``!`` (could not be checked, with the error). The
counts are stored with the plan (``status`` shows the last report), and every object
found missing or differing goes back to ``pending`` in the journal, so the next ``run``
copies it again.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..catalog.schema import utcnow
from ..errors import DataplaneError
from .copier import MISSING, ByteBudget, Copier, describe_error, spool_dir
from .executor import RunSettings
from .journal import Journal, ObjectRow, PlanRecord

if TYPE_CHECKING:
    from ..facade import DataPlane

__all__ = ["VerifyReport", "verify_plan"]


@dataclass
class VerifyReport:
    """The outcome of one verification of a plan's destination."""

    plan_id: str
    matched: int = 0
    missing: int = 0
    differing: int = 0
    errors: int = 0
    lines: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.missing == self.differing == self.errors == 0

    def to_json(self) -> dict[str, Any]:
        return {"plan_id": self.plan_id, "matched": self.matched, "missing": self.missing,
                "differing": self.differing, "errors": self.errors, "clean": self.clean,
                "checked_at": utcnow().isoformat()}


def verify_plan(plane: DataPlane, journal: Journal, plan: PlanRecord,
                settings: RunSettings | None = None) -> VerifyReport:
    """Check every object of the plan at the destination and store the counts."""
    settings = settings or RunSettings()
    report = VerifyReport(plan.id)
    target = plane.store(plan.destination)
    budget = ByteBudget(settings.max_inflight_bytes)
    rows = journal.objects()
    with spool_dir(settings.spool_dir) as spool:
        copiers = {source: Copier(plane.store(source), target, spool,
                                  inline_bytes=settings.inline_bytes, budget=budget)
                   for source in {row.source for row in rows}}

        def check(row: ObjectRow) -> tuple[ObjectRow, str, str]:
            try:
                copier = copiers[row.source]
                problem = copier.check(row.key, row.size, copier.complete(row.key, row.expected))
            except DataplaneError as error:
                return row, "!", f"{row.key}: {describe_error(error)}"
            if problem is None:
                return row, "=", row.key
            if problem == MISSING:
                return row, "-", row.key
            return row, "*", f"{row.key}: {problem}"

        again: list[tuple[str, str, str | None, dict[str, Any]]] = []
        with ThreadPoolExecutor(settings.workers, thread_name_prefix="dp-verify") as pool:
            for row, mark, text in pool.map(check, rows):
                _count(report, mark)
                report.lines.append(f"{mark} {text}")
                if mark in "-*" and row.state == "verified":
                    again.append((row.key, "pending", f"verify: {text}", row.expected))
    journal.record(again)
    journal.update(report=report.to_json())
    return report


def _count(report: VerifyReport, mark: str) -> None:
    if mark == "=":
        report.matched += 1
    elif mark == "-":
        report.missing += 1
    elif mark == "*":
        report.differing += 1
    else:
        report.errors += 1
