"""kill -9 of ``dataplane migrate run`` at random points, then resume: the run completes,
no object verified before a kill is copied again (counted from the journal), and the
destination verifies clean. (The 10-kill acceptance run: benchmarks/migrate.py --kills.)"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections.abc import Callable

import numpy as np
from migrate_support import cli, journal_snapshot, locations, start_cli

from dataplane.facade import DataPlane

KILLS = 3


def test_kill_9_at_random_points_then_resume(make_site: Callable[..., object],
                                             plane_of: Callable[..., DataPlane]) -> None:
    site = make_site("local", "s3")
    plane = plane_of(site)
    rng = np.random.default_rng(3)
    folder = site.work / "many"
    folder.mkdir()
    for index in range(240):
        (folder / f"part-{index:04d}.bin").write_bytes(rng.bytes(int(rng.integers(1, 200_000))))
    plane.models.publish("big/model", folder)
    plan = json.loads(cli(site.path, "migrate", "plan", "--to", "s3", "--json").stdout)
    plan_id = plan["plan_id"]
    snapshots = []
    chooser = random.Random(11)
    for _ in range(KILLS):
        run = start_cli(site.path, "migrate", "run", plan_id, "--workers", "2", "--json")
        target = _verified(plane, plan_id) + chooser.randint(5, 40)
        deadline = time.monotonic() + 60
        while _verified(plane, plan_id) < target and run.poll() is None:
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.02)
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        snapshots.append(journal_snapshot(plane, plan_id))
    done = cli(site.path, "migrate", "run", plan_id, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["complete"]

    final = journal_snapshot(plane, plan_id)
    assert {state for state, _ in final.values()} == {"verified"}
    for snapshot in snapshots:
        for key, (state, copies) in snapshot.items():
            if state == "verified":  # never copied again after it verified
                assert final[key][1] == copies, key
    assert sum(1 for s in snapshots[-1].values() if s[0] == "verified") > 0
    assert locations(plane)["models:big/model@1"] == [("local", "draining"), ("s3", "active")]
    verify = cli(site.path, "migrate", "verify", plan_id, "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    counts = json.loads(verify.stdout)
    assert (counts["matched"], counts["missing"], counts["differing"]) == (240, 0, 0)


def _verified(plane: DataPlane, plan_id: str) -> int:
    return sum(1 for state, _ in journal_snapshot(plane, plan_id).values()
               if state == "verified")
