"""The full acceptance run of ``dataplane migrate`` (too long for the CI suite).

A mixed catalog — models, datasets and checkpoints; thousands of objects, >= 1 GiB by
default — is published on local disk. Four reader processes (``tests/migrate/
migrate_child.py reader``) resolve random versions and verify every byte against SHA-256
computed from the inputs, the whole time. Then:

1. local -> S3 (a ``moto_server`` process): ``dataplane migrate run`` is killed with
   SIGKILL at ``--kills`` random points (after a random number of newly verified
   objects), then resumed to completion. No object verified before a kill may be copied
   again (the journal's per-object ``copies`` counter), and ``migrate verify`` must find
   every object matched;
2. rollback with the readers running, then run again (nothing copied twice);
3. S3 -> GCS (a fake-gcs-server process) the same way, with a few kills;
4. after the grace period, cleanup of both plans: the local and S3 copies are deleted and
   nothing else (GCS holds every object; every version reads back right);
5. the readers stop: zero errors, zero wrong bytes.

Run: ``python benchmarks/migrate_acceptance.py [--gib 1.0] [--kills 10]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from _report import render
from _servers import fake_gcs_server, moto_server

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "migrate"))
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"

from migrate_support import (  # noqa: E402
    Catalog,
    Readers,
    array_sha,
    journal_snapshot,
    locations,
    read_back,
    sha,
)

import dataplane  # noqa: E402
from dataplane.checkpoints import CheckpointStore, IOSettings  # noqa: E402
from dataplane.facade import DataPlane  # noqa: E402

GRACE_S = 5.0


def populate(plane: DataPlane, work: Path, total: int, rng: np.random.Generator) -> Catalog:
    """~60% models (many files), ~15% datasets, ~25% checkpoints (one packed, two with
    an object per chunk)."""
    out = Catalog()
    model_bytes = int(total * 0.6)
    for m in range(10):
        folder = work / f"model-{m}"
        folder.mkdir()
        files: dict[str, bytes] = {}
        budget = model_bytes // 10
        index = 0
        while budget > 0:
            size = min(budget, int(2 ** (10 + 13 * rng.random() ** 2)))  # 1 KiB .. 8 MiB
            files[f"part-{index:04d}.bin"] = rng.bytes(size)
            budget -= size
            index += 1
        for name, data in files.items():
            (folder / name).write_bytes(data)
        version = plane.models.publish(f"bulk/model-{m}", folder, aliases=["prod"])
        out.expected[f"models:bulk/model-{m}@{version.version}"] = {
            k: sha(v) for k, v in files.items()}
    rows = int(total * 0.15) // 16 // 3
    for _ in range(3):
        table = pa.table({"id": np.arange(rows), "x": rng.random(rows)})
        version = plane.datasets.write("bulk/events", table)
        out.expected[f"datasets:bulk/events@{version.version}"] = {
            f.path: sha(plane.datasets.open(version.uri, f.path).read()) for f in version.files}
    per_step = int(total * 0.25) // 3
    for step in (1, 2, 3):
        state = {"model": {f"layer{i}": rng.standard_normal(per_step // 8 // 200)
                           for i in range(200)}, "step": step}
        # both layouts: step 1 packed in one archive (the local default), steps 2 and 3
        # one object per chunk and zarr.json (as multi-rank saves and object stores write)
        store = CheckpointStore(plane, settings=IOSettings(pack=step == 1))
        store.save("bulk-run", step, state)
        store.close()
        out.expected[f"checkpoints:bulk-run@{step}"] = {
            f"model/layer{i}": array_sha(state["model"][f"layer{i}"]) for i in range(200)}
    return out


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dataplane", "--config", str(config), *args],
                          capture_output=True, text=True, env=_env())


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    return env


def killed_run(plane: DataPlane, config: Path, plan_id: str, kills: int,
               rng: random.Random) -> dict[str, Any]:
    """Run, kill -9 ``kills`` times at random points, resume; check the copy counts."""
    snapshots = []
    for _ in range(kills):
        child = subprocess.Popen([sys.executable, "-m", "dataplane", "--config", str(config),
                                  "migrate", "run", plan_id, "--json"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 env=_env())
        target = _verified(plane, plan_id) + rng.randint(1, 60)
        while _verified(plane, plan_id) < target and child.poll() is None:
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        snapshots.append(journal_snapshot(plane, plan_id))
    started = time.perf_counter()
    done = cli(config, "migrate", "run", plan_id, "--json")
    assert done.returncode == 0, done.stderr
    final = journal_snapshot(plane, plan_id)
    again = [key for snap in snapshots for key, (state, copies) in snap.items()
             if state == "verified" and final[key][1] != copies]
    assert not again, f"verified objects copied again: {again[:5]}"
    verify = json.loads(cli(config, "migrate", "verify", plan_id, "--json").stdout)
    assert verify["clean"], verify
    return {"objects": len(final), "kills": kills,
            "verified_at_kills": [sum(s == "verified" for s, _ in snap.values())
                                  for snap in snapshots],
            "copies": sum(c for _, c in final.values()),
            "copied_twice_after_verified": len(again), "resume_s": time.perf_counter() - started,
            "verify": verify}


def _verified(plane: DataPlane, plan_id: str) -> int:
    return sum(state == "verified" for state, _ in journal_snapshot(plane, plan_id).values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--gib", type=float, default=1.1)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--work-dir")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dp-accept-", dir=args.work_dir))
    rng = random.Random(1)
    with moto_server() as s3, fake_gcs_server() as gcs:
        import gcsfs
        import s3fs

        s3fs.S3FileSystem(key="testing", secret="testing", endpoint_url=s3.endpoint).mkdir("lake")
        gcsfs.GCSFileSystem(token="anon", project="test", endpoint_url=gcs.endpoint).mkdir("lake")
        config = {"catalog": {"url": f"sqlite:///{work / 'catalog.db'}"},
                  "defaults": {"backend": "local"}, "cache": {"dir": str(work / "cache")},
                  "backends": {"local": {"url": (work / "blobs").as_uri()},
                               "s3": {"url": "s3://lake/dp", "key": "testing",
                                      "secret": "testing", "endpoint_url": s3.endpoint},
                               "gcs": {"url": "gs://lake/dp", "token": "anon",
                                       "project": "test", "endpoint_url": gcs.endpoint}}}
        path = work / "dataplane.json.toml"
        path.write_text(_toml(config))
        plane = dataplane.connect(config)
        started = time.perf_counter()
        catalog = populate(plane, work, int(args.gib * 2**30), np.random.default_rng(2))
        objects = sum(1 for _ in plane.store("local").list(""))
        print(f"published {len(catalog.refs)} versions, {objects} objects in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        readers = Readers(config, catalog, work, 4)
        try:
            return _migrations(plane, path, catalog, objects, readers, args.kills, rng,
                               started)
        finally:
            readers.stop_file.write_text("stop")  # stopped before the servers, always
            for process in readers.procs:
                process.wait(timeout=120)
            plane.close()
            shutil.rmtree(work, ignore_errors=True)


def _migrations(plane: DataPlane, path: Path, catalog: Catalog, objects: int,
                readers: Readers, kills: int, rng: random.Random, started: float) -> int:
    """Steps 1-5 of the module docstring; returns the exit code."""
    readers.wait_started()
    results: dict[str, Any] = {}
    plan1 = json.loads(cli(path, "migrate", "plan", "--to", "s3", "--grace",
                           str(GRACE_S), "--json").stdout)
    print("plan 1:", plan1, flush=True)
    results["local -> s3"] = killed_run(plane, path, plan1["plan_id"], kills, rng)
    print(results["local -> s3"], flush=True)
    assert cli(path, "migrate", "rollback", plan1["plan_id"]).returncode == 0
    time.sleep(2)
    rerun = json.loads(cli(path, "migrate", "run", plan1["plan_id"], "--json").stdout)
    assert rerun["complete"] and rerun["objects_copied"] == 0, rerun
    plan2 = json.loads(cli(path, "migrate", "plan", "--to", "gcs", "--from", "s3",
                           "--grace", str(GRACE_S), "--json").stdout)
    results["s3 -> gcs"] = killed_run(plane, path, plan2["plan_id"], 3, rng)
    print(results["s3 -> gcs"], flush=True)
    time.sleep(GRACE_S)
    for plan in (plan1, plan2):
        cleaned = json.loads(cli(path, "migrate", "cleanup", plan["plan_id"],
                                 "--json").stdout)
        assert not cleaned["errors"] and not cleaned["waiting"], cleaned
    left = {b: sum(1 for info in plane.store(b).list("") if "/_dataplane" not in info.key)
            for b in ("local", "s3", "gcs")}
    assert left["local"] == 0 and left["s3"] == 0 and left["gcs"] == objects, left
    assert all(where == [("gcs", "active"), ("local", "deleted"), ("s3", "deleted")]
               for where in locations(plane).values())
    for ref, expected in catalog.expected.items():
        assert read_back(plane, ref, expected) == [], ref
    reads = readers.stop()
    errors = [e for r in reads for e in r["errors"]]
    print()
    rows = [(name, str(r["objects"]), str(r["kills"]),
             str(r["copied_twice_after_verified"]),
             f"{r['verify']['matched']}/{r['verify']['missing']}/{r['verify']['differing']}")
            for name, r in results.items()]
    print(render(("migration", "objects", "kill -9", "verified objects copied again",
                  "verify matched/missing/differing"), rows, {0}))
    print(f"\nreaders: {sum(r['reads'] for r in reads)} version reads, "
          f"{len(errors)} errors, wrong bytes: {sum('wrong' in e for e in errors)}")
    print(f"objects left after cleanup: {left}")
    print(f"total {time.perf_counter() - started:.0f} s")
    return 1 if errors else 0


def _toml(config: dict[str, Any]) -> str:
    lines = [f"[catalog]\nurl = {json.dumps(config['catalog']['url'])}",
             f"[defaults]\nbackend = {json.dumps(config['defaults']['backend'])}",
             f"[cache]\ndir = {json.dumps(config['cache']['dir'])}"]
    for name, spec in config["backends"].items():
        lines.append(f"[backends.{name}]\n" + "\n".join(
            f"{k} = {json.dumps(v)}" for k, v in spec.items()))
    return "\n\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
