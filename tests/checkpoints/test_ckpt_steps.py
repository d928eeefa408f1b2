"""Listing and pruning on every blob backend: steps, latest, delete, retention, gc."""

from __future__ import annotations

import numpy as np
import pytest
from ckpt_support import TENANT, CkptSite, assert_same

from dataplane import NotFoundError
from dataplane.checkpoints import Retention
from dataplane.facade import DataPlane


def small(step: int) -> dict[str, object]:
    return {"w": np.full((3, 4), step, np.float32), "b": np.arange(step + 1), "step": step}


def test_steps_latest_and_delete(ckpt_plane: DataPlane, ckpt_site: CkptSite) -> None:
    ckpts = ckpt_plane.checkpoints
    assert ckpts.steps("r") == [] and ckpts.latest("r") is None
    for step in (5, 3, 9, 0):  # out of order
        ckpts.save("r", step, small(step))
    ckpts.save("other", 100, small(100))  # another run is independent
    assert ckpts.steps("r") == [0, 3, 5, 9]
    latest = ckpts.latest("r")
    assert latest is not None and latest.step == 9 and latest.run == "r"
    assert_same(ckpts.load("r"), small(9))
    assert_same(ckpts.load("r", 3), small(3))

    doomed = ckpt_site.key_of(ckpts.checkpoint("r", 9)) + "/"
    assert ckpt_site.keys(doomed)
    ckpts.delete("r", 9)
    assert ckpts.steps("r") == [0, 3, 5]
    assert ckpts.latest("r").step == 5  # type: ignore[union-attr]
    assert_same(ckpts.load("r"), small(5))
    assert ckpt_site.keys(doomed) == set(), "a deleted step's objects stay on the backend"
    with pytest.raises(NotFoundError, match="9"):
        ckpts.load("r", 9)
    with pytest.raises(NotFoundError, match="9"):
        ckpts.delete("r", 9)

    ckpts.save("r", 9, small(90))  # a deleted step can be saved again
    assert ckpts.steps("r") == [0, 3, 5, 9]
    assert_same(ckpts.load("r", 9), small(90))
    assert ckpts.steps("other") == [100]


def test_retention_keep_last_and_keep_every(ckpt_plane: DataPlane, ckpt_site: CkptSite) -> None:
    ckpts = ckpt_plane.checkpoints
    ckpts.retention = Retention(keep_last=2, keep_every=10)
    survivors_after = {}
    for step in range(1, 26):
        ckpts.save("ret", step, small(step))
        survivors_after[step] = ckpts.steps("ret")
    assert survivors_after[1] == [1] and survivors_after[2] == [1, 2]
    assert survivors_after[3] == [2, 3]  # applied after each successful save
    assert survivors_after[11] == [10, 11] and survivors_after[12] == [10, 11, 12]
    assert ckpts.steps("ret") == [10, 20, 24, 25]
    for step in (10, 20, 24, 25):
        assert_same(ckpts.load("ret", step), small(step))
    # every pruned step's objects are gone from the backend, the survivors' are all there
    live = {ckpt_site.key_of(ckpts.checkpoint("ret", s)) for s in (10, 20, 24, 25)}
    assert ckpt_site.step_prefixes("ret") == live


def test_retention_keeps_everything_by_default(ckpt_plane: DataPlane) -> None:
    ckpts = ckpt_plane.checkpoints
    for step in range(1, 6):
        ckpts.save("all", step, small(step))
    assert ckpts.steps("all") == [1, 2, 3, 4, 5]
    assert Retention(keep_last=1).doomed([3, 1, 2]) == [1, 2]
    assert Retention(keep_every=2).doomed([1, 2, 3, 4]) == [1, 3]


def test_gc_removes_torn_prefixes_only_after_the_grace(ckpt_plane: DataPlane,
                                                       ckpt_site: CkptSite) -> None:
    ckpts = ckpt_plane.checkpoints
    kept = ckpts.save("gc", 1, small(1))
    root = f"{TENANT}/checkpoints/gc"
    torn = f"{root}/step-0000000002-deadbeef"  # a save that died before its commit
    ckpt_site.write(f"{torn}/w/c.0.0", b"\0" * 48)
    ckpt_site.write(f"{torn}/w/zarr.json", b"{}")
    ckpt_site.write(f"{torn}/dataplane-manifest.json", b"{}")
    ckpt_site.write(f"{root}-sibling/keep", b"another run whose name starts the same")

    assert ckpts.steps("gc") == [1] and ckpts.latest("gc").step == 1  # type: ignore[union-attr]
    assert ckpts.gc("gc") == []  # young objects may belong to a save in flight
    assert ckpt_site.keys(torn + "/")
    assert ckpts.gc("gc", grace_period_s=0) == [torn]
    assert ckpt_site.step_prefixes("gc") == {ckpt_site.key_of(kept)}
    assert ckpt_site.keys(f"{root}-sibling/") == {f"{root}-sibling/keep"}
    assert_same(ckpts.load("gc"), small(1))
    assert ckpts.verify("gc").step == 1
    assert ckpts.gc("gc", grace_period_s=0) == []


def test_unknown_run_and_missing_step(ckpt_plane: DataPlane) -> None:
    ckpts = ckpt_plane.checkpoints
    with pytest.raises(NotFoundError, match="'ghost'"):
        ckpts.load("ghost")
    with pytest.raises(NotFoundError, match="'ghost'"):
        ckpts.read("ghost", 1, "w")
    ckpts.save("real", 4, small(4))
    for call in (lambda: ckpts.load("real", 5), lambda: ckpts.read("real", 5, "w"),
                 lambda: ckpts.verify("real", 5), lambda: ckpts.checkpoint("real", 5)):
        with pytest.raises(NotFoundError, match=r"'real'.*5"):
            call()
    with pytest.raises(NotFoundError, match="'missing'"):
        ckpts.load("real", 4, keys=["missing"])


def test_gc_of_a_run_leaves_nested_runs_alone(ckpt_plane: DataPlane,
                                              ckpt_site: CkptSite) -> None:
    """Run names nest like paths (``exp`` and ``exp/seed0``), so one run's folder holds the
    other's: gc of the outer run must not take the inner run's checkpoints for torn ones."""
    ckpts = ckpt_plane.checkpoints
    outer = ckpts.save("exp", 1, small(1))
    inner = ckpts.save("exp/seed0", 1, small(2))
    torn = f"{TENANT}/checkpoints/exp/step-0000000002-0badcafe"
    ckpt_site.write(f"{torn}/w/c.0.0", b"\0" * 48)

    assert ckpts.gc("exp", grace_period_s=0) == [torn]
    assert ckpts.gc("exp/seed0", grace_period_s=0) == []
    nested = f"{TENANT}/checkpoints/exp/seed0"  # the inner run's folder, as a step_prefix
    assert ckpt_site.step_prefixes("exp") == {ckpt_site.key_of(outer), nested}
    assert ckpt_site.step_prefixes("exp/seed0") == {ckpt_site.key_of(inner)}
    assert_same(ckpts.load("exp/seed0"), small(2))
    assert_same(ckpts.load("exp"), small(1))
    ckpts.delete("exp", 1)
    assert_same(ckpts.load("exp/seed0"), small(2))
