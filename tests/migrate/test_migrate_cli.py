"""The ``dataplane migrate`` commands end to end: JSON for automation, exit codes, text."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from click.testing import CliRunner
from migrate_support import locations, populate

from dataplane.cli.main import cli
from dataplane.facade import DataPlane


def _run(site: Any, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--config", str(site.path), *args])


def test_the_whole_cycle_from_the_command_line(make_site: Callable[..., Any],
                                               plane_of: Callable[..., DataPlane]) -> None:
    site = make_site("local", "s3")
    plane = plane_of(site)
    populate(plane, site.work)

    text = _run(site, "migrate", "plan", "--to", "s3", "checkpoints")
    assert text.exit_code == 0, text.output
    assert "versions: 2 checkpoints" in text.output and "dataplane migrate run m-" in text.output
    planned = _run(site, "migrate", "plan", "--to", "s3", "--from", "local", "models",
                   "name=nlp/*", "versions=2..", "--grace", "0", "--json")
    assert planned.exit_code == 0, planned.output
    plan = json.loads(planned.output)
    assert plan["versions"] == {"models": 2} and plan["objects"] == 5 and plan["bytes"] > 0
    plan_id = plan["plan_id"]

    status = json.loads(_run(site, "migrate", "status", plan_id, "--json").output)
    assert (status["state"], status["matched"], status["missing"], status["differing"]) == (
        "planned", 0, 5, 0)
    ran = _run(site, "migrate", "run", plan_id)
    assert ran.exit_code == 0, ran.output
    assert "flipped; 5 object(s) copied" in ran.output
    status = json.loads(_run(site, "migrate", "status", plan_id, "--json").output)
    assert (status["state"], status["matched"], status["missing"], status["differing"]) == (
        "flipped", 5, 0, 0)
    assert status["versions"] == {"flipped": 2} and status["stats"]["bytes_copied"] > 0
    verified = json.loads(_run(site, "migrate", "verify", plan_id, "--json").output)
    assert (verified["matched"], verified["missing"], verified["differing"]) == (5, 0, 0)
    listing = _run(site, "migrate", "status")
    assert plan_id in listing.output and "flipped" in listing.output
    assert len(json.loads(_run(site, "migrate", "status", "--json").output)) == 2

    assert "2 version(s) moved back" in _run(site, "migrate", "rollback", plan_id).output
    assert locations(plane)["models:nlp/bert@2"] == [("local", "active"), ("s3", "draining")]
    assert _run(site, "migrate", "run", plan_id).exit_code == 0  # flip again
    cleaned = json.loads(_run(site, "migrate", "cleanup", plan_id, "--json").output)
    assert cleaned["versions"] == 2 and cleaned["objects_kept_shared"] == 1
    assert locations(plane)["models:nlp/bert@3"] == [("local", "deleted"), ("s3", "active")]
    again = _run(site, "migrate", "rollback", plan_id)
    assert again.exit_code == 1 and "cleanup already deleted" in again.output


def test_unknown_plan_and_waiting_cleanup(make_site: Callable[..., Any],
                                          plane_of: Callable[..., DataPlane]) -> None:
    site = make_site("local", "s3")
    plane = plane_of(site)
    populate(plane, site.work)
    missing = _run(site, "migrate", "run", "m-nope")
    assert missing.exit_code == 3 and "no migration plan 'm-nope'" in missing.output
    plan_id = plane.migrate.plan("s3", "datasets").plan_id  # default grace: one day
    assert _run(site, "migrate", "run", plan_id, "--json").exit_code == 0
    waiting = _run(site, "migrate", "cleanup", plan_id)
    assert waiting.exit_code == 0 and "0 version(s) cleaned" in waiting.output
    assert "waiting: dp://default/datasets/reviews@1" in waiting.output
    assert locations(plane)["datasets:reviews@1"] == [("local", "draining"), ("s3", "active")]
