"""Acceptance: ``save_async`` snapshots the state when it is called.

Every array and tensor is mutated in place right after ``save_async`` returns, while the
background save is still writing; the checkpoint holds the state as it was at the call.
``done()``/``result()`` and the one-save-per-run rule are checked deterministically by
holding the catalog's write lock from a second SQLite connection (a concurrent catalog
writer, no patching): the save then writes every chunk and waits at its commit.
"""

from __future__ import annotations

import copy
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from ckpt_support import (
    CkptSite,
    assert_same,
    local_site,
    mutate_in_place,
    rich_state,
    small_store,
)

from dataplane import AlreadyExistsError, InvalidSourceError
from dataplane.facade import DataPlane


def big_state(seed: int, scale: int = 1) -> dict[str, object]:
    """A few MB (``scale`` times fewer rows), so the background save is still writing when
    the caller mutates."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(256 // scale, 1024, generator=gen)
    return {
        "np": rng.standard_normal((512 // scale, 1024)).astype(np.float32),
        "np_view": rng.standard_normal((64, 64))[::2],
        "t": torch.randn(256 // scale, 1024, generator=gen),
        "t_view": base[:, ::4],  # a non-contiguous view: its base is mutated below
        "bf16": torch.randn(128 // scale, 1024, generator=gen).to(torch.bfloat16),
        "f8": torch.randn(64, 64, generator=gen).to(torch.float8_e4m3fn),
        "small": [np.arange(i + 1) for i in range(50)],
        "step": 1,
    }


@contextmanager
def catalog_write_lock(site: CkptSite) -> Iterator[None]:
    """Hold the SQLite catalog's write lock: commits wait (readers in WAL mode do not)."""
    path = site.config["catalog"]["url"].removeprefix("sqlite:///")
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def test_mutating_right_after_save_async_does_not_change_what_is_saved(
        ckpt_plane: DataPlane, ckpt_site: CkptSite) -> None:
    """Step 1: a few large arrays; step 2: every kind of leaf (default settings)."""
    ckpts = ckpt_plane.checkpoints
    scale = 1 if ckpt_site.backend == "local" else 4  # over HTTP a smaller state is slow enough
    for step in (1, 2):
        state = big_state(step, scale) if step == 1 else rich_state(step)
        expected = copy.deepcopy(state)
        base = state["t_view"]._base if step == 1 else None  # type: ignore[union-attr]
        handle = ckpts.save_async("snap", step, state)
        mutate_in_place(state)  # every array and tensor, in place
        if base is not None:
            base.zero_()
        state["step"] = -1  # and the tree itself
        checkpoint = handle.result(timeout=120)
        assert handle.done() and checkpoint.step == step
        assert_same(ckpts.load("snap", step), expected)


def test_done_result_and_one_save_per_run(ckpt_site: CkptSite, tmp_path: Path) -> None:
    with ckpt_site.plane() as plane:
        ckpts = plane.checkpoints
        first_state = {"w": np.arange(1000.0), "step": 1}
        with catalog_write_lock(ckpt_site):
            first = ckpts.save_async("one", 1, first_state)
            time.sleep(0.3)
            assert not first.done()  # its commit waits for the catalog lock
            with pytest.raises(TimeoutError):
                first.result(timeout=0.05)

            second_returned = threading.Event()
            handles = []

            def call_second() -> None:
                handles.append(ckpts.save_async("one", 2, {"w": np.arange(5.0), "step": 2}))
                second_returned.set()

            caller = threading.Thread(target=call_second)
            caller.start()
            # the second save_async for the same run waits for the first to finish
            assert not second_returned.wait(0.5)
            other = ckpts.save_async("another-run", 1, {"x": np.ones(2)})  # not held up
        caller.join(timeout=60)
        assert second_returned.is_set()
        assert first.done()  # it returned only after the first finished
        assert first.result().step == 1
        assert handles[0].result(timeout=60).step == 2
        assert other.result(timeout=60).step == 1
        assert ckpts.steps("one") == [1, 2]
        assert_same(ckpts.load("one", 1), first_state)


def test_async_errors_surface_from_the_handle_and_nothing_is_committed(
        ckpt_plane: DataPlane) -> None:
    ckpts = ckpt_plane.checkpoints
    ckpts.save("err", 1, {"w": np.ones(3)})
    duplicate = ckpts.save_async("err", 1, {"w": np.zeros(3)})
    with pytest.raises(AlreadyExistsError):
        duplicate.result(timeout=60)
    assert duplicate.done()
    with pytest.raises(InvalidSourceError, match="-4"):  # a bad step is refused at the call
        ckpts.save_async("err", -4, {"w": np.zeros(3)})
    with pytest.raises(InvalidSourceError, match="'bad'"):  # refused at the call
        ckpts.save_async("err", 2, {"bad": object()})
    # a later save of the same run goes ahead
    assert ckpts.save_async("err", 2, {"w": np.full(3, 2.0)}).result(timeout=60).step == 2
    assert ckpts.steps("err") == [1, 2]
    assert_same(ckpts.load("err", 1), {"w": np.ones(3)})


def test_close_waits_for_the_save_in_flight(ckpt_site: CkptSite) -> None:
    state = big_state(3, 1 if ckpt_site.backend == "local" else 4)
    expected = copy.deepcopy(state)
    with ckpt_site.plane() as plane:
        handle = plane.checkpoints.save_async("close", 3, state)
    assert handle.done()
    with ckpt_site.plane() as plane:
        assert_same(plane.checkpoints.load("close"), expected)


def test_save_async_with_small_chunks(tmp_path: Path) -> None:
    """Snapshots taken before chunking: edge chunks are padded copies of the snapshot, and
    interior chunks views of it (local disk; the chunking is the same on every backend)."""
    state = rich_state(9)
    expected = copy.deepcopy(state)
    plane = local_site(tmp_path).connect()
    store = small_store(plane)
    try:
        handle = store.save_async("small", 9, state)
        mutate_in_place(state)
        handle.result(timeout=120)
        assert_same(store.load("small", 9), expected)
    finally:
        store.close()
        plane.close()
