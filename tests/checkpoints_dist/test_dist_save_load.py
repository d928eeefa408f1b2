"""A state saved by 4 ranks (gloo, one process each) loads on 2 ranks and on 1.

The 4-rank save runs once per module (``saved``); each test then loads it differently:
2 processes each loading their half, 1 process loading whole tensors, in-process loads
resharded 3 ways, region reads, and a stock zarr reader.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import zarr
from dist_support import (
    SHARD_DIMS,
    as_list,
    global_state,
    local_config,
    run_ranks,
    split,
    template,
)

import dataplane
from dataplane.checkpoints import Checkpoint, Shard
from dataplane.facade import DataPlane

RUN = "dist"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("dist-site")
    results = run_ranks(tmp, 4, "save", local_config(tmp), run=RUN, step=1)
    return {"tmp": tmp, "config": local_config(tmp), "results": results}


@pytest.fixture
def plane(site: dict[str, Any]) -> Iterator[DataPlane]:
    with dataplane.connect(site["config"]) as plane:
        yield plane


@pytest.fixture
def saved(plane: DataPlane) -> Checkpoint:
    return plane.checkpoints.checkpoint(RUN, 1)


def _global(key: str) -> np.ndarray:
    """The reference tensor of a checkpoint key, as float64 numpy."""
    name = key.split("/")[-1]
    value = global_state()["moments" if key == "optim/0" else name]
    return np.asarray(torch.as_tensor(value).float().numpy(), dtype=np.float64)


def test_every_rank_returns_the_same_checkpoint(site: dict[str, Any]) -> None:
    results = site["results"]
    assert len(results) == 4
    assert all(r == results[0] for r in results), results
    assert results[0]["step"] == 1
    assert results[0]["keys"] == ["model/w0", "model/w1", "model/emb", "model/bias", "optim/0",
                                  "optim/1", "rng"]
    assert results[0]["metadata"] == {"saved_by": 0, "step": 1}  # rank 0's metadata


def test_manifest_records_global_shapes_and_every_shard(saved: Checkpoint) -> None:
    manifest = saved.record.manifest
    arrays, sharding = manifest["arrays"], manifest["sharding"]
    assert sharding["world_size"] == 4
    assert arrays["model/w0"]["shape"] == [8, 6]
    assert arrays["model/w1"]["shape"] == [4, 8]
    assert arrays["model/w1"]["dtype"] == "bfloat16"
    assert sharding["arrays"]["model/w0"] == [
        {"offsets": [2 * r, 0], "shape": [2, 6], "ranks": [r]} for r in range(4)]
    assert sharding["arrays"]["model/w1"] == [
        {"offsets": [0, 2 * r], "shape": [4, 2], "ranks": [r]} for r in range(4)]
    assert [p["shape"] for p in sharding["arrays"]["model/emb"]] == [[3, 3]] * 3 + [[1, 3]]
    assert set(sharding["arrays"]) == {"model/w0", "model/w1", "model/emb", "rng"}
    # every chunk lies inside one shard, and there are several per shard (chunk_bytes=24)
    assert arrays["model/w0"]["chunks"] == [1, 6]
    assert len(arrays["model/w0"]["crc32"]) == 8


def test_loads_on_one_process_as_whole_tensors(plane: DataPlane) -> None:
    state = plane.checkpoints.load(RUN, 1)
    g = global_state()
    assert torch.equal(state["model"]["w0"], g["w0"])
    assert state["model"]["w1"].dtype == torch.bfloat16
    assert torch.equal(state["model"]["w1"], g["w1"])
    assert np.array_equal(state["model"]["emb"], g["emb"])
    assert torch.equal(state["model"]["bias"], g["bias"])
    assert np.array_equal(state["optim"][0], g["moments"])
    assert state["optim"][1] == np.float32(0.25)
    # the per-rank rows came from each rank; plain values from rank 0
    assert np.array_equal(state["rng"], np.repeat(np.arange(4, dtype=np.uint8), 4).reshape(4, 4))
    assert (state["step"], state["lr"], state["name"]) == (7, 0.1, "dist")
    # the concatenation of what the 4 ranks held
    pieces = [split(g["w1"], 1, r, 4)[0] for r in range(4)]
    assert torch.equal(state["model"]["w1"], torch.cat(pieces, dim=1))
    assert plane.checkpoints.verify(RUN, 1).step == 1


def test_loads_on_two_ranks_each_its_half(site: dict[str, Any]) -> None:
    results = run_ranks(site["tmp"], 2, "load", site["config"], run=RUN, step=1)
    g = global_state()
    for rank, result in enumerate(results):
        assert result["in_place"], "the template's buffers are filled in place"
        model = result["loaded"]["model"]
        for key, dim in SHARD_DIMS.items():
            name = key.split("/")[1]
            piece, offsets = split(g[name], dim, rank, 2)
            assert model[name] == {"offsets": list(offsets), "local": as_list(piece)}
        assert model["bias"] == as_list(g["bias"])
        assert result["loaded"]["optim"] == [as_list(g["moments"])]


def test_each_rank_reads_only_its_region(site: dict[str, Any], saved: Checkpoint) -> None:
    """A corrupt chunk in rank 1's half of w0: rank 0 never reads it, rank 1 fails on it."""
    chunk = Path(saved.url.removeprefix("file://")) / "model/w0/c.6.0"  # row 6 of 8
    original = chunk.read_bytes()
    chunk.chmod(0o644)
    chunk.write_bytes(bytes([original[0] ^ 0xFF]) + original[1:])
    try:
        results = run_ranks(site["tmp"], 2, "load", site["config"], run=RUN, step=1)
    finally:
        chunk.write_bytes(original)
    assert "loaded" in results[0], results[0]
    assert results[0]["loaded"]["model"]["w0"]["local"] == as_list(global_state()["w0"][:4])
    assert results[1]["error"] == "IntegrityError"
    assert "'model/w0' chunk 6.0" in results[1]["message"]


@pytest.mark.parametrize("world", [1, 3])
def test_loads_resharded_in_process(plane: DataPlane, world: int) -> None:
    """The template decides the split: 3 ways (uneven: 3, 3, 2 rows) or 1."""
    g = global_state()
    for rank in range(world):
        loaded = plane.checkpoints.load(RUN, 1, template=template(rank, world))
        for key, dim in SHARD_DIMS.items():
            name = key.split("/")[1]
            piece, offsets = split(g[name], dim, rank, world)
            shard = loaded["model"][name]
            assert isinstance(shard, Shard) and shard.offsets == offsets
            assert np.array_equal(np.asarray(torch.as_tensor(shard.local).float()),
                                  np.asarray(torch.as_tensor(piece).float()))


def test_region_read_across_shards(plane: DataPlane) -> None:
    part = plane.checkpoints.read(RUN, 1, "model/emb", (slice(2, 7), 1))
    assert np.array_equal(part, global_state()["emb"][2:7, 1])


def test_stock_zarr_reads_the_global_arrays(saved: Checkpoint) -> None:
    url, _ = saved.location
    group = zarr.open_group(url.removeprefix("file://"), mode="r")
    for key in ("model/w0", "model/emb", "model/bias", "optim/0"):
        assert np.array_equal(np.asarray(group[key][...], dtype=np.float64), _global(key))
    bits = np.asarray(group["model/w1"][...])  # bfloat16 stored as its uint16 bits
    assert torch.equal(torch.from_numpy(bits.view(np.int16)).view(torch.bfloat16),
                       global_state()["w1"])
