"""Locations and their states (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from catalog_support import KIND, TENANT, publish

from dataplane.catalog import Catalog
from dataplane.errors import AlreadyExistsError, NotFoundError
from dataplane.names import parse_ref


def states(catalog: Catalog, number: int = 1) -> dict[str, str]:
    record = catalog.resolve(TENANT, KIND, "bert", parse_ref(str(number)))
    return {loc.backend: loc.state for loc in record.locations}


def test_add_location_and_change_its_state(catalog: Catalog) -> None:
    version = publish(catalog, locations=[("local", "file:///a")])
    added = catalog.add_location(version.id, "s3", "s3://bucket/a", actor="migrator")
    assert (added.backend, added.uri, added.state) == ("s3", "s3://bucket/a", "active")
    assert states(catalog) == {"local": "active", "s3": "active"}

    draining = catalog.set_location_state(version.id, "local", "draining", actor="migrator")
    assert draining.state == "draining"
    assert draining.updated_at >= draining.created_at
    assert states(catalog) == {"local": "draining", "s3": "active"}

    catalog.set_location_state(version.id, "local", "deleted", actor="gc")
    assert states(catalog) == {"local": "deleted", "s3": "active"}

    gone = catalog.remove_location(version.id, "local", actor="gc")
    assert (gone.backend, gone.state) == ("local", "deleted")
    assert states(catalog) == {"s3": "active"}


def test_add_location_in_a_given_state(catalog: Catalog) -> None:
    version = publish(catalog)
    catalog.add_location(version.id, "gcs", "gs://b/a", "draining")
    assert states(catalog)["gcs"] == "draining"


def test_invalid_state_is_rejected_and_changes_nothing(catalog: Catalog) -> None:
    version = publish(catalog, locations=[("local", "file:///a")])
    with pytest.raises(ValueError, match=r"invalid location state 'gone': must be one of active"):
        catalog.set_location_state(version.id, "local", "gone")
    with pytest.raises(ValueError, match="invalid location state 'ACTIVE'"):
        catalog.add_location(version.id, "s3", "s3://b/a", "ACTIVE")
    assert states(catalog) == {"local": "active"}
    assert [entry.action for entry in catalog.audit()] == ["commit"]


def test_location_errors(catalog: Catalog) -> None:
    version = publish(catalog, locations=[("local", "file:///a")])
    with pytest.raises(AlreadyExistsError, match=r"dp://acme/models/bert@1 already has a location"):
        catalog.add_location(version.id, "local", "file:///b")
    with pytest.raises(NotFoundError, match=r"dp://acme/models/bert@1 has no location on .*'s3'"):
        catalog.set_location_state(version.id, "s3", "draining")
    with pytest.raises(NotFoundError, match=r"dp://acme/models/bert@1 has no location on .*'s3'"):
        catalog.remove_location(version.id, "s3")
    with pytest.raises(NotFoundError, match="no version with id 999"):
        catalog.add_location(999, "s3", "s3://b/a")


def test_locations_belong_to_their_version(catalog: Catalog) -> None:
    first = publish(catalog, locations=[("local", "file:///1")])
    publish(catalog, locations=[("local", "file:///2")])
    catalog.set_location_state(first.id, "local", "draining")
    assert states(catalog, 1) == {"local": "draining"}
    assert states(catalog, 2) == {"local": "active"}
