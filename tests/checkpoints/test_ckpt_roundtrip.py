"""Round trips on every blob backend: whole states, key subsets, templates, region reads.

The same code runs on local disk, S3 (moto) and GCS (fake-gcs-server): every test here
runs once per backend. ``rich_saved`` (conftest) saved :func:`ckpt_support.rich_state` --
every numpy dtype, bfloat16/float8 tensors, 0-d, zero-size and non-contiguous arrays, numpy
scalars and plain values -- once per backend, with 512-byte chunks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ckpt_support import CkptSite, RichSaved, assert_same, leaves, small_store

from dataplane import IntegrityError, InvalidSourceError, NotFoundError
from dataplane.checkpoints import Checkpoint, IOSettings
from dataplane.facade import DataPlane


def test_rich_state_round_trips_bit_for_bit(rich_saved: RichSaved) -> None:
    saved, state, store = rich_saved.checkpoint, rich_saved.state, rich_saved.store
    assert isinstance(saved, Checkpoint) and (saved.run, saved.step) == ("rich", 7)
    assert saved.metadata["loss"] == 0.25 and saved.metadata["tag"] == "a"
    assert set(saved.keys) == {key for key, _ in leaves(state)}
    assert_same(store.load("rich"), state)
    assert_same(store.load("rich", 7), state)
    assert store.verify("rich", 7).step == 7
    # several chunks per array, and (zarr's rule) edge chunks stored at the full chunk size
    chunks = rich_saved.site.chunk_keys(saved)
    per_array: dict[str, int] = {}
    for array, _ in chunks.values():
        per_array[array] = per_array.get(array, 0) + 1
    assert all(per_array[f"numpy/{name}"] >= 3 for name in state["numpy"])
    assert per_array["grid2d"] == 6 * 4
    site = rich_saved.site
    assert len(site.read(site.object_key(saved, "numpy/float64/c.2.0"))) == 12 * 5 * 8  # 11 rows
    assert len(site.read(site.object_key(saved, "grid2d/c.5.3"))) == 50 * 8  # 47 columns


def test_a_fresh_connection_loads_what_another_saved(ckpt_site: CkptSite) -> None:
    state = {"w": torch.randn(30, 30).to(torch.bfloat16), "step": 3}
    with ckpt_site.plane() as plane:
        plane.checkpoints.save("r", 3, state)
    with ckpt_site.plane() as plane:
        assert_same(plane.checkpoints.load("r"), state)


def test_large_and_many_small_arrays_take_both_io_paths(ckpt_plane: DataPlane,
                                                        ckpt_site: CkptSite) -> None:
    """Arrays over ``small_bytes`` go one task per chunk, the rest in batches of at most
    256 arrays or ``batch_bytes``: the small ones here make several batches."""
    rng = np.random.default_rng(5)
    count = 600 if ckpt_site.backend == "local" else 120  # fewer round trips over HTTP
    state = {"big": rng.standard_normal(3000),  # 24 KB: 47 chunks of 512 bytes
             "small": {f"p{i}": rng.standard_normal(i % 7 + 1) for i in range(count)}}
    store = small_store(ckpt_plane, IOSettings(chunk_bytes=512, workers=8, small_bytes=1024,
                                               batch_bytes=2048))
    store.save("many", 1, state)
    assert_same(store.load("many"), state)


# ------------------------------------------------------------------------- keys=
def test_keys_select_arrays_and_subtrees(rich_saved: RichSaved) -> None:
    store, state = rich_saved.store, rich_saved.state
    one = store.load("rich", keys=["numpy/float32"])
    assert {key for key, _ in leaves(one)} == {"numpy/float32"}
    assert_same(one["numpy"], {"float32": state["numpy"]["float32"]})

    sub = store.load("rich", keys=["torch", "zero_d/f"])  # a prefix selects a subtree
    assert_same(sub["torch"], state["torch"])
    assert_same(sub["zero_d"], {"f": state["zero_d"]["f"]})
    assert {key for key, _ in leaves(sub)} == {
        k for k, _ in leaves(state) if k.startswith("torch/")} | {"zero_d/f"}

    # a prefix is matched by whole path segments, not by characters
    with pytest.raises(NotFoundError, match="'tor'"):
        store.load("rich", keys=["tor"])


def test_keys_inside_a_list_keep_positions(rich_saved: RichSaved) -> None:
    """Selecting one element of a list returns it at its index; the list is not silently
    dropped (an array in it that was not asked for is ``None``)."""
    store, layers = rich_saved.store, rich_saved.state["layers"]
    second = store.load("rich", keys=["layers/1"])["layers"]
    assert second[0] is None and second[2] == 4
    assert_same(second[1], layers[1])
    first = store.load("rich", keys=["layers/0"])
    assert {key for key, _ in leaves(first)} == {"layers/0"}
    assert_same(first["layers"][0], layers[0])
    assert_same(store.load("rich", keys=["layers"])["layers"], layers)


# --------------------------------------------------------------------- template=
def _empty_like(value: object) -> object:
    if isinstance(value, np.ndarray):
        return np.empty_like(value, order="C")
    if isinstance(value, torch.Tensor):
        return torch.empty_like(value.detach(), memory_format=torch.contiguous_format)
    return value


def test_template_is_filled_in_place(rich_saved: RichSaved) -> None:
    store, state = rich_saved.store, rich_saved.state
    template = {
        "numpy": {name: np.empty_like(a) for name, a in state["numpy"].items()},
        "torch": {name: _empty_like(t) for name, t in state["torch"].items()},
        "views": {"transposed": np.empty((40, 7), np.float32).T},  # a non-contiguous target
        "zero_d": {"f": np.empty(())},
        "step": 0,
        "plain": {"str": "stale", "nan": 0.0, "nested": []},
    }
    targets = dict(leaves(template))
    out = store.load("rich", template=template)

    for key, value in leaves(out):
        assert value is targets[key], f"{key} was not loaded in place"
    assert set(dict(leaves(out))) == set(targets)  # only what the template holds
    assert_same(out["numpy"], state["numpy"])
    assert_same(out["torch"], {k: t.detach() for k, t in state["torch"].items()})
    np.testing.assert_array_equal(out["views"]["transposed"], state["views"]["transposed"])
    assert_same(out["zero_d"]["f"], state["zero_d"]["f"])
    # plain values come from the checkpoint, not from the template
    assert out["step"] == 7 and out["plain"]["str"] == "héllo ✓"
    assert out["plain"]["nan"] != out["plain"]["nan"]


MISMATCHES = [  # (key, the template's leaf there, what differs)
    ("numpy/float64", {"numpy": {"float64": np.empty((5, 5))}}, "shape"),
    ("numpy/float64", {"numpy": {"float64": np.empty((35, 5), np.float32)}}, "dtype"),
    ("torch/bf16", {"torch": {"bf16": torch.empty(60, 11, dtype=torch.float16)}}, "dtype"),
    ("torch/bf16", {"torch": {"bf16": np.empty((60, 11), np.uint16)}}, "dtype"),  # its bits
    ("torch/f32", {"torch": {"f32": torch.empty(50, 10)}}, "shape"),
    ("zero_d/f", {"zero_d": {"f": np.empty((1,))}}, "shape"),
    ("scalars/0", {"scalars": [np.float64(1.0)]}, "dtype"),
]


def test_template_mismatch_is_an_error_naming_the_key(rich_saved: RichSaved) -> None:
    for key, fragment, problem in MISMATCHES:
        good = np.zeros(rich_saved.state["numpy"]["int32"].shape, np.int32)
        template = {"numpy": {"int32": good}}
        for top, value in fragment.items():
            template[top] = {**template.get(top, {}), **value} if isinstance(value, dict) \
                else value
        with pytest.raises(InvalidSourceError, match=key) as error:
            rich_saved.store.load("rich", template=template)
        assert problem in str(error.value), (key, str(error.value))
        assert not good.any(), "nothing is loaded into a template that does not match"


def test_template_key_missing_from_checkpoint(rich_saved: RichSaved) -> None:
    with pytest.raises(NotFoundError, match="'nope'"):
        rich_saved.store.load("rich", template={"step": 0, "nope": np.empty(3)})


# -------------------------------------------------------------------------- read
def test_read_regions(rich_saved: RichSaved) -> None:
    store, state = rich_saved.store, rich_saved.state
    grid = state["grid2d"]
    for region, expected in [
        ((slice(2, 5), slice(70, 140)), grid[2:5, 70:140]),
        ((slice(None), slice(150, None)), grid[:, 150:]),   # the padded edge column
        ((-1, slice(None)), grid[-1, :]),
        ((3, -5), grid[3, -5]),
        (4, grid[4]),
        (slice(-3, None), grid[-3:]),
        ((slice(5, 5), slice(None)), grid[5:5]),            # empty: no chunk read
        (None, grid),
    ]:
        got = store.read("rich", 7, "grid2d", region)
        assert isinstance(got, np.ndarray)
        assert got.shape == np.shape(expected), region
        np.testing.assert_array_equal(got, expected)

    bf16 = state["torch"]["bf16"]
    part = store.read("rich", "latest", "torch/bf16", (slice(10, 45), slice(3, 9)))
    assert_same(part, bf16[10:45, 3:9].contiguous())
    assert_same(store.read("rich", 7, "torch/bf16", -1), bf16[-1].contiguous())
    assert_same(store.read("rich", 7, "torch/scalar_bf16"), state["torch"]["scalar_bf16"])
    assert_same(store.read("rich", 7, "zero_d/f"), state["zero_d"]["f"])  # shape ()
    assert_same(store.read("rich", 7, "scalars/0"), np.float32(2.5))
    assert_same(store.read("rich", 7, "views/transposed", (slice(1, 3),)),
                np.ascontiguousarray(state["views"]["transposed"][1:3]))

    for bad in [(6, 0), (0, -201), (slice(0, 6, 2),), (0, 0, 0)]:
        with pytest.raises(IndexError):
            store.read("rich", 7, "grid2d", bad)
    with pytest.raises(NotFoundError, match="'grid3d'"):
        store.read("rich", 7, "grid3d", 0)


def test_read_fetches_only_the_chunks_that_overlap(ckpt_plane: DataPlane,
                                                   ckpt_site: CkptSite) -> None:
    """Proved without mocks: corrupt every chunk outside the region and the read still
    succeeds (they were never read); corrupt one inside and it raises."""
    grid = np.random.default_rng(1).standard_normal((6, 200))  # chunks (1, 64): 6 x 4
    store = small_store(ckpt_plane)
    saved = store.save("ov", 1, {"g": grid})
    region = (slice(2, 5), slice(70, 140))  # rows 2-4, chunk columns 1-2
    inside = {f"{r}.{c}" for r in range(2, 5) for c in (1, 2)}
    chunks = {suffix: key for key, (_, suffix) in ckpt_site.chunk_keys(saved).items()}
    assert len(chunks) == 24
    for suffix, key in chunks.items():
        if suffix not in inside:
            ckpt_site.flip_byte(key, 17)

    np.testing.assert_array_equal(store.read("ov", 1, "g", region), grid[2:5, 70:140])
    np.testing.assert_array_equal(store.read("ov", 1, "g", (3, slice(64, 128))),
                                  grid[3, 64:128])
    with pytest.raises(IntegrityError):
        store.load("ov", 1)  # the whole array does read the corrupt chunks

    ckpt_site.flip_byte(chunks["3.2"], 0)
    with pytest.raises(IntegrityError, match=r"'g'.*chunk 3\.2"):
        store.read("ov", 1, "g", region)


def test_template_reads_only_the_arrays_it_holds(ckpt_plane: DataPlane,
                                                 ckpt_site: CkptSite) -> None:
    """Proved like the region read: a corrupt array outside the template is not read."""
    state = {"model": {"w": np.arange(200.0)}, "opt": {"m": np.ones(300)}, "step": 2}
    store = small_store(ckpt_plane)
    saved = store.save("sub", 2, state)
    for key, (array, _) in ckpt_site.chunk_keys(saved).items():
        if array == "opt/m":
            ckpt_site.flip_byte(key, 3)
    template = {"model": {"w": np.empty(200)}, "step": 0}
    out = store.load("sub", template=template)
    assert out["step"] == 2 and out["model"]["w"] is template["model"]["w"]
    np.testing.assert_array_equal(template["model"]["w"], state["model"]["w"])
    with pytest.raises(IntegrityError, match="'opt/m'"):
        store.load("sub", template={"opt": {"m": np.empty(300)}})
