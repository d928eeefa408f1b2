"""Save plans are made once per state structure and reused while it stays the same.

What must hold: a reused plan gives every save its own root ``zarr.json`` (step, spec,
metadata) and a whole, standard archive, whatever the root's size; any change of keys,
shapes, dtypes or chunk size is a new plan; and what is loaded is always what was saved.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from ckpt_support import assert_same, local_site, small_store

from dataplane.checkpoints import IOSettings
from dataplane.checkpoints.archive import ARCHIVE, ROOT
from dataplane.checkpoints.dtypes import StoredArray, to_stored
from dataplane.checkpoints.saveplan import SavePlanner


def stored(state: dict[str, Any]) -> dict[str, StoredArray]:
    return {key: to_stored(key, value) for key, value in state.items()}


def test_one_structure_is_planned_once_and_each_save_gets_its_own_root() -> None:
    planner = SavePlanner()
    state = {"a/w": np.zeros((64, 3), np.float32), "a/b": np.zeros(5, np.int8)}
    first = planner.plan(stored(state), {"step": 1}, 256, packed=True)
    again = planner.plan(stored(state), {"step": 2}, 256, packed=True)
    longer = planner.plan(stored(state), {"step": 10**9}, 256, packed=True)
    assert again.layouts is first.layouts  # reused, not rebuilt
    assert json.loads(first.groups["zarr.json"])["attributes"] == {"step": 1}
    assert json.loads(again.groups["zarr.json"])["attributes"] == {"step": 2}
    assert list(first.groups)[-1] == "zarr.json"  # the root is the last entry
    assert first.archive is not None and longer.archive is not None
    chunk = f"{ROOT}/a/w/c.0.0"
    assert longer.archive.entry(chunk) == first.archive.entry(chunk)  # chunks stay put
    grown = len(longer.groups["zarr.json"]) - len(first.groups["zarr.json"])
    assert grown == 9 and longer.archive.total_size == first.archive.total_size + grown
    for changed in ({**state, "a/w": np.zeros((65, 3), np.float32)},
                    {**state, "a/b": np.zeros(5, np.int16)},
                    {**state, "a/c": np.zeros(1, np.int8)}):
        assert planner.plan(stored(changed), {}, 256, packed=False
                            ).layouts is not first.layouts
    assert planner.plan(stored(state), {}, 512, packed=False
                        ).layouts is not first.layouts  # another chunk size: a new plan


def test_saves_that_reuse_a_plan_are_each_whole_and_load_as_saved(tmp_path: Path) -> None:
    site = local_site(tmp_path)
    rng = np.random.default_rng(3)
    shapes = {"model/w": (300, 7), "model/b": (7,), "opt/m": (300, 7)}
    with site.plane() as plane:
        store = small_store(plane, IOSettings(chunk_bytes=1024))
        saved = {}
        for step, metadata in enumerate([None, {"note": "x" * 500}, {}, {"n": 1}], start=1):
            state: dict[str, object] = {key: rng.standard_normal(shape)
                                        for key, shape in shapes.items()}
            state["step"] = step
            if step == 4:
                state["model/w"] = rng.standard_normal((301, 7))  # a new structure
            checkpoint = store.save("plan", step, state, metadata=metadata)
            saved[step] = (state, checkpoint)
        for step, (state, checkpoint) in saved.items():
            assert_same(store.load("plan", step), state)
            archive = Path(site.root, site.key_of(checkpoint), ARCHIVE)
            with zipfile.ZipFile(archive) as packed:
                assert packed.testzip() is None
                root = json.loads(packed.read(f"{ROOT}/zarr.json"))
            assert root["attributes"]["dataplane"]["step"] == step
