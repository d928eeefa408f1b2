"""The append-only audit trail (SQLite and PostgreSQL)."""

from __future__ import annotations

import inspect
import itertools

from catalog_support import KIND, TENANT, digest, publish

from dataplane.catalog import AuditEntry, Catalog


def test_every_action_appends_one_audit_row(catalog: Catalog) -> None:
    version = publish(catalog, seed=1, aliases=["prod"], created_by="ci")
    publish(catalog, seed=2, created_by="ci")
    catalog.set_alias(TENANT, KIND, "bert", "prod", 2, actor="alice")
    catalog.remove_alias(TENANT, KIND, "bert", "prod", actor="alice")
    catalog.add_location(version.id, "s3", "s3://b/1", actor="migrator")
    catalog.set_location_state(version.id, "local", "draining", actor="migrator")
    catalog.remove_location(version.id, "local", actor="gc")
    catalog.tombstone(TENANT, KIND, "bert", 1, actor="bob")

    entries = catalog.audit()
    assert all(isinstance(entry, AuditEntry) for entry in entries)
    assert [(e.action, e.actor, e.version) for e in entries] == [
        ("commit", "ci", 1),
        ("commit", "ci", 2),
        ("set_alias", "alice", 2),
        ("remove_alias", "alice", 2),
        ("add_location", "migrator", 1),
        ("set_location_state", "migrator", 1),
        ("remove_location", "gc", 1),
        ("tombstone", "bob", 1),
    ]
    assert {(e.tenant, e.kind, e.name) for e in entries} == {(TENANT, KIND, "bert")}
    assert [e.id for e in entries] == sorted(e.id for e in entries)
    assert all(a.at <= b.at for a, b in itertools.pairwise(entries))
    assert entries[0].detail == {"digest": digest(1), "aliases": ["prod"], "backends": ["local"]}
    assert entries[2].detail == {"alias": "prod", "from": 1, "to": 2}
    assert entries[5].detail == {"backend": "local", "from": "active", "to": "draining"}


def test_audit_filters_and_limit(catalog: Catalog) -> None:
    publish(catalog, "bert")
    publish(catalog, "bert", kind="datasets")
    publish(catalog, "gpt")
    catalog.commit_version(
        "globex",
        KIND,
        "bert",
        digest=digest(0),
        manifest={},
        metadata={},
        created_by="x",
        locations=[],
    )
    assert len(catalog.audit()) == 4
    assert len(catalog.audit(tenant=TENANT)) == 3
    assert [e.name for e in catalog.audit(tenant=TENANT, kind=KIND)] == ["bert", "gpt"]
    assert [e.kind for e in catalog.audit(tenant=TENANT, name="bert")] == ["models", "datasets"]
    newest = catalog.audit(limit=2)
    assert [e.tenant for e in newest] == [TENANT, "globex"], "the newest rows, oldest first"


def test_audit_is_append_only() -> None:
    public = [name for name, _ in inspect.getmembers(Catalog) if not name.startswith("_")]
    assert [name for name in public if "audit" in name] == ["audit"]
