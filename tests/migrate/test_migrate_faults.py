"""Faults: transient errors are retried; a permanently failing object is reported and
skipped, the others go on, and its versions are not flipped; a source that no longer
matches its recorded digest is never copied; a damaged destination copy is found by
``verify`` and copied again by the next run.

moto cannot be made to throttle on demand, nor to damage a body in transit, so those
cases put the test double :class:`~dataplane.testing.faults.FaultProxy` (503 SlowDown on
every 4th request; one flipped byte in some request bodies) in front of the real server.
The other faults are real: objects removed or overwritten on disk.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from migrate_support import cli, locations, populate, read_back

from dataplane.facade import DataPlane
from dataplane.testing.faults import CORRUPT_BODY, SLOW_DOWN, FaultProxy, FaultRule
from dataplane.testing.servers import Endpoint, create_s3_bucket, s3_options

RETRY = {"attempts": 6, "deadline_s": 20.0, "initial_wait_s": 0.01, "max_wait_s": 0.05}


def _plan_behind(proxy: FaultProxy, s3_endpoint: Endpoint, make_site: Callable[..., Any],
                 plane_of: Callable[..., DataPlane]) -> tuple[DataPlane, Any, str]:
    """A populated local site and a plan to move it to an S3 backend reached through
    ``proxy``: the plane, the expected catalog, the plan id."""
    bucket = create_s3_bucket(s3_endpoint.endpoint_url)
    proxied = {"url": f"s3://{bucket}/lake", **s3_options(proxy.endpoint_url), "retry": RETRY}
    site = make_site("local", extra={"proxied": proxied})
    plane = plane_of(site)
    catalog = populate(plane, site.work)
    return plane, catalog, plane.migrate.plan("proxied").plan_id


def test_transient_errors_are_retried(make_site: Callable[..., Any],
                                      plane_of: Callable[..., DataPlane],
                                      s3_endpoint: Endpoint) -> None:
    with FaultProxy(s3_endpoint.endpoint_url) as proxy:
        plane, catalog, plan_id = _plan_behind(proxy, s3_endpoint, make_site, plane_of)
        proxy.reset(FaultRule(SLOW_DOWN, every=4))
        report = plane.migrate.run(plan_id)
        assert report.complete, report.errors
        assert proxy.faulted > 0
        proxy.reset(FaultRule())
        assert plane.migrate.verify(plan_id).clean
        for ref, expected in catalog.expected.items():
            assert read_back(plane, ref, expected) == [], ref


def test_bodies_damaged_in_transit_are_caught_and_copied_again(
        make_site: Callable[..., Any], plane_of: Callable[..., DataPlane],
        s3_endpoint: Endpoint) -> None:
    """moto stores a damaged body (S3 itself would refuse it by its Content-MD5): the
    ETag it answers with does not match, so the copy is read back, found to differ, and
    copied again; one damaged twice is reported and its versions stay unflipped, and the
    next run completes with every version right."""
    with FaultProxy(s3_endpoint.endpoint_url) as proxy:
        plane, catalog, plan_id = _plan_behind(proxy, s3_endpoint, make_site, plane_of)
        proxy.reset(FaultRule(CORRUPT_BODY, every=3))
        report = plane.migrate.run(plan_id)
        damaged = [line for line in proxy.log if line.endswith("forwarded corrupted")]
        assert len(damaged) >= 3 and all(line.startswith("PUT ") for line in damaged)
        assert all("differs at the destination after 2 copies" in error
                   for error in report.errors), report.errors
        assert len(report.errors) < len(damaged)  # most were right at the second copy
        proxy.reset(FaultRule())
        report = plane.migrate.run(plan_id)
        assert report.complete, report.errors
        assert plane.migrate.verify(plan_id).clean
        for ref, expected in catalog.expected.items():
            assert read_back(plane, ref, expected) == [], ref


def _source_file(site: Any, plane: DataPlane, ref: str, path: str) -> Path:
    version = plane.models.resolve(ref)
    key = version.manifest.file(path).key
    return Path(site.config["backends"]["local"]["url"].removeprefix("file://")) / key


def test_a_failing_object_is_reported_and_its_versions_stay(
        make_site: Callable[..., Any], plane_of: Callable[..., DataPlane]) -> None:
    site = make_site("local", "s3")
    plane = plane_of(site)
    catalog = populate(plane, site.work)
    removed = _source_file(site, plane, "vision/resnet@1", "resnet.bin")
    kept = removed.read_bytes()
    removed.unlink()  # gone from the source behind dataplane's back
    corrupt = _source_file(site, plane, "nlp/bert@3", "weights.bin")
    good = corrupt.read_bytes()
    corrupt.chmod(0o644)
    corrupt.write_bytes(b"X" + good[1:])  # a bit flip on the source disk
    plan_id = plane.migrate.plan("s3").plan_id

    result = cli(site.path, "migrate", "run", plan_id, "--json")
    assert result.returncode == 6, result.stderr  # finished, but not everything moved
    report = json.loads(result.stdout)
    assert report["objects_failed"] == 2 and report["versions_failed"] == 2
    where = locations(plane)
    assert where["models:vision/resnet@1"] == [("local", "active")]
    assert where["models:nlp/bert@3"] == [("local", "active")]
    assert where["models:nlp/bert@1"] == [("local", "draining"), ("s3", "active")]
    status = json.loads(cli(site.path, "migrate", "status", plan_id, "--json").stdout)
    assert status["differing"] == 2 and status["state"] == "incomplete"
    errors = "\n".join(status["errors"])
    assert "not found" in errors and "integrity check failed" in errors
    assert not plane.store("s3").exists(plane.models.resolve("nlp/bert@3").manifest.file(
        "weights.bin").key)  # a corrupt source is never copied

    removed.write_bytes(kept)  # repaired: the next run retries only what failed
    corrupt.write_bytes(good)
    again = json.loads(cli(site.path, "migrate", "run", plan_id, "--json").stdout)
    assert again["complete"] and again["objects_copied"] == 2
    for ref, expected in catalog.expected.items():
        assert read_back(plane, ref, expected) == [], ref


def test_verify_finds_a_damaged_copy_and_the_next_run_repairs_it(
        make_site: Callable[..., Any], plane_of: Callable[..., DataPlane]) -> None:
    site = make_site("s3", "local")
    plane = plane_of(site)
    catalog = populate(plane, site.work)
    plan_id = plane.migrate.plan("local", "datasets").plan_id
    assert plane.migrate.run(plan_id).complete
    key = plane.datasets.resolve("reviews@1").manifest.files[0].key
    damaged = Path(site.config["backends"]["local"]["url"].removeprefix("file://")) / key
    damaged.chmod(0o644)
    damaged.write_bytes(b"not parquet")
    output = site.work / "combined.txt"
    result = cli(site.path, "migrate", "verify", plan_id, "--json", "--output", str(output))
    assert result.returncode == 4
    assert json.loads(result.stdout)["differing"] == 1
    assert f"* {key}" in output.read_text()
    assert cli(site.path, "migrate", "run", plan_id).returncode == 0
    assert cli(site.path, "migrate", "verify", plan_id).returncode == 0
    for ref, expected in catalog.expected.items():
        assert read_back(plane, ref, expected) == [], ref
