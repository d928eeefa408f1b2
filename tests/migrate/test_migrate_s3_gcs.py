"""Acceptance (CI scale): S3 (moto) -> GCS (fake-gcs-server) of a mixed catalog while four
reader processes resolve and verify random versions: zero errors, zero wrong bytes."""

from __future__ import annotations

from collections.abc import Callable

from migrate_support import locations, populate, read_back, readers

from dataplane.facade import DataPlane


def test_s3_to_gcs_with_readers(make_site: Callable[..., object],
                                plane_of: Callable[..., DataPlane]) -> None:
    site = make_site("s3", "gcs")
    plane = plane_of(site)
    catalog = populate(plane, site.work)
    with readers(site.config, catalog, site.work):
        summary = plane.migrate.plan("gcs", source="s3")
        report = plane.migrate.run(summary.plan_id)
        assert report.complete, report.errors
        verify = plane.migrate.verify(summary.plan_id)
        assert verify.clean and verify.matched == summary.objects
    assert all(where == [("gcs", "active"), ("s3", "draining")]
               for where in locations(plane).values())
    for ref, expected in catalog.expected.items():
        assert read_back(plane, ref, expected) == [], ref
    # the checkpoint's zarr location now names the GCS copy (packed: the archive on GCS)
    url = plane.checkpoints.latest("run-7").url  # type: ignore[union-attr]
    assert url.removeprefix("zip://checkpoint::").startswith("gs://"), url
