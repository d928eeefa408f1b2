"""One run of a plan at a time: a lease in the plan's journal row, renewed by a heartbeat.

:func:`hold` takes the lease in one write transaction (``BEGIN IMMEDIATE`` on SQLite,
``SELECT ... FOR UPDATE`` on PostgreSQL), renews it every ``LEASE_S / 4`` seconds from a
daemon thread while the block runs, and releases it at the end. A lease held by someone
else is refused with :class:`~dataplane.errors.ConflictError` naming the holder, unless
it has expired, or its holder is a process on this host that no longer exists (a run
killed with ``kill -9`` does not block its own resumption for a whole lease period).
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import Connection, select, update

from ..catalog.engine import CatalogDatabase
from ..catalog.schema import migrations, utcnow
from ..errors import ConflictError, NotFoundError

__all__ = ["LEASE_S", "Lease", "hold", "stale"]

LEASE_S = 30.0


class Lease:
    """A held lease; ``lost`` is set when a renewal finds it taken by someone else."""

    def __init__(self, db: CatalogDatabase, plan_id: str):
        self.db = db
        self.plan_id = plan_id
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lost = threading.Event()
        self._stop = threading.Event()

    def acquire(self) -> None:
        with self.db.write() as conn:
            row = conn.execute(select(migrations.c.lease_owner, migrations.c.lease_until)
                               .where(migrations.c.id == self.plan_id).with_for_update()).first()
            if row is None:
                raise NotFoundError(f"no migration plan {self.plan_id!r}")
            if row.lease_owner and not stale(row.lease_owner, row.lease_until):
                raise ConflictError(
                    f"migration {self.plan_id} is already running (held by {row.lease_owner} "
                    f"until {row.lease_until:%H:%M:%S} UTC); wait for it to finish, or stop it")
            self._write(conn)

    def renew(self) -> bool:
        with self.db.write() as conn:
            owner = conn.execute(select(migrations.c.lease_owner)
                                 .where(migrations.c.id == self.plan_id)).scalar()
            if owner != self.owner:
                return False
            self._write(conn)
            return True

    def release(self) -> None:
        with self.db.write() as conn:
            conn.execute(update(migrations).where(migrations.c.id == self.plan_id,
                                                  migrations.c.lease_owner == self.owner)
                         .values(lease_owner=None, lease_until=None))

    def heartbeat(self) -> None:
        while not self._stop.wait(LEASE_S / 4):
            try:
                if not self.renew():
                    self.lost.set()
                    return
            except Exception:  # a catalog hiccup: try again at the next beat
                continue

    def stop(self) -> None:
        self._stop.set()

    def _write(self, conn: Connection) -> None:
        until = utcnow() + timedelta(seconds=LEASE_S)
        conn.execute(update(migrations).where(migrations.c.id == self.plan_id)
                     .values(lease_owner=self.owner, lease_until=until))


def stale(owner: str, until: datetime | None) -> bool:
    """Whether a lease may be taken over: expired, or its holder died on this host."""
    if until is None or until <= utcnow():
        return True
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@contextmanager
def hold(db: CatalogDatabase, plan_id: str) -> Iterator[Lease]:
    """Hold the plan's lease for the block (see the module docstring)."""
    lease = Lease(db, plan_id)
    lease.acquire()
    beat = threading.Thread(target=lease.heartbeat, name=f"dp-migrate-lease-{plan_id}",
                            daemon=True)
    beat.start()
    try:
        yield lease
    finally:
        lease.stop()
        beat.join(timeout=5)
        lease.release()
