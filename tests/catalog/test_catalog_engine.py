"""Opening catalogs by URL: dialect settings, masked passwords, clear errors."""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from dataplane.catalog import SCHEMA_VERSION, Catalog, open_catalog
from dataplane.catalog.engine import mask_url, open_database
from dataplane.errors import (
    BackendUnavailableError,
    ConfigError,
    MissingDependencyError,
    UnknownBackendError,
)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mysql://root:hunter2@db/catalog", "mysql://root:***@db/catalog"),
        ("postgresql+asyncpg://u:hunter2@db/c", "postgresql+asyncpg://u:***@db/c"),
        ("ftp://u:hunter2@host/catalog", "ftp://u:***@host/catalog"),
        ("not a url", "not a url"),
    ],
)
def test_unknown_scheme_is_a_config_error(url: str, shown: str) -> None:
    with pytest.raises(UnknownBackendError) as caught:
        open_catalog(url)
    assert isinstance(caught.value, ConfigError)
    assert shown in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_mask_url() -> None:
    assert mask_url("postgresql+psycopg://user:s3cret@host/db") == (
        "postgresql+psycopg://user:***@host/db"
    )
    assert mask_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


@pytest.mark.timeout(30)
def test_unreachable_postgres_is_backend_unavailable_with_masked_password() -> None:
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError) as caught:
        open_catalog("postgresql+psycopg://dp:hunter2@127.0.0.1:1/catalog")
    assert time.monotonic() - started < 15
    message = str(caught.value)
    assert "postgresql+psycopg://dp:***@127.0.0.1:1/catalog" in message
    assert "hunter2" not in message


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in [
        name for name in sys.modules if name == "psycopg" or name.startswith("psycopg.")
    ]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if psycopg were not installed
    with pytest.raises(MissingDependencyError) as caught:
        open_catalog("postgresql+psycopg://dp:hunter2@127.0.0.1:5432/catalog")
    message = str(caught.value)
    assert "pip install 'dataplane[postgres]'" in message
    assert "postgresql+psycopg://dp:***@127.0.0.1:5432/catalog" in message


def test_sqlite_creates_the_folder_and_sets_wal_busy_timeout_and_foreign_keys(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a" / "b" / "catalog.db"
    db = open_database(f"sqlite:///{path}")
    try:
        with db.read() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30_000
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert path.parent.is_dir()
    finally:
        db.dispose()


def test_sqlite_write_transactions_take_the_write_lock_at_begin(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    db = open_database(f"sqlite:///{path}")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with db.read() as conn:
            conn.execute(text("SELECT 1"))
            other.execute("BEGIN IMMEDIATE")  # a reader does not hold the write lock
            other.execute("ROLLBACK")
        with db.write() as conn:
            # Nothing written yet, but BEGIN IMMEDIATE already holds the write lock.
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            conn.execute(text("SELECT 1"))
    finally:
        other.close()
        db.dispose()


def test_catalog_url_and_repr_mask_the_password(
    dialect: str, catalog_url: str, open_catalogs: Callable[[str], Catalog]
) -> None:
    if dialect == "postgresql":  # trust authentication ignores the password
        url = catalog_url.replace("postgres@", "postgres:hunter2@")
        shown = catalog_url.replace("postgres@", "postgres:***@")
    else:
        url = shown = catalog_url
    catalog = open_catalogs(url)
    assert catalog.url == shown
    assert "hunter2" not in repr(catalog)


def test_plain_postgresql_scheme_means_psycopg(
    postgres_url: str, open_catalogs: Callable[[str], Catalog]
) -> None:
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    assert open_catalogs(plain).url == postgres_url


def test_context_manager_closes(catalog_url: str) -> None:
    with open_catalog(catalog_url) as catalog:
        assert catalog.schema_version == SCHEMA_VERSION


def test_in_memory_sqlite_catalog_works_in_one_thread() -> None:
    with open_catalog("sqlite://") as catalog:
        catalog.commit_version(
            "acme",
            "models",
            "m",
            digest="sha256:" + "0" * 64,
            manifest={},
            metadata={},
            created_by="me",
            locations=[],
            aliases=["prod"],
        )
        assert catalog.aliases("acme", "models", "m") == {"prod": 1}


def test_folder_that_cannot_be_created_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot create its folder"):
        open_catalog(f"sqlite:///{blocker / 'sub' / 'catalog.db'}")


def test_sqlite_open_waits_for_a_writer_on_a_database_not_yet_in_wal_mode(
    tmp_path: Path,
) -> None:
    """Switching to WAL needs an exclusive lock that SQLite refuses at once, busy handler
    or not, while another process writes; opening must wait for it, not fail."""
    path = tmp_path / "catalog.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    releaser = threading.Timer(1.0, holder.execute, args=("ROLLBACK",))
    releaser.start()
    started = time.monotonic()
    try:
        with open_catalog(f"sqlite:///{path}") as catalog:
            assert catalog.schema_version == SCHEMA_VERSION
    finally:
        releaser.join()
        holder.close()
    assert time.monotonic() - started >= 0.9
