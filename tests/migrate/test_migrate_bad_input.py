"""Bad input: unknown backend, empty selection, destination unreachable or refusing
writes, a plan run twice at once. Each is a clear error, and nothing changes: no plan is
recorded (or the plan stays as it was), no location moves, no route is redirected.

A real S3 server cannot be told to refuse our credentials, so "without permission" puts
the test double :class:`~dataplane.testing.faults.FaultProxy` (403 AccessDenied on every
request) in front of moto's real server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from migrate_support import cli, locations, populate, start_cli

from dataplane.cli.main import cli as dataplane_cli
from dataplane.facade import DataPlane
from dataplane.testing.faults import ACCESS_DENIED, FaultProxy, FaultRule
from dataplane.testing.servers import Endpoint, create_s3_bucket, free_port, s3_options

NO_RETRY = {"attempts": 1, "deadline_s": 1.0, "initial_wait_s": 0.0, "max_wait_s": 0.0}


@pytest.fixture
def proxy(s3_endpoint: Endpoint) -> Iterator[FaultProxy]:
    with FaultProxy(s3_endpoint.endpoint_url) as running:
        yield running


def _behind(proxy: FaultProxy, s3_endpoint: Endpoint) -> dict[str, Any]:
    bucket = create_s3_bucket(s3_endpoint.endpoint_url)
    return {"url": f"s3://{bucket}/lake", **s3_options(proxy.endpoint_url), "retry": NO_RETRY}


def _invoke(site: Any, *args: str) -> Any:
    return CliRunner().invoke(dataplane_cli, ["--config", str(site.path), *args])


def _unchanged(plane: DataPlane, before: dict[str, Any]) -> None:
    assert locations(plane) == before
    assert plane.migrate.plans() == []
    assert plane.catalog.route_overrides() == []


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--to", "nowhere"], 2, "no backend named 'nowhere'"),
    (["--to", "s3", "--from", "nowhere"], 2, "no backend named 'nowhere'"),
    (["--to", "local", "--from", "local"], 2, "source and destination are both 'local'"),
    (["--to", "s3", "name=nope/*"], 3, "nothing to migrate: no live version matching name=nope/*"),
    (["--to", "s3", "@no-such-alias"], 3, "nothing to migrate"),
    (["--to", "s3", "versions=9.."], 3, "nothing to migrate"),
    (["--to", "s3", "versions=x"], 2, "use N, N..M"),
    (["--to", "s3", "kind=features"], 2, "cannot be migrated"),
])
def test_bad_plans_change_nothing(make_site: Callable[..., Any],
                                  plane_of: Callable[..., DataPlane], args: list[str],
                                  code: int, message: str) -> None:
    site = make_site("local", "s3")
    plane = plane_of(site)
    populate(plane, site.work)
    before = locations(plane)
    result = _invoke(site, "migrate", "plan", *args)
    assert result.exit_code == code, result.output
    assert message in result.output
    _unchanged(plane, before)


def test_unreachable_destination(make_site: Callable[..., Any],
                                 plane_of: Callable[..., DataPlane]) -> None:
    dead = {"url": "s3://dead-bucket/lake", "key": "k", "secret": "s",
            "endpoint_url": f"http://127.0.0.1:{free_port()}", "retry": NO_RETRY}
    site = make_site("local", extra={"dead": dead})
    plane = plane_of(site)
    populate(plane, site.work)
    before = locations(plane)
    result = _invoke(site, "migrate", "plan", "--to", "dead")
    assert result.exit_code == 5, result.output
    assert "cannot reach the endpoint" in result.output
    _unchanged(plane, before)


def test_destination_without_permission(make_site: Callable[..., Any],
                                        plane_of: Callable[..., DataPlane],
                                        proxy: FaultProxy, s3_endpoint: Endpoint) -> None:
    site = make_site("local", extra={"locked": _behind(proxy, s3_endpoint)})
    plane = plane_of(site)
    populate(plane, site.work)
    before = locations(plane)
    proxy.reset(FaultRule(ACCESS_DENIED, always=True))
    result = _invoke(site, "migrate", "plan", "--to", "locked")
    assert result.exit_code == 1, result.output
    assert "permission denied" in result.output.lower() or "AccessDenied" in result.output
    _unchanged(plane, before)

    # a plan made while writes were allowed, run once they are refused: nothing moves
    proxy.reset(FaultRule())
    plan_id = plane.migrate.plan("locked").plan_id
    proxy.reset(FaultRule(ACCESS_DENIED, always=True))
    result = _invoke(site, "migrate", "run", plan_id)
    assert result.exit_code == 1, result.output
    assert locations(plane) == before
    assert plane.catalog.route_overrides() == []
    assert plane.migrate.status(plan_id).plan.state == "planned"
    assert plane.migrate.status(plan_id).plan.lease_owner is None


def test_a_plan_run_twice_at_once_refuses_the_second(
        make_site: Callable[..., Any], plane_of: Callable[..., DataPlane], proxy: FaultProxy,
        s3_endpoint: Endpoint) -> None:
    site = make_site("local", extra={"slow": _behind(proxy, s3_endpoint)})
    plane = plane_of(site)
    populate(plane, site.work)
    plan_id = plane.migrate.plan("slow").plan_id
    proxy.before_forward = lambda number, line: time.sleep(0.25)  # a slow link
    first = start_cli(site.path, "migrate", "run", plan_id, "--workers", "1", "--json")
    try:
        deadline = time.monotonic() + 30
        while plane.migrate.status(plan_id).plan.lease_owner is None:
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        second = cli(site.path, "migrate", "run", plan_id)
        assert second.returncode == 1
        assert f"migration {plan_id} is already running" in second.stderr
        for command in ("rollback", "cleanup"):  # nor may anything else change it meanwhile
            assert cli(site.path, "migrate", command, plan_id).returncode == 1
    finally:
        proxy.before_forward = None
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert json.loads(out)["complete"]
