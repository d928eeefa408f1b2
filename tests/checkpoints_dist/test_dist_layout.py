"""In-process tests of sharded checkpoints: the Shard type, the chunk grid, the agreement
rules between ranks, single-process saves and template loads.

The save protocol only needs two collectives (:class:`~dataplane.checkpoints.distributed.Ranks`),
so :class:`ThreadRanks` runs several ranks as threads of this process: every rule is
checked in milliseconds here, and the gloo tests beside this file check the real thing.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from dist_support import global_state, local_config, rank_state, shard_of, split

import dataplane
from dataplane.checkpoints import CheckpointStore, IOSettings, Shard, distributed, sharding
from dataplane.errors import (
    ConfigError,
    IntegrityError,
    InvalidSourceError,
    NotFoundError,
    NotSupportedError,
)
from dataplane.facade import DataPlane


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[DataPlane]:
    with dataplane.connect(local_config(tmp_path)) as plane:
        yield plane


@pytest.fixture
def store(plane: DataPlane) -> Iterator[CheckpointStore]:
    store = CheckpointStore(plane, IOSettings(chunk_bytes=24))
    yield store
    store.close()


class ThreadRanks:
    """Rank ``rank`` of ``size`` threads: gather and broadcast through shared slots."""

    def __init__(self, rank: int, slots: list[Any], barrier: threading.Barrier):
        self.rank, self.size = rank, len(slots)
        self._slots, self._barrier = slots, barrier

    def gather(self, value: Any) -> list[Any]:
        self._slots[self.rank] = value
        self._barrier.wait()
        out = list(self._slots)
        self._barrier.wait()
        return out

    def broadcast(self, value: Any) -> Any:
        if self.rank == 0:
            self._slots[0] = value
        self._barrier.wait()
        out = self._slots[0]
        self._barrier.wait()
        return out


def on_ranks(size: int, call: Callable[[distributed.Ranks], Any]) -> list[Any]:
    """``call(ranks)`` on ``size`` threads; each thread's result or raised exception."""
    slots: list[Any] = [None] * size
    barrier = threading.Barrier(size, timeout=30)
    out: list[Any] = [None] * size

    def run(rank: int) -> None:
        try:
            out[rank] = call(ThreadRanks(rank, slots, barrier))
        except Exception as error:
            out[rank] = error

    threads = [threading.Thread(target=run, args=(rank,)) for rank in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return out


def save_on(store: CheckpointStore, size: int, step: int,
            state_of: Callable[[int], Any]) -> list[Any]:
    return on_ranks(size, lambda ranks: distributed.save(store, ranks, "run", step,
                                                         state_of(ranks.rank), None))


def errors_of(results: list[Any]) -> list[str]:
    assert all(isinstance(r, Exception) for r in results), results
    return [str(r) for r in results]


# --------------------------------------------------------------------------- Shard
def test_shard_checks_its_block() -> None:
    shard = Shard(np.zeros((2, 3)), [4, 3], [2, 0])
    assert (shard.global_shape, shard.offsets, shard.shape) == ((4, 3), (2, 0), (2, 3))
    assert shard.region == (slice(2, 4), slice(0, 3))
    assert "global_shape=(4, 3)" in repr(shard)
    with pytest.raises(InvalidSourceError, match="numpy array or a torch tensor"):
        Shard([1, 2], (2,), (0,))
    with pytest.raises(InvalidSourceError, match="same number of dimensions"):
        Shard(np.zeros((2, 3)), (4,), (0,))
    with pytest.raises(InvalidSourceError, match="reaches outside"):
        Shard(np.zeros((2, 3)), (4, 3), (3, 0))
    with pytest.raises(InvalidSourceError, match="non-negative integers"):
        Shard(np.zeros(2), (4,), (-1,))


# ----------------------------------------------------------------------- chunk grid
@pytest.mark.parametrize(("block", "itemsize", "limit", "expected"), [
    ((8, 6), 4, 24, (1, 6)),  # one row per chunk
    ((6, 100), 4, 1000, (2, 100)),  # 2 rows fit
    ((10, 100), 4, 1400, (2, 100)),  # 3 rows would fit, but 3 does not divide 10
    ((4, 1000), 4, 1000, (1, 250)),  # a row is too big: split the next dimension too
    ((1009, 4), 4, 160, (1, 4)),  # a prime block: small chunks, still inside the shard
    ((3, 3), 8, 10**6, (3, 3)),  # fits whole
    ((), 4, 1, ()),
])
def test_shard_chunks_divide_the_block(block: tuple[int, ...], itemsize: int, limit: int,
                                       expected: tuple[int, ...]) -> None:
    chunks = sharding.shard_chunks(block, itemsize, limit)
    assert chunks == expected
    assert all(b % c == 0 for b, c in zip(block, chunks, strict=True))


def test_shard_chunks_stay_within_the_limit() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        block = tuple(int(n) for n in rng.integers(1, 60, size=int(rng.integers(1, 4))))
        limit = int(rng.integers(1, 4000))
        chunks = sharding.shard_chunks(block, 4, limit)
        assert all(b % c == 0 for b, c in zip(block, chunks, strict=True))
        assert math.prod(chunks) * 4 <= max(limit, 4), (block, limit, chunks)


# ---------------------------------------------------------- agreement between ranks
def test_threads_stand_in_for_ranks(store: CheckpointStore) -> None:
    results = save_on(store, 4, 1, lambda rank: rank_state(rank, 4))
    assert all(r.record == results[0].record for r in results), results
    state = store.load("run", 1)
    assert torch.equal(state["model"]["w0"], global_state()["w0"])
    assert np.array_equal(state["rng"][:, 0], np.arange(4))


def test_identical_shards_are_written_once_by_the_lowest_rank(store: CheckpointStore) -> None:
    """2-way sharding replicated twice (ranks 0, 2 hold one half; 1, 3 the other)."""
    w = global_state()["w0"]
    results = save_on(store, 4, 1, lambda rank: {"w": shard_of(w, 0, rank % 2, 2)})
    sharding = results[3].record.manifest["sharding"]
    assert sharding["arrays"]["w"] == [{"offsets": [0, 0], "shape": [4, 6], "ranks": [0, 2]},
                                       {"offsets": [4, 0], "shape": [4, 6], "ranks": [1, 3]}]
    assert torch.equal(store.load("run", 1)["w"], w)


def test_empty_shards_are_allowed(store: CheckpointStore) -> None:
    """tensor_split of 3 rows 4 ways: 1, 1, 1 and an empty piece at the end."""
    w = torch.arange(6.0).reshape(3, 2)
    pieces = torch.tensor_split(w, 4)
    save_on(store, 4, 1, lambda rank: {"w": Shard(pieces[rank], (3, 2), (min(rank, 3), 0))})
    assert torch.equal(store.load("run", 1)["w"], w)


@pytest.mark.parametrize(("state_of", "message"), [
    (lambda rank: {"w": Shard(np.zeros((2 + rank, 2)), (5, 2), (2 * rank, 0))},
     r"do not tile it on a regular grid: rank 0 holds shape \(2, 2\) at offsets \(0, 0\), "
     r"but every shard must be the block \(3, 2\)"),
    (lambda rank: {"w": Shard(np.zeros((2, 2)), (6, 2), (2 * rank, 0))},
     r"leave a gap: no rank holds the block \(2, 2\) at offsets \(4, 0\)"),
    (lambda rank: {"w": Shard(np.zeros((2 + rank, 2)), (4, 2), (0, 0))},
     r"overlap: rank 0 holds shape \(2, 2\) and rank 1 shape \(3, 2\), both at offsets"),
    (lambda rank: {"w": np.zeros(3) + rank if rank else np.zeros(4)},
     r"disagree on 'w': rank 0 holds replicated shape \(4,\) dtype float64 \(numpy\), rank 1 "
     r"replicated shape \(3,\).*must be a Shard"),
    (lambda rank: {"w": Shard(np.zeros(2, dtype=np.float32 if rank else np.float64), (4,),
                              (2 * rank,))},
     r"disagree on 'w'.*dtype float64.*dtype float32"),
    (lambda rank: {"w": Shard(np.zeros(2), (4,), (2 * rank,)) if rank else np.zeros(4)},
     r"disagree on 'w'"),
    (lambda rank: {"w": np.zeros(2), **({"extra": np.zeros(1)} if rank else {})},
     r"rank 1 has 'extra' that rank 0 does not"),
])
def test_ranks_that_do_not_fit_together(store: CheckpointStore, state_of: Callable[[int], Any],
                                        message: str) -> None:
    messages = errors_of(save_on(store, 2, 1, state_of))
    assert messages[0] == messages[1]  # the same error on every rank
    for text in messages:
        assert text.startswith("checkpoint 'run' step 1: ")
        assert re.search(message, text), text
    assert store.steps("run") == []


def test_ranks_saving_different_steps(store: CheckpointStore) -> None:
    results = on_ranks(2, lambda ranks: distributed.save(store, ranks, "run", 1 + ranks.rank,
                                                         {"x": np.zeros(1)}, None))
    assert all("the ranks save different checkpoints" in m for m in errors_of(results))


# ------------------------------------------------------------------ single process
def test_one_process_holding_the_whole_tensor(store: CheckpointStore) -> None:
    w = global_state()["w0"]
    checkpoint = store.save("run", 1, {"w": Shard(w, (8, 6), (0, 0)), "b": np.ones(2)})
    assert checkpoint.record.manifest["sharding"]["world_size"] == 1
    assert torch.equal(store.load("run", 1)["w"], w)
    with pytest.raises(InvalidSourceError, match="leave a gap"):
        store.save("run", 2, {"w": Shard(w[:4], (8, 6), (0, 0))})
    assert store.steps("run") == [1]


def test_save_async_refuses_shards(store: CheckpointStore) -> None:
    with pytest.raises(NotSupportedError, match="save_async does not take Shard"):
        store.save_async("run", 1, {"w": Shard(np.zeros(2), (2,), (0,))})


def test_collective_needs_a_process_group(store: CheckpointStore) -> None:
    with pytest.raises(ConfigError, match="init_process_group"):
        store.save("run", 1, {"x": np.zeros(1)}, collective=True)
    with pytest.raises(ConfigError, match="collective=False"):
        store.save("run", 1, {"x": np.zeros(1)}, group=object(), collective=False)
    assert store.save("run", 1, {"x": np.zeros(1)}, collective=False).step == 1


# --------------------------------------------------------------------- template loads
@pytest.fixture
def saved(store: CheckpointStore) -> CheckpointStore:
    save_on(store, 4, 1, lambda rank: rank_state(rank, 4))
    return store


def test_template_buffers_of_every_kind(saved: CheckpointStore) -> None:
    g = global_state()
    w0 = torch.zeros(6, 4)  # its transpose is not contiguous: filled by a copy
    grad = torch.zeros(4, 4, dtype=torch.bfloat16, requires_grad=True)
    template = {"model": {"w0": Shard(w0.t(), (8, 6), (4, 0)),
                          "w1": Shard(grad, (4, 8), (0, 4)),
                          "emb": Shard(np.zeros((1, 3), dtype=np.int64), (10, 3), (9, 0))},
                "step": 0}
    loaded = saved.load("run", 1, template=template)
    assert loaded["step"] == 7  # plain values come from the checkpoint
    assert loaded["model"]["w0"] is template["model"]["w0"]
    assert torch.equal(w0.t(), g["w0"][4:])
    assert torch.equal(grad.detach(), g["w1"][:, 4:])
    assert np.array_equal(loaded["model"]["emb"].local, g["emb"][9:])
    readonly = Shard(np.zeros((2, 6), dtype=np.float32), (8, 6), (0, 0))
    readonly.local.flags.writeable = False
    out = saved.load("run", 1, template={"model": {"w0": readonly}})["model"]["w0"]
    assert out is not readonly and out.offsets == (0, 0)
    assert np.array_equal(out.local, g["w0"][:2].numpy())


def test_template_mismatch_is_an_error(saved: CheckpointStore) -> None:
    with pytest.raises(InvalidSourceError, match=r"global shape \(8, 7\)"):
        saved.load("run", 1, template={"model": {"w0": Shard(torch.zeros(2, 7), (8, 7),
                                                              (0, 0))}})
    with pytest.raises(InvalidSourceError, match="dtype float64"):
        saved.load("run", 1, template={"model": {"w0": Shard(torch.zeros(2, 6,
                                                                          dtype=torch.float64),
                                                              (8, 6), (0, 0))}})
    with pytest.raises(NotFoundError, match="'model/nope'"):
        saved.load("run", 1, template={"model": {"nope": Shard(np.zeros(1), (1,), (0,))}})


def test_a_shard_reads_only_its_chunks(saved: CheckpointStore, tmp_path: Path) -> None:
    prefix = saved.checkpoint("run", 1).record.manifest["prefix"]
    chunk = tmp_path / "blobs" / prefix / "model/w0/c.7.0"  # the last row
    chunk.chmod(0o644)
    chunk.write_bytes(b"\xff" * len(chunk.read_bytes()))
    first = Shard(torch.zeros(7, 6), (8, 6), (0, 0))
    assert torch.equal(saved.load("run", 1, template={"model": {"w0": first}})["model"]["w0"]
                       .local, global_state()["w0"][:7])
    last = Shard(torch.zeros(1, 6), (8, 6), (7, 0))
    with pytest.raises(IntegrityError, match=r"'model/w0' chunk 7\.0"):
        saved.load("run", 1, template={"model": {"w0": last}})


def test_split_helper_matches_torch_chunk() -> None:
    piece, offsets = split(global_state()["emb"], 0, 3, 4)
    assert piece.shape == (1, 3) and offsets == (9, 0)
