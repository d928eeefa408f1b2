"""Acceptance (CI scale): local -> S3 with four reader processes resolving and verifying
random versions the whole time; flip, rollback and cleanup; writes during a migration."""

from __future__ import annotations

import time
from collections.abc import Callable

from migrate_support import journal_snapshot, locations, populate, read_back, readers

from dataplane.facade import DataPlane
from dataplane.migrate.copier import local_path


def test_local_to_s3_with_readers_then_rollback_and_cleanup(
        make_site: Callable[..., object], plane_of: Callable[..., DataPlane]) -> None:
    site = make_site("local", "s3")
    plane = plane_of(site)
    catalog = populate(plane, site.work)
    before = {key for key in _keys(plane, "local")}

    with readers(site.config, catalog, site.work):
        summary = plane.migrate.plan("s3", grace_period_s=1.0)
        assert summary.versions == {"models": 4, "datasets": 2, "checkpoints": 2}
        report = plane.migrate.run(summary.plan_id)
        assert report.complete, report.errors
        assert report.copied == summary.objects and report.failed == 0
        assert all(where == [("local", "draining"), ("s3", "active")]
                   for where in locations(plane).values())
        verify = plane.migrate.verify(summary.plan_id)
        assert (verify.matched, verify.missing, verify.differing) == (summary.objects, 0, 0)
        time.sleep(0.5)  # readers keep reading from S3 now
        assert plane.migrate.rollback(summary.plan_id) == 8
        assert all(where == [("local", "active"), ("s3", "draining")]
                   for where in locations(plane).values())
        time.sleep(0.5)  # ... and from local disk again
        again = plane.migrate.run(summary.plan_id)
        assert again.complete and again.copied == 0  # nothing copied twice

    # every object was copied exactly once, by the journal's count
    assert {copies for _, copies in journal_snapshot(plane, summary.plan_id).values()} == {1}
    time.sleep(1.0)  # the grace period
    cleaned = plane.migrate.cleanup(summary.plan_id)
    assert cleaned.versions == 8 and not cleaned.errors
    assert _keys(plane, "local") == set()  # the source copies are gone ...
    assert _keys(plane, "s3") == before  # ... and nothing else
    for ref, expected in catalog.expected.items():
        assert read_back(plane, ref, expected) == []
    assert plane.migrate.status(summary.plan_id).plan.state == "cleaned"


def test_cleanup_keeps_objects_other_versions_still_use(
        make_site: Callable[..., object], plane_of: Callable[..., DataPlane]) -> None:
    site = make_site("local", "s3")
    plane = plane_of(site)
    catalog = populate(plane, site.work)
    summary = plane.migrate.plan("s3", "@prod", grace_period_s=0)  # only nlp/bert@2
    assert summary.versions == {"models": 1}
    assert plane.migrate.run(summary.plan_id).complete
    report = plane.migrate.cleanup(summary.plan_id)
    assert report.kept_shared == 1  # shared.bin is still used by versions 1 and 3 on local
    for ref, expected in catalog.expected.items():
        assert read_back(plane, ref, expected) == [], ref
    assert locations(plane)["models:nlp/bert@2"] == [("local", "deleted"), ("s3", "active")]
    assert locations(plane)["models:nlp/bert@1"] == [("local", "active")]


def test_new_writes_go_to_the_destination_and_late_ones_are_picked_up(
        make_site: Callable[..., object], plane_of: Callable[..., DataPlane]) -> None:
    site = make_site("local", "s3")
    plane = plane_of(site)
    populate(plane, site.work)
    summary = plane.migrate.plan("s3", "models")
    assert plane.route("models", "nlp/bert") == "local"
    # a version committed on the source after the plan (a publish already in flight)
    late = site.work / "late.bin"
    late.write_bytes(b"late" * 1000)
    plane.models.publish("nlp/late", late)
    report = plane.migrate.run(summary.plan_id)
    assert report.complete
    assert locations(plane)["models:nlp/late@1"] == [("local", "draining"), ("s3", "active")]
    # from now on new model versions are written to S3 directly
    assert plane.route("models", "nlp/bert") == "s3"
    assert plane.route("datasets", "reviews") == "local"  # not selected: not redirected
    version = plane.models.publish("nlp/bert", late)
    assert [loc.backend for loc in version.record.locations] == ["s3"]
    plane.migrate.rollback(summary.plan_id)
    assert plane.route("models", "nlp/bert") == "local"


def _keys(plane: DataPlane, backend: str) -> set[str]:
    store = plane.store(backend)
    keys = {info.key for info in store.list("")}
    if local_path(store, "x") is not None:
        keys = {k for k in keys if not k.startswith(".dataplane-staging/")}
    return keys


