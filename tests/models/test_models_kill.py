"""Acceptance: a publish killed with SIGKILL at a random moment leaves no visible version,
and a later publish and ``gc`` succeed.

A subprocess publishes a model of 30 files (60 MB); it is killed at random moments while
it hashes, uploads or commits. Each trial changes a few bytes of every file, so every
trial has new objects to upload. After the trials: the versions are those committed
before, a new publish succeeds and reads back, and ``gc(grace_period_s=0)`` leaves exactly
the objects that live versions reference.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from models_support import Site, empty_cache, live_keys, tree_bytes, write_files

CHILD = Path(__file__).with_name("models_child.py")
FILES = 30
SIZE = 60 * 10**6


def make_source(folder: Path) -> Path:
    rng = random.Random(7)
    sizes = [rng.randint(SIZE // FILES // 4, 2 * SIZE // FILES) for _ in range(FILES)]
    scale = SIZE / sum(sizes)
    return write_files(folder, {f"layer-{i // 10}/part-{i:02d}.bin": os.urandom(int(s * scale))
                                for i, s in enumerate(sizes)})


def mutate(source: Path, trial: int) -> None:
    """Change the first bytes of every file, so every digest (and object key) is new."""
    for path in source.rglob("*.bin"):
        with open(path, "r+b") as file:
            file.write(f"trial {trial:04d} ".encode())


def start_publish(site: Site, name: str, source: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, str(CHILD), "publish", site.config_json(), name,
                              str(source)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    assert child.stdout is not None
    line = child.stdout.readline()  # connected; the publish starts now
    assert line.strip() == "publishing", child.stderr.read() if child.stderr else line
    return child


def publish_seconds(site: Site, name: str, source: Path) -> float:
    """How long a whole publish takes in a child (it commits a version)."""
    child = start_publish(site, name, source)
    started = time.monotonic()
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0 and "committed" in out, err
    return time.monotonic() - started


@pytest.mark.slow
@pytest.mark.parametrize("backend,trials", [("local", 6), ("s3", 3)])
def test_sigkill_during_publish_leaves_no_version_and_gc_cleans_up(
        backend: str, trials: int, tmp_path: Path,
        site_factory: Callable[[str, Path], Site]) -> None:
    site = site_factory(backend, tmp_path / "site")
    source = make_source(tmp_path / "src")
    duration = publish_seconds(site, "bert", source)  # version 1, committed normally
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    killed = 0
    with site.plane() as plane:
        for trial in range(1, trials + 1):
            mutate(source, trial)
            before = [(v.version, v.digest) for v in plane.models.versions("bert")]
            child = start_publish(site, "bert", source)
            # A random moment; the last trial kills early if none has been killed yet (a
            # publish can run faster than the one timed, so late moments may all miss).
            late = 0.8 if killed or trial < trials else 0.15
            time.sleep(rng.uniform(0.0, late * duration))
            child.send_signal(signal.SIGKILL)
            out, err = child.communicate(timeout=60)
            after = [(v.version, v.digest) for v in plane.models.versions("bert")]
            if "committed" in out:  # it finished first (the kill hit its exit, or nothing)
                assert len(after) == len(before) + 1 and after[:-1] == before
                continue
            assert child.returncode == -signal.SIGKILL, err
            killed += 1
            if after != before:  # killed right after its commit went through: whole
                assert after[:-1] == before
                empty_cache(plane)
                assert tree_bytes(plane.models.fetch("bert")) == tree_bytes(source)
        assert killed >= 1, f"every publish finished before its kill (seed {seed})"

        mutate(source, 9999)
        version = plane.models.publish("bert", source)  # a later publish succeeds
        assert tree_bytes(plane.models.fetch(version.uri)) == tree_bytes(source)

        orphans = site.keys("default/models/bert/") - live_keys(plane, "bert")
        report = plane.gc(grace_period_s=0)
        assert {info.key for _, info in report.objects} == orphans
        assert site.keys("default/models/bert/") == live_keys(plane, "bert")
        empty_cache(plane)
        for v in plane.models.versions("bert"):  # every live version still reads back
            plane.models.fetch(v.uri, tmp_path / f"check-{v.version}")
