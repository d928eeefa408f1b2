"""Acceptance: kill -9 at 20 random moments during saves; afterwards ``latest`` always loads
a checkpoint bit-identical to one that was saved, never a torn one.

A saver process (``ckpt_child.py``) saves step after step of a ~57 MB state (four large
tensors, one of them bfloat16, 4 MiB chunks, and 300 small arrays; retention keeps the
last 2, so kills also land in deletes) and is SIGKILLed at a random moment. The state of
every step is deterministic (:func:`ckpt_child.kill_state`), so after each kill the test
rebuilds the state of the step ``latest`` names and compares it bit for bit. Every five
kills (and at the end), ``gc(run, grace_period_s=0)`` removes exactly the torn prefixes and
nothing committed; then every surviving step verifies and a new save goes through.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from ckpt_child import kill_state, make_base
from ckpt_support import CkptSite, assert_same, local_site, mount_tmpfs, unmount

from dataplane.checkpoints import CheckpointStore

CHILD = Path(__file__).with_name("ckpt_child.py")
KILLS = 20
RUN = "train"


class Zygote:
    """The warm process that forks one saver per trial (see ``ckpt_child.py``)."""

    def __init__(self, site: CkptSite):
        self.process = subprocess.Popen(
            [sys.executable, str(CHILD), site.config_json(), RUN], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.expect("ready", timeout=60)
        self.saver: int | None = None

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())
        self.lines.put("<eof>")

    def next_line(self, timeout: float) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output from the saver in {timeout} s") from None
        if line == "<eof>":
            stderr = self.process.stderr.read() if self.process.stderr else ""
            raise AssertionError(f"the saver process ended: {stderr}")
        return line

    def expect(self, prefix: str, timeout: float = 60) -> tuple[str, list[str]]:
        """Read until a line starting with ``prefix``; returns it and the lines before."""
        seen = []
        while True:
            line = self.next_line(timeout)
            if line.startswith(prefix):
                return line, seen
            seen.append(line)

    def go(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        line, _ = self.expect("pid ")
        self.saver = int(line.split()[1])
        return self.saver

    def kill_saver(self) -> list[str]:
        """SIGKILL the saver; returns what it printed (it must have died of the signal)."""
        assert self.saver is not None
        os.kill(self.saver, signal.SIGKILL)
        line, seen = self.expect("exit ")
        assert line == f"exit {int(signal.SIGKILL)}", line
        self.saver = None
        return seen

    def close(self) -> None:
        if self.saver is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.saver, signal.SIGKILL)
        self.process.kill()
        self.process.wait(timeout=30)


def saved_steps(lines: list[str]) -> list[int]:
    return [int(line.split()[1]) for line in lines if line.startswith("saved ")]


@pytest.fixture
def kill_site(tmp_path: Path, request: pytest.FixtureRequest) -> CkptSite:
    """A local backend whose blob folder is a tmpfs where one can be mounted (the catalog
    stays on disk). SIGKILL ends the process, not the machine: what it tests is the commit
    protocol (nothing visible before the catalog commit), which does not depend on the file
    system, and on tmpfs fsync costs nothing, so 20 kills take seconds, not minutes (and a
    kill is never held up by a process stuck in fsync). Elsewhere the folder is on disk."""
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    if mount_tmpfs(blobs, "1g"):
        request.addfinalizer(lambda: unmount(blobs))
    return local_site(tmp_path, blobs=blobs)


def check_gc(site: CkptSite, ckpts: CheckpointStore, where: str) -> None:
    """``gc`` (no saver running) removes exactly the torn prefixes, nothing committed."""
    live = {site.key_of(ckpts.checkpoint(RUN, s)) for s in ckpts.steps(RUN)}
    torn = site.step_prefixes(RUN) - live
    assert set(ckpts.gc(RUN, grace_period_s=0)) == torn, where
    assert site.step_prefixes(RUN) == live, where


@pytest.mark.slow
def test_sigkill_at_random_moments_never_exposes_a_torn_checkpoint(kill_site: CkptSite) -> None:
    site = kill_site
    base = make_base()
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    where = f"(seed {seed})"
    zygote = Zygote(site)
    try:
        with site.plane() as plane:
            ckpts = plane.checkpoints
            # calibrate: how long from "go" to the first save, and how long one save takes
            started = time.monotonic()
            zygote.go()
            zygote.expect("saving ")
            connect = time.monotonic() - started
            zygote.expect("saved ")
            first = time.monotonic()
            zygote.expect("saved ")
            one_save = time.monotonic() - first
            zygote.kill_saver()
            last_saved = 2
            killed_inside = 0

            for trial in range(KILLS):
                before = ckpts.steps(RUN)
                zygote.go()
                time.sleep(rng.uniform(0.5 * connect, connect + 2.5 * one_save))
                printed = zygote.kill_saver()
                last_saved = max([last_saved, *saved_steps(printed)])
                steps = ckpts.steps(RUN)
                latest = ckpts.latest(RUN)
                assert latest is not None, where
                # the newest step is one the saver finished, or the one it was killed in
                # right after its commit (before it could print "saved")
                assert latest.step in (last_saved, last_saved + 1), (trial, latest, where)
                last_saved = latest.step
                assert steps[-1] == latest.step, where
                assert all(s < latest.step for s in set(before) - set(steps)), where
                loaded = ckpts.load(RUN)
                assert_same(loaded, kill_state(latest.step, base), f"<trial {trial} {where}>")
                killed_inside += bool(printed) and printed[-1].startswith("saving ")
                if trial % 5 == 4 or trial == KILLS - 1:
                    check_gc(site, ckpts, f"trial {trial} {where}")

            print(f"{KILLS} kills, {killed_inside} inside a save; one save {one_save:.2f} s, "
                  f"connect {connect:.2f} s, steps reached {last_saved} {where}")
            assert killed_inside >= KILLS // 4, f"few kills landed inside a save {where}"
            for step in ckpts.steps(RUN):  # every surviving step is whole
                assert ckpts.verify(RUN, step).step == step
                assert_same(ckpts.load(RUN, step), kill_state(step, base), f"<{where}>")
            next_step = last_saved + 1
            ckpts.save(RUN, next_step, kill_state(next_step, base))  # and saving goes on
            assert_same(ckpts.load(RUN), kill_state(next_step, base))
    finally:
        zygote.close()
