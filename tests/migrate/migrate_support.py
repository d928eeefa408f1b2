"""Helpers for the migration tests: a mixed catalog, raw access, reader processes.

:func:`populate` publishes models (versions that share files, an alias), datasets and
checkpoints, and returns what every version must read back as (SHA-256 of each file and
of each array's bytes), computed from the inputs, not from anything dataplane stored.
:class:`Readers` runs reader processes (``migrate_child.py reader``) that resolve and
verify random versions until told to stop.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

import dataplane
from dataplane.facade import DataPlane
from dataplane.migrate.journal import Journal

CHILD = Path(__file__).with_name("migrate_child.py")
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Catalog:
    """What :func:`populate` wrote: ``expected[ref] = {path or array key: sha256}``."""

    expected: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def refs(self) -> list[str]:
        return sorted(self.expected)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def array_sha(value: np.ndarray) -> str:
    return sha(np.ascontiguousarray(value).tobytes())


def populate(plane: DataPlane, work: Path, *, scale: int = 1, seed: int = 7) -> Catalog:
    """Models, datasets and checkpoints on the plane's default backend."""
    rng = np.random.default_rng(seed)
    out = Catalog()
    shared = rng.bytes(300_000 * scale)
    for number in range(1, 4):
        folder = work / f"bert-{number}"
        (folder / "tok").mkdir(parents=True)
        files = {"shared.bin": shared, "weights.bin": rng.bytes(int(1.5e6) * scale),
                 "tok/vocab.txt": f"vocab {number}\n".encode() * 50}
        for path, data in files.items():
            (folder / path).write_bytes(data)
        aliases = ["prod"] if number == 2 else []
        version = plane.models.publish("nlp/bert", folder, aliases=aliases)
        out.expected[f"models:nlp/bert@{version.version}"] = {p: sha(d) for p, d in files.items()}
    one = work / "resnet.bin"
    one.write_bytes(rng.bytes(9_000_000 * scale))  # two 8 MiB chunks
    plane.models.publish("vision/resnet", one)
    out.expected["models:vision/resnet@1"] = {"resnet.bin": sha(one.read_bytes())}
    for number in range(1, 3):
        table = pa.table({"id": np.arange(20_000 * number), "x": rng.random(20_000 * number)})
        version = plane.datasets.write("reviews", table)
        out.expected[f"datasets:reviews@{version.version}"] = {
            f.path: sha(plane.datasets.open(version.uri, f.path).read()) for f in version.files}
    for step in (1, 2):
        state = {"model": {"w": rng.standard_normal((300, 200)).astype(np.float32),
                           "b": rng.standard_normal(64)}, "step": step}
        plane.checkpoints.save("run-7", step, state)
        out.expected[f"checkpoints:run-7@{step}"] = {
            "model/w": array_sha(state["model"]["w"]), "model/b": array_sha(state["model"]["b"])}
    return out


def read_back(plane: DataPlane, ref: str, expected: dict[str, str]) -> list[str]:
    """Read one version through dataplane; returns what differed (empty when right)."""
    kind, _, address = ref.partition(":")
    wrong: list[str] = []
    if kind == "checkpoints":
        run, _, step = address.partition("@")
        state = plane.checkpoints.load(run, int(step))
        for key, digest in expected.items():
            group, _, leaf = key.partition("/")
            if array_sha(state[group][leaf]) != digest:
                wrong.append(f"{ref}:{key}")
        return wrong
    store = plane.models if kind == "models" else plane.datasets
    for path, digest in expected.items():
        with store.open(address, path) as file:
            if sha(file.read()) != digest:
                wrong.append(f"{ref}:{path}")
    return wrong


def locations(plane: DataPlane) -> dict[str, list[tuple[str, str]]]:
    """``ref -> [(backend, state)]`` for every version in the catalog."""
    found: dict[str, list[tuple[str, str]]] = {}
    for kind in ("models", "datasets", "checkpoints"):
        for name in plane.catalog.names(plane.tenant, kind):
            for record in plane.catalog.versions(plane.tenant, kind, name.name):
                found[f"{kind}:{name.name}@{record.number}"] = [
                    (loc.backend, loc.state) for loc in record.locations]
    return found


def journal_snapshot(plane: DataPlane, plan_id: str) -> dict[str, tuple[str, int]]:
    """``key -> (state, copies)`` as the journal holds them now."""
    return {row.key: (row.state, row.copies)
            for row in Journal(plane.catalog.database, plan_id).objects()}


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
    return env


def cli(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``dataplane --config CONFIG ARGS`` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "dataplane", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=timeout, env=child_env())


def start_cli(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "dataplane", "--config", str(config), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env())


class Readers:
    """``count`` reader processes over ``catalog``; :meth:`stop` returns their results."""

    def __init__(self, config: dict[str, Any], catalog: Catalog, work: Path, count: int = 4):
        self.work = work
        self.stop_file = work / "readers.stop"
        spec = work / "readers.json"
        spec.write_text(json.dumps({"config": config, "expected": catalog.expected}))
        self.procs = [subprocess.Popen(
            [sys.executable, str(CHILD), "reader", str(spec), str(self.stop_file),
             str(work / f"reader-{i}.json"), str(i)], env=child_env())
            for i in range(count)]

    def wait_started(self, reads: int = 1, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = [self.work / f"reader-{i}.json.progress" for i in range(len(self.procs))]
            if all(p.exists() and int(p.read_text() or 0) >= reads for p in done):
                return
            if any(p.poll() is not None for p in self.procs):
                raise AssertionError("a reader process exited early")
            time.sleep(0.1)
        raise AssertionError("reader processes did not start reading")

    def stop(self) -> list[dict[str, Any]]:
        self.stop_file.write_text("stop")
        results = []
        for index, proc in enumerate(self.procs):
            assert proc.wait(timeout=120) == 0, f"reader {index} exited with {proc.returncode}"
            results.append(json.loads((self.work / f"reader-{index}.json").read_text()))
        return results


@contextmanager
def readers(config: dict[str, Any], catalog: Catalog, work: Path, count: int = 4) -> Any:
    """Reader processes for the block; asserts zero errors and zero wrong bytes at the end."""
    group = Readers(config, catalog, work, count)
    try:
        group.wait_started()
        yield group
    finally:
        results = group.stop()
    errors = [e for r in results for e in r["errors"]]
    assert not errors, f"reader errors: {errors[:5]}"
    assert sum(r["reads"] for r in results) > 0


def connect(config: dict[str, Any]) -> DataPlane:
    return dataplane.connect(config)
