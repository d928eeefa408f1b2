"""Opening the catalog's database from a URL, and the transactions every call runs in.

Two dialects are served:

- ``sqlite:///path/to/catalog.db`` (the embedded default; the parent folder is created).
  Every connection runs in WAL mode with ``busy_timeout`` 30 s and foreign keys on.
  SQLAlchemy, not the ``sqlite3`` module, emits ``BEGIN``: a write transaction starts with
  ``BEGIN IMMEDIATE``, so it takes the write lock up front and never fails on a lock
  upgrade between processes; a read transaction starts with ``BEGIN DEFERRED`` and, under
  WAL, never waits for writers. ``sqlite://`` (in memory) shares one connection and is
  for single-threaded tests only.
- ``postgresql+psycopg://user:password@host/db`` (``postgresql://`` means the same):
  ``pool_pre_ping`` and a 5 s ``connect_timeout`` unless the URL sets one.

Every message names the URL with its password masked (``user:***@host``). Errors map to
:mod:`dataplane.errors`: a bad or unsupported URL raises
:class:`~dataplane.errors.UnknownBackendError` (a ``ConfigError``), a missing driver
:class:`~dataplane.errors.MissingDependencyError` (with the ``pip install`` hint), an
unreachable or failing database :class:`~dataplane.errors.BackendUnavailableError`, and
a constraint violated by a concurrent writer :class:`~dataplane.errors.ConflictError`.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from ..errors import (
    BackendUnavailableError,
    ConfigError,
    ConflictError,
    MissingDependencyError,
    UnknownBackendError,
)

__all__ = ["CatalogDatabase", "mask_url", "open_database"]

SQLITE_BUSY_TIMEOUT_S = 30
POSTGRES_CONNECT_TIMEOUT_S = 5
POSTGRES_INSTALL_HINT = "pip install 'dataplane[postgres]'"
_WRITE_OPTION = "dataplane_write"
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def mask_url(url: str | URL) -> str:
    """The URL as text with any password replaced by ``***``; never raises."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return _PASSWORD.sub(r"\1***@", str(url))


class CatalogDatabase:
    """An engine plus the transaction helpers the catalog uses; ``url`` is masked.

    Calls happen in this order: :func:`open_database`, any number of :meth:`read` and
    :meth:`write` blocks (from any thread), then :meth:`dispose`.
    """

    def __init__(self, engine: Engine, password: str | None) -> None:
        self.engine = engine
        self.url = mask_url(engine.url)
        self._password = password

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction; it is rolled back at the end of the block."""
        with self.errors(), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed if the block returns, rolled back if it raises.

        On SQLite it begins with ``BEGIN IMMEDIATE`` (the write lock is taken at once).
        """
        with self.errors(), self.engine.connect() as conn:
            conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                yield conn

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Translate SQLAlchemy errors raised in the block into :mod:`dataplane.errors`."""
        try:
            yield
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as error:
            raise BackendUnavailableError(
                f"catalog database {self.url} is unavailable: {self._reason(error)}"
            ) from error
        except sa_exc.IntegrityError as error:
            raise ConflictError(
                f"catalog database {self.url}: a concurrent change conflicted: "
                f"{self._reason(error)}"
            ) from error

    def dispose(self) -> None:
        """Close every pooled connection; the object must not be used afterwards."""
        self.engine.dispose()

    def _reason(self, error: sa_exc.DBAPIError) -> str:
        reason = str(error.orig).strip().splitlines()[0] if str(error.orig).strip() else ""
        reason = reason or type(error.orig).__name__
        if self._password:
            reason = reason.replace(self._password, "***")
        return reason


def open_database(url: str) -> CatalogDatabase:
    """Create the engine for ``url`` (no connection is made yet).

    Raises :class:`~dataplane.errors.UnknownBackendError` for a URL that is not SQLite or
    PostgreSQL via psycopg, :class:`~dataplane.errors.MissingDependencyError` when the
    driver is not installed.
    """
    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(parsed)
    else:
        engine = _postgres_engine(parsed)
    return CatalogDatabase(engine, parsed.password)


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except (sa_exc.ArgumentError, ValueError) as error:
        raise UnknownBackendError(
            f"catalog URL {mask_url(url)!r} is not a database URL: {error}; "
            "use sqlite:///path/to/catalog.db or postgresql+psycopg://user@host/db"
        ) from error
    # Read the scheme as text: asking SQLAlchemy for the driver loads the dialect.
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return parsed
    raise UnknownBackendError(
        f"catalog URL {mask_url(parsed)!r}: unsupported scheme {parsed.drivername!r}; "
        "use sqlite:///path/to/catalog.db or postgresql+psycopg://user@host/db"
    )


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or url.query.get("mode") == "memory"
    kwargs: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    if in_memory:
        kwargs["poolclass"] = StaticPool
        kwargs["connect_args"]["check_same_thread"] = False
    elif not database.startswith("file:"):
        _make_parent(url, database)
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", _sqlite_on_connect(wal=not in_memory))
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _make_parent(url: URL, database: str) -> None:
    try:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"catalog database {mask_url(url)}: cannot create its folder: {error}"
        ) from error


def _sqlite_on_connect(*, wal: bool) -> Callable[[Any, ConnectionPoolEntry], None]:
    def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take BEGIN away from the sqlite3 module; _sqlite_on_begin emits it instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if wal:
                _enter_wal_mode(cursor)
        finally:
            cursor.close()

    return on_connect


def _enter_wal_mode(cursor: Any) -> None:
    """Switch the database to WAL, waiting up to the busy timeout for other writers.

    Changing the journal mode needs an exclusive lock, and SQLite answers ``database is
    locked`` at once, without its busy handler, while another process holds a write
    transaction on a database still in rollback mode (as when several processes open a
    new catalog together and one of them is creating the schema). So wait here instead.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    pause = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) and "busy" not in str(error):
                raise
            if time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)


def _sqlite_on_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")


def _postgres_engine(url: URL) -> Engine:
    connect_args: dict[str, Any] = {"application_name": "dataplane"}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
    try:
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    except ImportError as error:
        raise MissingDependencyError(
            f"catalog URL {mask_url(url)!r} needs the PostgreSQL driver psycopg, which is "
            f"not installed: {POSTGRES_INSTALL_HINT}"
        ) from error
