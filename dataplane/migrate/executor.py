"""Copying a plan's objects: bounded parallelism, batched journal writes, faults isolated.

Call order inside :meth:`Executor.run`:

1. list the destination once per version prefix (in parallel): an object already there
   with the right size, or one a killed run left ``copying``, is *checked* first and
   copied only if the check fails;
2. mark the next batch ``copying`` in one journal transaction, then hand it to the pool
   (at most ``2 x workers`` objects are dispatched and not yet finished, so the journal
   never claims far more copies than were started);
3. each worker copies (:class:`~.copier.Copier`), then reads the copy back and checks it
   against the recorded digest; on a mismatch the source is checked (a damaged source
   fails the object, and the bad copy is deleted), else it is copied once more, then
   reported;
4. a writer thread stores outcomes in batches (every ``flush_s`` or ``batch`` outcomes);
   an object is ``verified`` in the journal only after its check passed.

A failing object (permission denied, missing at the source, still unavailable after the
port's retries, corrupt) is recorded ``failed`` with its error and the others go on.
Ctrl-C or a lost lease stops dispatching; finished outcomes are still written.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from ..blob import BlobStore
from ..errors import DataplaneError
from .copier import MISSING, ByteBudget, Copier, describe_error, spool_dir
from .journal import Journal, ObjectRow

__all__ = ["Executor", "Outcome", "RunSettings"]


@dataclass(frozen=True)
class RunSettings:
    """How hard a run works: parallel objects, memory in flight, journal batching."""

    workers: int = 8
    inline_bytes: int = 64 * 2**20
    max_inflight_bytes: int = 512 * 2**20
    batch: int = 256
    flush_s: float = 0.25
    spool_dir: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What happened to one object in this run."""

    key: str
    state: str  # verified | failed
    error: str | None
    expected: dict[str, object]
    size: int
    copied: bool


@dataclass
class Totals:
    """Counts of this run, for ``status`` and the CLI's summary."""

    verified: int = 0
    failed: int = 0
    copied: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        if outcome.state == "verified":
            self.verified += 1
            self.bytes += outcome.size if outcome.copied else 0
            self.copied += int(outcome.copied)
        else:
            self.failed += 1
            if len(self.errors) < 20:
                self.errors.append(f"{outcome.key}: {outcome.error}")


Progress = Callable[[Outcome], None]


