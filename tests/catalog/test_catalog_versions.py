"""Committing, resolving, listing and tombstoning versions (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC

import pytest
from catalog_support import KIND, TENANT, digest, publish

from dataplane.catalog import Catalog, LocationRecord, NameRecord
from dataplane.errors import AlreadyExistsError, NotFoundError
from dataplane.names import parse_ref


def resolve(catalog: Catalog, ref: str, name: str = "bert") -> int:
    return catalog.resolve(TENANT, KIND, name, parse_ref(ref)).number


def test_commit_returns_the_full_record(catalog: Catalog) -> None:
    record = publish(
        catalog,
        seed="x",
        locations=[("s3", "s3://b/k"), ("local", "file:///k")],
        metadata={"epochs": 3},
    )
    assert (record.tenant, record.kind, record.name, record.number) == (TENANT, KIND, "bert", 1)
    assert record.digest == digest("x")
    assert record.manifest == {"files": [{"path": "model.bin", "digest": digest("x")}]}
    assert record.metadata == {"epochs": 3}
    assert record.created_by == "alice"
    assert record.created_at.tzinfo == UTC
    assert record.deleted_at is None and record.deleted_by is None
    assert record.address == "dp://acme/models/bert@1"
    assert [(loc.backend, loc.uri, loc.state) for loc in record.locations] == [
        ("local", "file:///k", "active"),
        ("s3", "s3://b/k", "active"),
    ]
    assert all(isinstance(loc, LocationRecord) for loc in record.locations)


def test_numbers_start_at_one_per_name(catalog: Catalog) -> None:
    assert [publish(catalog, "a").number for _ in range(3)] == [1, 2, 3]
    assert publish(catalog, "b").number == 1
    assert publish(catalog, "a", kind="datasets").number == 1


def test_resolve_by_number_alias_latest_and_digest(catalog: Catalog) -> None:
    publish(catalog, seed=1, aliases=["prod"])
    publish(catalog, seed=2, aliases=["staging"])
    publish(catalog, seed=3)
    assert resolve(catalog, "2") == 2
    assert resolve(catalog, "prod") == 1
    assert resolve(catalog, "staging") == 2
    assert resolve(catalog, "latest") == 3
    assert resolve(catalog, digest(2)) == 2
    assert catalog.resolve(TENANT, KIND, "bert", parse_ref("1")).metadata == {"seed": "1"}


def test_a_digest_shared_by_versions_resolves_to_the_newest(catalog: Catalog) -> None:
    publish(catalog, seed="same")
    publish(catalog, seed="other")
    publish(catalog, seed="same")
    assert resolve(catalog, digest("same")) == 3


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("7", "dp://acme/models/bert@7: no such version"),
        ("prod", "dp://acme/models/bert@prod: no such alias"),
        (
            digest("nope"),
            f"dp://acme/models/bert@{digest('nope')}: no live version has this digest",
        ),
    ],
)
def test_not_found_names_the_address(catalog: Catalog, ref: str, message: str) -> None:
    publish(catalog)
    with pytest.raises(NotFoundError) as caught:
        resolve(catalog, ref)
    assert str(caught.value) == message


def test_missing_name_names_the_address(catalog: Catalog) -> None:
    with pytest.raises(NotFoundError, match=r"^dp://acme/models/ghost@latest: no such name$"):
        resolve(catalog, "latest", name="ghost")
    with pytest.raises(NotFoundError, match=r"dp://acme/models/ghost@"):
        catalog.versions(TENANT, KIND, "ghost")


def test_tombstone_hides_the_version_from_latest_alias_and_digest(catalog: Catalog) -> None:
    publish(catalog, seed=1)
    publish(catalog, seed=2, aliases=["prod", "canary"])
    record = catalog.tombstone(TENANT, KIND, "bert", 2, actor="bob")
    assert record.deleted_at is not None and record.deleted_by == "bob"
    assert record.locations, "tombstoning leaves the bytes' locations for GC"
    assert resolve(catalog, "latest") == 1
    for ref in ("prod", "canary", digest(2)):
        with pytest.raises(NotFoundError, match=f"dp://acme/models/bert@{ref}"):
            resolve(catalog, ref)
    with pytest.raises(
        NotFoundError, match=r"dp://acme/models/bert@2: version 2 was deleted .* by bob"
    ):
        resolve(catalog, "2")
    assert catalog.aliases(TENANT, KIND, "bert") == {}


def test_tombstone_every_version_leaves_no_latest(catalog: Catalog) -> None:
    publish(catalog)
    catalog.tombstone(TENANT, KIND, "bert", 1, actor="bob")
    with pytest.raises(NotFoundError, match=r"dp://acme/models/bert@latest: no live versions"):
        resolve(catalog, "latest")
    assert catalog.names(TENANT)[0].latest_version is None
    assert publish(catalog).number == 2, "a deleted number is never reused"


def test_tombstone_twice_changes_nothing_the_second_time(catalog: Catalog) -> None:
    publish(catalog)
    first = catalog.tombstone(TENANT, KIND, "bert", 1, actor="bob")
    again = catalog.tombstone(TENANT, KIND, "bert", 1, actor="carol")
    assert again == first
    assert [entry.action for entry in catalog.audit()] == ["commit", "tombstone"]


def test_tombstone_of_a_missing_version_raises(catalog: Catalog) -> None:
    publish(catalog)
    with pytest.raises(NotFoundError, match=r"dp://acme/models/bert@5: no such version"):
        catalog.tombstone(TENANT, KIND, "bert", 5, actor="bob")


def test_versions_lists_ascending_and_hides_deleted_unless_asked(catalog: Catalog) -> None:
    for _ in range(4):
        publish(catalog)
    catalog.tombstone(TENANT, KIND, "bert", 2, actor="bob")
    assert [v.number for v in catalog.versions(TENANT, KIND, "bert")] == [1, 3, 4]
    everything = catalog.versions(TENANT, KIND, "bert", include_deleted=True)
    assert [(v.number, v.deleted_at is not None) for v in everything] == [
        (1, False),
        (2, True),
        (3, False),
        (4, False),
    ]
    assert all(v.locations for v in everything)


def test_names_sorted_filtered_by_kind_and_prefix(catalog: Catalog) -> None:
    for kind, name in [
        ("models", "nlp/bert"),
        ("datasets", "imagenet"),
        ("models", "nlp/Zeta"),
        ("models", "a_b"),
        ("models", "axb"),
        ("models", "nlp/bert"),
        ("models", "other"),
    ]:
        publish(catalog, name, kind=kind)
    catalog.commit_version(
        "globex",
        "models",
        "nlp/bert",
        digest=digest(0),
        manifest={},
        metadata={},
        created_by="x",
        locations=[],
    )
    listed = catalog.names(TENANT)
    assert all(isinstance(record, NameRecord) for record in listed)
    assert [(r.kind, r.name, r.latest_version) for r in listed] == [
        ("datasets", "imagenet", 1),
        ("models", "a_b", 1),
        ("models", "axb", 1),
        ("models", "nlp/Zeta", 1),
        ("models", "nlp/bert", 2),
        ("models", "other", 1),
    ]
    assert [r.name for r in catalog.names(TENANT, kind="datasets")] == ["imagenet"]
    assert [r.name for r in catalog.names(TENANT, prefix="nlp/")] == ["nlp/Zeta", "nlp/bert"]
    assert [r.name for r in catalog.names(TENANT, prefix="a_")] == ["a_b"], "'_' is literal"
    assert catalog.names("nobody") == []


def test_failed_commit_leaves_no_gap(catalog: Catalog) -> None:
    publish(catalog)
    with pytest.raises(Exception, match="not JSON serializable"):
        publish(catalog, metadata={"bad": object()})  # fails after the number is taken
    with pytest.raises(AlreadyExistsError, match=r"dp://acme/models/bert@2 already has a loc"):
        publish(catalog, locations=[("local", "file:///a"), ("local", "file:///b")])
    assert publish(catalog).number == 2
    assert [v.number for v in catalog.versions(TENANT, KIND, "bert")] == [1, 2]
    assert [e.version for e in catalog.audit()] == [1, 2]


def test_failed_first_commit_leaves_no_name(catalog: Catalog) -> None:
    with pytest.raises(Exception, match="not JSON serializable"):
        publish(catalog, "fresh", metadata={"bad": object()})
    assert catalog.names(TENANT) == []
    assert publish(catalog, "fresh").number == 1
