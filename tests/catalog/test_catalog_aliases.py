"""Aliases and their full history (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from catalog_support import KIND, TENANT, publish

from dataplane.catalog import AliasChange, Catalog
from dataplane.errors import NotFoundError
from dataplane.names import parse_ref


def moves(changes: list[AliasChange]) -> list[tuple[str, int | None, int | None, str]]:
    return [(c.alias, c.from_version, c.to_version, c.changed_by) for c in changes]


def test_alias_history_records_every_move(catalog: Catalog) -> None:
    for _ in range(3):
        publish(catalog)
    catalog.set_alias(TENANT, KIND, "bert", "prod", 1, actor="alice")
    catalog.set_alias(TENANT, KIND, "bert", "prod", 2, actor="bob")
    change = catalog.set_alias(TENANT, KIND, "bert", "prod", 3, actor="carol")
    assert (change.from_version, change.to_version, change.changed_by) == (2, 3, "carol")
    history = catalog.alias_history(TENANT, KIND, "bert", "prod")
    assert moves(history) == [
        ("prod", None, 1, "alice"),
        ("prod", 1, 2, "bob"),
        ("prod", 2, 3, "carol"),
    ]
    assert history[0].changed_at <= history[1].changed_at <= history[2].changed_at
    assert catalog.resolve(TENANT, KIND, "bert", parse_ref("prod")).number == 3


def test_history_covers_commit_aliases_removal_and_tombstone(catalog: Catalog) -> None:
    publish(catalog, aliases=["prod", "staging"], created_by="ci")
    publish(catalog, aliases=["staging"], created_by="ci")
    catalog.remove_alias(TENANT, KIND, "bert", "prod", actor="alice")
    catalog.tombstone(TENANT, KIND, "bert", 2, actor="bob")
    assert moves(catalog.alias_history(TENANT, KIND, "bert")) == [
        ("prod", None, 1, "ci"),
        ("staging", None, 1, "ci"),
        ("staging", 1, 2, "ci"),
        ("prod", 1, None, "alice"),
        ("staging", 2, None, "bob"),
    ]
    assert moves(catalog.alias_history(TENANT, KIND, "bert", "prod")) == [
        ("prod", None, 1, "ci"),
        ("prod", 1, None, "alice"),
    ]


def test_aliases_lists_current_targets(catalog: Catalog) -> None:
    publish(catalog, aliases=["prod"])
    publish(catalog, aliases=["canary"])
    catalog.set_alias(TENANT, KIND, "bert", "beta", 1, actor="alice")
    assert catalog.aliases(TENANT, KIND, "bert") == {"beta": 1, "canary": 2, "prod": 1}
    assert list(catalog.aliases(TENANT, KIND, "bert")) == ["beta", "canary", "prod"]


def test_set_alias_to_a_missing_version_changes_nothing(catalog: Catalog) -> None:
    publish(catalog, aliases=["prod"])
    before = (catalog.aliases(TENANT, KIND, "bert"), catalog.alias_history(TENANT, KIND, "bert"))
    audit_rows = len(catalog.audit())
    with pytest.raises(NotFoundError, match=r"dp://acme/models/bert@9: no such version"):
        catalog.set_alias(TENANT, KIND, "bert", "prod", 9, actor="mallory")
    after = (catalog.aliases(TENANT, KIND, "bert"), catalog.alias_history(TENANT, KIND, "bert"))
    assert after == before
    assert len(catalog.audit()) == audit_rows


def test_set_alias_to_a_deleted_version_changes_nothing(catalog: Catalog) -> None:
    publish(catalog, aliases=["prod"])
    publish(catalog)
    catalog.tombstone(TENANT, KIND, "bert", 2, actor="bob")
    history, audit_rows = catalog.alias_history(TENANT, KIND, "bert"), len(catalog.audit())
    with pytest.raises(NotFoundError, match=r"dp://acme/models/bert@2: version 2 was deleted"):
        catalog.set_alias(TENANT, KIND, "bert", "prod", 2, actor="mallory")
    assert catalog.aliases(TENANT, KIND, "bert") == {"prod": 1}
    assert catalog.alias_history(TENANT, KIND, "bert") == history
    assert len(catalog.audit()) == audit_rows


def test_set_alias_on_a_missing_name_raises(catalog: Catalog) -> None:
    with pytest.raises(NotFoundError, match=r"dp://acme/models/ghost@1: no such name"):
        catalog.set_alias(TENANT, KIND, "ghost", "prod", 1, actor="alice")


def test_set_alias_to_its_current_target_records_nothing(catalog: Catalog) -> None:
    publish(catalog, aliases=["prod"], created_by="ci")
    change = catalog.set_alias(TENANT, KIND, "bert", "prod", 1, actor="alice")
    assert (change.from_version, change.to_version, change.changed_by) == (1, 1, "ci")
    assert len(catalog.alias_history(TENANT, KIND, "bert")) == 1
    assert [entry.action for entry in catalog.audit()] == ["commit"]


def test_remove_alias(catalog: Catalog) -> None:
    publish(catalog, aliases=["prod"])
    change = catalog.remove_alias(TENANT, KIND, "bert", "prod", actor="alice")
    assert (change.from_version, change.to_version) == (1, None)
    with pytest.raises(NotFoundError, match=r"dp://acme/models/bert@prod: no such alias"):
        catalog.resolve(TENANT, KIND, "bert", parse_ref("prod"))
    with pytest.raises(NotFoundError, match=r"dp://acme/models/bert@prod: no such alias"):
        catalog.remove_alias(TENANT, KIND, "bert", "prod", actor="alice")


def test_an_alias_is_scoped_to_its_name(catalog: Catalog) -> None:
    publish(catalog, "bert", aliases=["prod"])
    publish(catalog, "gpt")
    with pytest.raises(NotFoundError, match=r"dp://acme/models/gpt@prod"):
        catalog.resolve(TENANT, KIND, "gpt", parse_ref("prod"))
    assert catalog.alias_history(TENANT, KIND, "gpt") == []