class Executor:
    """Runs the object copies of one plan against ``target`` (see the module docstring)."""

    def __init__(self, journal: Journal, stores: Callable[[str], BlobStore], target: BlobStore,
                 settings: RunSettings, progress: Progress | None = None,
                 stop: threading.Event | None = None):
        self.journal = journal
        self.stores = stores
        self.target = target
        self.settings = settings
        self.progress = progress or (lambda outcome: None)
        self.stop = stop or threading.Event()
        self.budget = ByteBudget(settings.max_inflight_bytes)
        self._outcomes: queue.Queue[Outcome | None] = queue.Queue()
        self._writer_error: BaseException | None = None
        self.totals = Totals()

    def run(self, rows: Sequence[ObjectRow], prefixes: Sequence[str]) -> Totals:
        """Copy and verify ``rows``; returns this run's totals."""
        present = self._listed(prefixes)
        check_first = [r for r in rows if r.state == "copying" or present.get(r.key) == r.size]
        checked = {r.key for r in check_first}
        fresh = [r for r in rows if r.key not in checked]
        writer = threading.Thread(target=self._write_outcomes, name="dp-migrate-journal")
        writer.start()
        try:
            with spool_dir(self.settings.spool_dir) as spool:
                copiers: dict[str, Copier] = {}

                def copier(source: str) -> Copier:
                    if source not in copiers:
                        copiers[source] = Copier(self.stores(source), self.target, spool,
                                                 inline_bytes=self.settings.inline_bytes,
                                                 budget=self.budget)
                    return copiers[source]

                self._dispatch(check_first, fresh, copier)
        finally:
            self._outcomes.put(None)
            writer.join()
        if self._writer_error is not None:
            raise self._writer_error
        return self.totals

    def _listed(self, prefixes: Sequence[str]) -> dict[str, int]:
        def listing(prefix: str) -> list[tuple[str, int]]:
            return [(info.key, info.size) for info in self.target.list(prefix)]

        found: dict[str, int] = {}
        with ThreadPoolExecutor(self.settings.workers, thread_name_prefix="dp-list") as pool:
            for page in pool.map(listing, sorted(set(prefixes))):
                found.update(page)
        return found

    def _dispatch(self, check_first: Sequence[ObjectRow], fresh: Sequence[ObjectRow],
                  copier: Callable[[str], Copier]) -> None:
        slots = threading.Semaphore(2 * self.settings.workers)
        futures: list[Future[None]] = []
        with ThreadPoolExecutor(self.settings.workers, thread_name_prefix="dp-migrate") as pool:
            def submit(row: ObjectRow, verify_first: bool) -> None:
                future = pool.submit(self._one, copier(row.source), row, verify_first)
                future.add_done_callback(lambda _: slots.release())
                futures.append(future)

            try:
                for row in check_first:
                    if self.stop.is_set():
                        return
                    slots.acquire()
                    submit(row, True)
                for start in range(0, len(fresh), self.settings.workers):
                    batch = fresh[start:start + self.settings.workers]
                    for _ in batch:  # room for the whole batch first: the mark is just in time
                        slots.acquire()
                    if self.stop.is_set():
                        return
                    self.journal.mark_copying([row.key for row in batch])
                    for row in batch:
                        submit(row, False)
            except BaseException:
                self.stop.set()
                for future in futures:
                    future.cancel()
                raise

    def _one(self, copier: Copier, row: ObjectRow, verify_first: bool) -> None:
        if self.stop.is_set():
            return
        try:
            outcome = self._move(copier, row, verify_first)
        except DataplaneError as error:
            outcome = Outcome(row.key, "failed", describe_error(error), row.expected, row.size,
                              False)
        except Exception as error:  # a bug or an untranslated fault: report, go on
            outcome = Outcome(row.key, "failed", describe_error(error), row.expected, row.size,
                              False)
        self._outcomes.put(outcome)

    def _move(self, copier: Copier, row: ObjectRow, verify_first: bool) -> Outcome:
        expected = row.expected
        if verify_first:
            expected = copier.complete(row.key, expected)
            if copier.check_existing(row.key, row.size, expected) is None:
                return Outcome(row.key, "verified", None, expected, row.size, False)
            self.journal.mark_copying([row.key])
        problem: str | None = None
        for attempt in range(2):
            if attempt:
                self.journal.mark_copying([row.key])  # the one re-copy of a mismatch
            expected, proven = copier.copy(row.key, row.size, expected)
            problem = None if proven else copier.check(row.key, row.size, expected)
            if problem is None:
                return Outcome(row.key, "verified", None, expected, row.size, True)
            if not attempt:  # the source itself may be what is damaged: never spread it
                copier.check_source(row.key, row.size, expected)
        what = "missing at the destination after the copy" if problem == MISSING else \
            f"differs at the destination after 2 copies: {problem}"
        return Outcome(row.key, "failed", what, expected, row.size, True)

    def _write_outcomes(self) -> None:
        pending: list[Outcome] = []
        last = time.monotonic()
        done = False
        while not done:
            try:
                item = self._outcomes.get(timeout=self.settings.flush_s)
                done = item is None
                if item is not None:
                    pending.append(item)
            except queue.Empty:
                pass
            due = time.monotonic() - last >= self.settings.flush_s
            if pending and (done or due or len(pending) >= self.settings.batch):
                try:
                    self._flush(pending)
                except BaseException as error:  # the journal is unusable: stop the run
                    self._writer_error = error
                    self.stop.set()
                pending, last = [], time.monotonic()

    def _flush(self, outcomes: list[Outcome]) -> None:
        self.journal.record([(o.key, o.state, o.error, dict(o.expected)) for o in outcomes])
        for outcome in outcomes:
            self.totals.add(outcome)
            self.progress(outcome)
