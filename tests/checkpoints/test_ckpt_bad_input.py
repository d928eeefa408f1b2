"""Acceptance: bad input gets a clear error, and the previous checkpoint stays loadable.

Unsupported leaves, keys that collide after joining, metadata that is not JSON, a
template mismatch, a missing step or unknown run, an existing step, a bad step number or
run name: each is refused before a byte is written (the backend's objects are unchanged),
``steps``/``latest`` are unchanged and the previous step loads bit for bit. These run on
local disk, S3 and GCS.

A full disk (a real 8 MiB tmpfs; where mounting is not permitted, or ``CKPT_NO_TMPFS=1``,
a quota-limited local store that fails with ENOSPC) fails the save part way through; the
previous step still loads, ``latest`` is unchanged, and ``gc`` clears the torn leftovers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from ckpt_support import CkptSite, assert_same, local_site, mount_tmpfs, unmount
from dataplane_adapters.local import STAGING

import dataplane
from dataplane import (
    AlreadyExistsError,
    DataplaneError,
    InvalidSourceError,
    NotFoundError,
)
from dataplane.blob import register_adapter
from dataplane.checkpoints import CheckpointStore, IOSettings
from dataplane.facade import DataPlane


def previous_state() -> dict[str, Any]:
    return {"model": {"w": np.arange(12.0).reshape(3, 4), "b": torch.ones(4).bfloat16()},
            "step": 1}


class Previous:
    """Step 1 of run ``r`` saved; :meth:`intact` checks nothing changed since."""

    def __init__(self, plane: DataPlane, site: CkptSite):
        self.plane, self.site = plane, site
        self.checkpoint = plane.checkpoints.save("r", 1, previous_state())
        self.objects = site.keys()

    def intact(self, *, same_objects: bool = True) -> None:
        ckpts = self.plane.checkpoints
        assert ckpts.steps("r") == [1]
        latest = ckpts.latest("r")
        assert latest is not None and latest.step == 1
        assert_same(ckpts.load("r"), previous_state())
        if same_objects:
            assert self.site.keys() == self.objects, "a refused save wrote objects"


@pytest.fixture
def previous(ckpt_plane: DataPlane, ckpt_site: CkptSite) -> Previous:
    return Previous(ckpt_plane, ckpt_site)


UNSUPPORTED = [  # (what, state, the key the error names)
    ("object", {"w": np.ones(2), "opt": {"thing": object()}}, "opt/thing"),
    ("set", {"w": np.ones(2), "tags": {1, 2}}, "tags"),
    ("bytes", {"w": np.ones(2), "blob": b"\x00\x01"}, "blob"),
    ("object-array", {"w": np.ones(2), "names": np.array(["a", 1], dtype=object)}, "names"),
    ("str-array", {"w": np.ones(2), "names": np.array(["a", "b"])}, "names"),
    ("datetime-array", {"w": np.ones(2), "t": np.array(["2024-01-01"], "datetime64[D]")}, "t"),
    ("complex-value", {"w": np.ones(2), "z": 1 + 2j}, "z"),
    ("in-a-list", {"w": np.ones(2), "layers": [np.ones(1), object()]}, "layers/1"),
    ("bare-array", np.ones(3), None),
]


def test_unsupported_leaves_are_refused(previous: Previous) -> None:
    ckpts = previous.plane.checkpoints
    for case, state, key in UNSUPPORTED:
        with pytest.raises(InvalidSourceError) as error:
            ckpts.save("r", 2, state)
        if key is not None:
            assert repr(key) in str(error.value), (case, str(error.value))
        with pytest.raises(InvalidSourceError):
            ckpts.save_async("r", 2, state)
    previous.intact()


COLLIDING = [
    {"a/b": np.ones(2), "a": {"b": np.zeros(2)}},
    {"a": {"b": np.zeros(2)}, "a/b": np.ones(2)},
    {"a": np.ones(2), "a/b": np.zeros(2)},  # an array where a group must go
    {"a/b/c": np.ones(2), "a": {"b": np.zeros(2)}},  # a group where an array goes
]


def test_keys_that_collide_after_joining_are_refused(previous: Previous) -> None:
    for state in COLLIDING:
        with pytest.raises(InvalidSourceError, match="collide") as error:
            previous.plane.checkpoints.save("r", 2, state)
        assert "'a/b" in str(error.value)
    previous.intact()


def test_keys_that_cannot_name_an_array_are_refused(previous: Previous) -> None:
    for key in ["", "a//b", "a/../b", ".", "tab\there"]:
        with pytest.raises(InvalidSourceError, match="key"):
            previous.plane.checkpoints.save("r", 2, {key: np.ones(2)})
    previous.intact()


def test_metadata_that_cannot_be_stored_is_refused_before_writing(previous: Previous) -> None:
    ckpts = previous.plane.checkpoints
    for metadata in ({"loss": np.float32(0.5)}, {"loss": float("nan")}, {"x": object()}):
        with pytest.raises(InvalidSourceError, match="metadata"):
            ckpts.save("r", 2, {"w": np.ones(2)}, metadata=metadata)
        with pytest.raises(InvalidSourceError, match="metadata"):
            ckpts.save_async("r", 2, {"w": np.ones(2)}, metadata=metadata)
    previous.intact()  # and nothing was written


def test_template_mismatch_leaves_template_and_checkpoint_alone(previous: Previous) -> None:
    ckpts = previous.plane.checkpoints
    template = {"model": {"w": np.zeros((4, 3)), "b": torch.zeros(4).bfloat16()}}
    with pytest.raises(InvalidSourceError, match="model/w"):
        ckpts.load("r", template=template)
    template = {"model": {"w": np.zeros((3, 4)), "b": torch.zeros(4)}}  # float32, not bf16
    with pytest.raises(InvalidSourceError, match="model/b"):
        ckpts.load("r", template=template)
    assert not template["model"]["w"].any()
    previous.intact()


def test_missing_step_and_unknown_run(previous: Previous) -> None:
    ckpts = previous.plane.checkpoints
    with pytest.raises(NotFoundError, match=r"'r'.* 2\b"):
        ckpts.load("r", 2)
    with pytest.raises(NotFoundError, match="'nobody'"):
        ckpts.load("nobody")
    with pytest.raises(NotFoundError, match="'nobody'"):
        ckpts.load("nobody", 1)
    with pytest.raises(NotFoundError, match=r"'r'.* 2\b"):
        ckpts.delete("r", 2)
    with pytest.raises(NotFoundError, match="'model/zz'"):
        ckpts.read("r", 1, "model/zz")
    assert ckpts.steps("nobody") == [] and ckpts.latest("nobody") is None
    previous.intact()


def test_saving_an_existing_step_is_refused(previous: Previous) -> None:
    ckpts = previous.plane.checkpoints
    with pytest.raises(AlreadyExistsError, match=r"'r'.*step 1"):
        ckpts.save("r", 1, {"model": {"w": np.zeros((3, 4))}})
    previous.intact()  # not overwritten


def test_bad_step_numbers_are_refused(previous: Previous) -> None:
    for step in [-1, 1.5, "3", True, None, np.int64(-2)]:
        with pytest.raises(InvalidSourceError, match="step"):
            previous.plane.checkpoints.save("r", step, {"w": np.ones(2)})  # type: ignore[arg-type]
    previous.intact()


def test_bad_run_names_are_refused(previous: Previous) -> None:
    for run in ("", "../escape", "a//b", "-dash", "a/./b"):
        with pytest.raises(DataplaneError):
            previous.plane.checkpoints.save(run, 2, {"w": np.ones(2)})
    previous.intact()


# ------------------------------------------------------------------- full disk
DISK_BYTES = 8 * 2**20


@pytest.fixture
def full_disk_site(tmp_path: Path, request: pytest.FixtureRequest) -> CkptSite:
    """A local backend on a small disk (8 MiB); the catalog lives elsewhere.

    A real tmpfs where mounting is permitted (root in this sandbox). Where it is not, the
    blob folder is served by :class:`ckpt_support.QuotaBlobStore`, a local store that
    raises ``OSError(ENOSPC)`` from inside its write once the quota is used up: a real
    full disk cannot be made without mounting, and this fails at the same place.
    """
    disk = tmp_path / "disk"
    disk.mkdir()
    if mount_tmpfs(disk, "8m"):
        request.addfinalizer(lambda: unmount(disk))
        return local_site(tmp_path, blobs=disk / "blobs")
    register_adapter("ckptquota", "ckpt_support:QuotaBlobStore")
    site = local_site(tmp_path, blobs=disk / "blobs", url=f"ckptquota://{disk / 'blobs'}")
    site.config["backends"]["local"]["quota_bytes"] = DISK_BYTES
    return site


@pytest.mark.parametrize("pack", [True, False], ids=["packed", "folder"])
def test_full_disk_fails_cleanly_and_keeps_the_previous_step(full_disk_site: CkptSite,
                                                             pack: bool) -> None:
    """Packed (the local default), the archive's space is reserved before a byte is
    written, so a full disk fails at once; the folder layout fails midway and leaves a
    torn prefix. Either way: a clear error, the previous step intact, gc cleans up."""
    site = full_disk_site
    rng = np.random.default_rng(0)
    with site.plane() as plane:
        previous = Previous(plane, site)
        checkpoints = CheckpointStore(plane, settings=IOSettings(pack=pack))
        too_big = {f"layer{i}": rng.standard_normal(2**18) for i in range(6)}  # 6 x 2 MiB
        with pytest.raises(DataplaneError) as error:
            checkpoints.save("r", 2, too_big)
        assert "no space left" in str(error.value).lower(), str(error.value)
        previous.intact(same_objects=False)  # a torn prefix may be left behind ...
        assert checkpoints.verify("r", 1).step == 1
        torn = site.step_prefixes("r") - {site.key_of(previous.checkpoint)}
        assert bool(torn) == (pack is False), torn
        # ... never visible, and removed by gc, which frees the space for the next save
        assert checkpoints.gc("r", grace_period_s=0) == sorted(torn)
        assert site.keys() == previous.objects
        assert not any(Path(site.root, STAGING).iterdir()), "a staged archive was left"
        checkpoints.save("r", 2, {"w": np.ones(1000)})
        assert checkpoints.steps("r") == [1, 2]
        assert_same(checkpoints.load("r", 1), previous_state())
        checkpoints.close()
    with dataplane.connect(site.config) as plane:  # and from a fresh connection
        assert plane.checkpoints.latest("r").step == 2  # type: ignore[union-attr]


def test_full_disk_async_save_reports_through_its_handle(full_disk_site: CkptSite) -> None:
    site = full_disk_site
    with site.plane() as plane:
        previous = Previous(plane, site)
        handle = plane.checkpoints.save_async("r", 2, {"big": np.zeros((4, 2**18))})
        with pytest.raises(DataplaneError, match=r"(?i)no space left"):
            handle.result(timeout=60)
        previous.intact(same_objects=False)


