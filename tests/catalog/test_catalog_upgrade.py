"""Schema versions: a fresh catalog, an upgrade from a frozen v1, and refusals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from catalog_support import KIND, TENANT, publish

from dataplane.catalog import SCHEMA_VERSION, Catalog
from dataplane.catalog.upgrade import UPGRADES
from dataplane.errors import ConfigError
from dataplane.names import parse_ref

FIXTURES = Path(__file__).parent / "fixtures"
NAME = "vision/resnet"


def v1_script(dialect: str) -> str:
    return (FIXTURES / f"schema_v1_{dialect}.sql").read_text()


def v2_script(dialect: str) -> str:
    return (FIXTURES / f"schema_v2_{dialect}.sql").read_text()


def test_every_older_version_has_an_upgrade_step() -> None:
    assert SCHEMA_VERSION == 3
    assert sorted(UPGRADES) == list(range(1, SCHEMA_VERSION))


def test_fresh_database_is_created_at_the_current_version(catalog: Catalog) -> None:
    assert catalog.schema_version == SCHEMA_VERSION


def test_reopening_keeps_everything(
    catalog_url: str, open_catalogs: Callable[[str], Catalog]
) -> None:
    first = open_catalogs(catalog_url)
    publish(first, aliases=["prod"])
    first.close()
    again = open_catalogs(catalog_url)
    assert again.resolve(TENANT, KIND, "bert", parse_ref("prod")).number == 1
    assert again.schema_version == SCHEMA_VERSION


def test_v1_catalog_is_upgraded_and_keeps_its_rows(
    dialect: str,
    raw_sql: Callable[[str], None],
    catalog_url: str,
    open_catalogs: Callable[[str], Catalog],
) -> None:
    raw_sql(v1_script(dialect))
    catalog = open_catalogs(catalog_url)
    assert catalog.schema_version == SCHEMA_VERSION

    first = catalog.resolve("acme", "models", NAME, parse_ref("prod"))
    assert (first.number, first.created_by, first.metadata) == (1, "alice", {"epochs": 3})
    assert first.manifest == {"files": [{"path": "model.pt", "size": 10}]}
    assert first.created_at == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    [location] = first.locations
    assert (location.backend, location.state) == ("local", "active")
    assert location.updated_at == location.created_at == first.created_at
    latest = catalog.resolve("acme", "models", NAME, parse_ref("latest"))
    assert [(loc.backend, loc.state) for loc in latest.locations] == [("s3", "active")]
    assert [
        (c.from_version, c.to_version) for c in catalog.alias_history("acme", "models", NAME)
    ] == [(None, 1)]
    assert [e.version for e in catalog.audit()] == [1, 2]

    # The upgraded catalog works like a fresh one.
    catalog.set_location_state(first.id, "local", "draining")
    third = catalog.commit_version(
        "acme",
        "models",
        NAME,
        digest="sha256:" + "3" * 64,
        manifest={},
        metadata={},
        created_by="carol",
        locations=[("local", "file:///3")],
        aliases=["prod"],
    )
    assert third.number == 3
    assert [e.id for e in catalog.audit()] == [1, 2, 3, 4]


def test_upgrade_happens_once(
    dialect: str,
    raw_sql: Callable[[str], None],
    catalog_url: str,
    open_catalogs: Callable[[str], Catalog],
) -> None:
    raw_sql(v1_script(dialect))
    open_catalogs(catalog_url).close()
    again = open_catalogs(catalog_url)
    assert again.schema_version == SCHEMA_VERSION
    assert len(again.versions("acme", "models", NAME)) == 2


def test_newer_schema_is_refused(
    catalog_url: str, raw_sql: Callable[[str], None], open_catalogs: Callable[[str], Catalog]
) -> None:
    open_catalogs(catalog_url).close()
    raw_sql("UPDATE schema_info SET version = 99")
    with pytest.raises(ConfigError) as caught:
        open_catalogs(catalog_url)
    message = str(caught.value)
    assert "v99" in message and f"(v{SCHEMA_VERSION})" in message
    assert "upgrade dataplane" in message


def test_unrelated_tables_are_refused(
    catalog_url: str, raw_sql: Callable[[str], None], open_catalogs: Callable[[str], Catalog]
) -> None:
    raw_sql("CREATE TABLE customers (id INTEGER PRIMARY KEY, email VARCHAR(100))")
    with pytest.raises(
        ConfigError, match=r"is not a dataplane catalog: it has tables \(customers\)"
    ):
        open_catalogs(catalog_url)
    raw_sql("INSERT INTO customers (id, email) VALUES (1, 'a@example.com')")  # untouched


def test_a_failed_upgrade_changes_nothing(
    dialect: str,
    raw_sql: Callable[[str], None],
    catalog_url: str,
    open_catalogs: Callable[[str], Catalog],
) -> None:
    # A damaged v1 catalog whose locations already have an updated_at column: the v1->v2
    # step adds 'state', then fails adding 'updated_at'; the whole upgrade must roll back.
    timestamp = "DATETIME" if dialect == "sqlite" else "TIMESTAMP WITH TIME ZONE"
    raw_sql(v1_script(dialect) + f"\nALTER TABLE locations ADD COLUMN updated_at {timestamp};")
    with pytest.raises(ConfigError, match=r"upgrading the catalog schema from v1 to v2 failed"):
        open_catalogs(catalog_url)
    raw_sql("ALTER TABLE locations DROP COLUMN updated_at")  # repair; 'state' must be absent
    catalog = open_catalogs(catalog_url)
    assert catalog.schema_version == SCHEMA_VERSION
    assert catalog.resolve("acme", "models", NAME, parse_ref("1")).locations[0].state == "active"


def test_v2_catalog_is_upgraded_to_v3_and_keeps_its_rows(
    dialect: str,
    raw_sql: Callable[[str], None],
    catalog_url: str,
    open_catalogs: Callable[[str], Catalog],
) -> None:
    raw_sql(v2_script(dialect))
    catalog = open_catalogs(catalog_url)
    assert catalog.schema_version == 3
    second = catalog.resolve("acme", "models", NAME, parse_ref("2"))
    assert [(loc.backend, loc.state) for loc in second.locations] == [("s3", "draining")]
    assert catalog.aliases("acme", "models", NAME) == {"prod": 1}
    # the tables v3 added work: a route override and a location move
    assert catalog.route_overrides() == []
    catalog.add_route_override("acme/models/*", "s3", from_backend="local", migration_id="m1")
    assert [o.to_backend for o in catalog.route_overrides()] == ["s3"]
    moved = catalog.move_location(second.id, "s3", "gcs", "acme/models/vision/resnet")
    assert (moved.backend, moved.state) == ("gcs", "active")
    assert catalog.remove_route_overrides("m1") == 1
    assert [e.action for e in catalog.audit()][-1] == "move_location"
