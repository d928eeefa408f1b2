"""Acceptance: stock zarr-python opens a checkpoint through ``Checkpoint.location`` alone
(no dataplane code on the read side) and reads every array equal to the saved one.

On local disk zarr opens the folder path; on S3 and GCS it opens
``zarr.storage.FsspecStore.from_url(url, storage_options=...)`` (an async filesystem, as
zarr 3 needs). Dtypes numpy lacks come back as their bits (bfloat16 as uint16, float8 as
uint8) with the real dtype named in the array's attributes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
import zarr
import zarr.storage
from ckpt_support import RichSaved, host_view, leaves

from dataplane.checkpoints import Checkpoint

REAL_DTYPES = {"torch/bf16": ("uint16", "bfloat16"),
               "torch/scalar_bf16": ("uint16", "bfloat16"),
               "torch/f8e4m3": ("uint8", "float8_e4m3fn"),
               "torch/f8e5m2": ("uint8", "float8_e5m2")}


def open_with_zarr(checkpoint: Checkpoint, **kwargs: Any) -> zarr.Group:
    url, options = checkpoint.location
    if url.startswith("file://"):
        return zarr.open_group(unquote(urlsplit(url).path), mode="r", **kwargs)
    if url.startswith("zip://"):  # a packed save: the URL alone, as a user would
        return zarr.open_group(url, mode="r", storage_options=options or None, **kwargs)
    store = zarr.storage.FsspecStore.from_url(url, storage_options=options, read_only=True)
    return zarr.open_group(store=store, mode="r", **kwargs)


@pytest.mark.parametrize("consolidated", [None, False], ids=["consolidated", "per-array"])
def test_stock_zarr_reads_every_array(rich_saved: RichSaved, consolidated: bool | None) -> None:
    """``consolidated``: through the root's inline consolidated metadata (zarr's default);
    ``per-array``: through every group's and array's own ``zarr.json``."""
    saved, state = rich_saved.checkpoint, rich_saved.state
    group = open_with_zarr(saved, use_consolidated=consolidated)

    expected = dict(leaves(state))
    assert set(saved.keys) == set(expected)
    for key, value in expected.items():
        array = group[key]
        assert isinstance(array, zarr.Array), key
        bits = host_view(value)
        data = array[...]
        assert array.shape == bits.shape, key
        assert data.dtype == bits.dtype, f"{key}: {data.dtype} != {bits.dtype}"
        assert np.ascontiguousarray(data).tobytes() == np.ascontiguousarray(bits).tobytes(), key
        real = array.attrs["dataplane"]["dtype"]
        stored, named = REAL_DTYPES.get(key, (bits.dtype.name, bits.dtype.name))
        assert (data.dtype.name, real) == (stored, named), key
    # chunked as dataplane chunked it, so other readers get the same parallelism
    assert group["grid2d"].chunks == (1, 50)  # 197 columns in 4 even chunks
    assert group["numpy/float64"].chunks == (12, 5)
    # plain values and metadata travel in the group's attributes
    attributes = group.attrs["dataplane"]
    assert attributes["step"] == 7 and attributes["run"] == "rich"
    assert attributes["metadata"] == {"loss": 0.25, "tag": "a"}
    assert "spec" in attributes
    # nested keys are nested groups
    assert isinstance(group["torch"], zarr.Group) and isinstance(group["model"], zarr.Group)
    assert "layer1.0.conv.weight" in set(group["model"].array_keys())


def test_zarr_reads_a_region_equal_to_dataplane_read(rich_saved: RichSaved) -> None:
    state, store = rich_saved.state, rich_saved.store
    group = open_with_zarr(rich_saved.checkpoint)
    np.testing.assert_array_equal(group["grid2d"][2:5, 70:140],
                                  store.read("rich", 7, "grid2d", (slice(2, 5), slice(70, 140))))
    np.testing.assert_array_equal(group["numpy/int16"][-1], state["numpy"]["int16"][-1])


def test_format_1_layouts_keep_their_slash_separated_chunk_keys() -> None:
    """Checkpoints written before format 2 recorded no separator and used '/'; their
    layouts must still name the chunks that are on storage."""
    from dataplane.checkpoints.layout import ArrayLayout

    legacy = {"shape": [10, 4], "stored_dtype": "float32", "chunks": [5, 4],
              "dtype": "float32", "framework": "numpy"}
    old = ArrayLayout.from_json("model/w", legacy)
    assert old.chunk_key((1, 0)) == "model/w/c/1/0"
    assert old.metadata()["chunk_key_encoding"]["configuration"]["separator"] == "/"
    new = ArrayLayout.from_json("model/w", old.to_json() | {"separator": "."})
    assert new.chunk_key((1, 0)) == "model/w/c.1.0"
    assert ArrayLayout.from_json("model/w", new.to_json()) == new
