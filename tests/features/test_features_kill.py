"""A materialization killed part-way (SIGKILL) leaves every entity whole and readable:
each has its previous complete value or its new one, never a mix, and a rerun finishes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from feature_support import plane_config

import dataplane
from dataplane.features import Entity, Feature, FeatureView

N = 6000
CHILD = Path(__file__).with_name("materialize_child.py")


def version(t: datetime, shift: int) -> pa.Table:
    ids = list(range(N))
    return pa.table({"driver_id": ids,
                     "event_timestamp": pa.array([t - timedelta(hours=2 - shift)] * N,
                                                 pa.timestamp("us", tz="UTC")),
                     "a": [i + shift * 100_000 for i in ids],
                     "b": [2 * (i + shift * 100_000) for i in ids]})


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_killed_materialization_leaves_whole_values(tmp_path: Path, store: str,
                                                    request: pytest.FixtureRequest) -> None:
    extra = {"online_url": request.getfixturevalue("redis_url")} if store == "redis" else {}
    config = plane_config(tmp_path, project=f"conf_kill_{store}_{time.time_ns()}", **extra)
    t = datetime.now(UTC).replace(microsecond=0)
    plane = dataplane.connect(config)
    plane.datasets.write("kill/pairs", version(t, 0), aliases=["prod"])
    plane.features.apply([Entity("driver", join_key="driver_id"), FeatureView(
        "pairs", ("driver",), (Feature("a", "int64"), Feature("b", "int64")),
        "datasets/kill/pairs@prod")])
    plane.features.materialize(t - timedelta(days=1), t)
    plane.datasets.write("kill/pairs", version(t, 1), aliases=["prod"])
    child = subprocess.Popen([sys.executable, str(CHILD), json.dumps(config), t.isoformat()],
                             stdout=subprocess.PIPE, text=True)
    rows = {"driver_id": list(range(N))}
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "materializing"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # kill once the first batch is in
            if plane.features.get_online(["pairs:a"], {"driver_id": [0]})["a"][0] >= 100_000:
                break
            time.sleep(0.001)
        child.kill()
    finally:
        child.wait()
    got = plane.features.get_online(["pairs:a", "pairs:b"], rows)
    pairs = list(zip(got["a"], got["b"], strict=True))
    assert all(a in (i, i + 100_000) and b == 2 * a for i, (a, b) in enumerate(pairs))
    new = sum(a >= 100_000 for a, _ in pairs)
    assert new > 0, "the child was killed before it wrote anything"
    plane.features.materialize(t - timedelta(days=1), t)  # a rerun completes the job
    assert plane.features.get_online(["pairs:a"], rows)["a"] == [i + 100_000 for i in range(N)]
    plane.close()
