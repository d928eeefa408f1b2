"""``dataplane migrate``: move versions between backends without breaking consumers.

A migration is a plan, then a resumable state machine: plan -> copy -> verify -> flip
-> drain (old copies kept for a grace period) -> cleanup, with rollback possible until
cleanup. Every step is journaled in the catalog, so an interrupted run resumes where it
stopped and never copies an object it already verified. Modules:

- :mod:`.selectors` what to move; :mod:`.planner` checks and records a plan;
- :mod:`.journal` the durable state; :mod:`.lock` one run of a plan at a time;
- :mod:`.objects` a version's objects and their recorded digests; :mod:`.copier` how one
  object moves; :mod:`.executor` the bounded parallel copy;
- :mod:`.flip` location switches and the route redirect; :mod:`.verify` re-checks;
  :mod:`.cleanup` drops draining copies; :mod:`.catalog_move` SQLite -> PostgreSQL;
- :mod:`.api` ``plane.migrate``.
"""

from .api import Migrations, PlanStatus, RunObserver, RunReport
from .cleanup import CleanupReport
from .executor import Outcome, RunSettings
from .planner import PlanSummary
from .selectors import Selector, parse_selectors
from .verify import VerifyReport

__all__ = [
    "CleanupReport",
    "Migrations",
    "Outcome",
    "PlanStatus",
    "PlanSummary",
    "RunObserver",
    "RunReport",
    "RunSettings",
    "Selector",
    "VerifyReport",
    "parse_selectors",
]
