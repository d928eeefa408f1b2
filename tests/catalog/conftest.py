"""Fixtures: every catalog test runs against SQLite (a file) and a real PostgreSQL.

PostgreSQL: one fresh database per session (``dp_test_<hex>``, dropped at the end); each
test starts from an empty ``public`` schema. The server is found at
``postgresql://postgres@127.0.0.1:5432/postgres`` unless ``DATAPLANE_TEST_POSTGRES_URL``
says otherwise. When it is unreachable the PostgreSQL cases skip, or fail when ``CI`` is
set.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from dataplane.catalog import Catalog, open_catalog
from dataplane.catalog.engine import mask_url
from dataplane.testing.servers import service_missing

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DIALECTS = ["sqlite", "postgresql"]


def _server_url() -> str:
    return os.environ.get("DATAPLANE_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def _connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


def _database_url(server_url: str, database: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(server_url)
    user = info.get("user") or "postgres"
    password = f":{info['password']}" if info.get("password") else ""
    host, port = info.get("host") or "127.0.0.1", info.get("port") or "5432"
    return f"postgresql+psycopg://{user}{password}@{host}:{port}/{database}"


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[tuple[str, str]]:
    """A fresh database for the session: (psycopg conninfo URL, SQLAlchemy URL)."""
    server_url = _server_url()
    try:
        admin = _connect(server_url)
    except psycopg.OperationalError as error:
        reason = f"PostgreSQL at {mask_url(server_url)} is unreachable: {error}".strip()
        service_missing(reason)
    database = f"dp_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    try:
        conninfo = psycopg.conninfo.make_conninfo(server_url, dbname=database)
        yield conninfo, _database_url(server_url, database)
    finally:
        with _connect(server_url) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )


def reset_postgres(conninfo: str) -> None:
    """Drop every table (and anything else) in the test database's public schema."""
    with _connect(conninfo) as conn:
        conn.execute("SET lock_timeout = '10s'")
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


@pytest.fixture(params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    """``"sqlite"`` or ``"postgresql"``."""
    return str(request.param)


@pytest.fixture
def postgres_url(postgres_database: tuple[str, str]) -> str:
    """The SQLAlchemy URL of the session's PostgreSQL database, emptied for this test."""
    conninfo, url = postgres_database
    reset_postgres(conninfo)
    return url


@pytest.fixture
def catalog_url(request: pytest.FixtureRequest, dialect: str, tmp_path: Path) -> str:
    """The URL of an empty catalog database of the test's dialect."""
    if dialect == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog' / 'catalog.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def raw_sql(
    request: pytest.FixtureRequest, dialect: str, catalog_url: str
) -> Callable[[str], None]:
    """Run a multi-statement SQL script against the empty test database, outside dataplane."""

    def run(script: str) -> None:
        if dialect == "sqlite":
            import sqlite3

            path = catalog_url.removeprefix("sqlite:///")
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with sqlite3.connect(path) as conn:
                conn.executescript(script)
            conn.close()
        else:
            conninfo, _url = request.getfixturevalue("postgres_database")
            with _connect(conninfo) as conn:
                conn.execute(script.encode())  # a whole script: no parameters, many statements

    return run


@pytest.fixture
def open_catalogs() -> Iterator[Callable[[str], Catalog]]:
    """``open_catalog`` that closes every catalog it opened when the test ends."""
    opened: list[Catalog] = []

    def opener(url: str) -> Catalog:
        catalog = open_catalog(url)
        opened.append(catalog)
        return catalog

    yield opener
    for catalog in opened:
        catalog.close()


@pytest.fixture
def catalog(catalog_url: str, open_catalogs: Callable[[str], Catalog]) -> Catalog:
    """A fresh, empty catalog of the test's dialect."""
    return open_catalogs(catalog_url)
