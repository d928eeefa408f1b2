"""Helpers for the multi-rank checkpoint tests: the reference state, and running ranks.

:func:`run_ranks` starts ``world`` processes of ``dist_child.py``; each joins one gloo
process group (file rendezvous under the test's tmp folder, so no port can clash), builds
its own ``dataplane.connect(config)`` on the shared SQLite catalog and blob folder (or S3
bucket), runs one scenario and prints a JSON result. :func:`global_state` is the state
every scenario shards: the tests compare what comes back against it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dataplane.checkpoints import Shard

HERE = Path(__file__).parent
CHILD = HERE / "dist_child.py"
RESULT = "RESULT "
CHUNK_BYTES = 24  # tiny, so every shard is split into several chunks


def local_config(tmp: Path) -> dict[str, Any]:
    return {
        "catalog": {"url": f"sqlite:///{tmp / 'catalog.db'}"},
        "defaults": {"backend": "local"},
        "backends": {"local": {"url": (tmp / "blobs").as_uri()}},
        "cache": {"dir": str(tmp / "cache")},
    }


def s3_config(tmp: Path, endpoint_url: str, bucket: str) -> dict[str, Any]:
    return {
        "catalog": {"url": f"sqlite:///{tmp / 'catalog.db'}"},
        "defaults": {"backend": "s3"},
        "backends": {"s3": {"url": f"s3://{bucket}/prefix", "key": "testing",
                            "secret": "testing", "endpoint_url": endpoint_url}},
        "cache": {"dir": str(tmp / "cache")},
    }


# ---------------------------------------------------------------- the reference state
def global_state() -> dict[str, Any]:
    """The whole (unsharded) state: the tensors each rank holds a part of."""
    return {
        "w0": torch.arange(8 * 6, dtype=torch.float32).reshape(8, 6),  # split on dim 0
        "w1": (torch.arange(4 * 8, dtype=torch.float32) / 4).reshape(4, 8)
        .to(torch.bfloat16),  # split on dim 1
        "emb": np.arange(10 * 3, dtype=np.int64).reshape(10, 3),  # torch.chunk: 3, 3, 3, 1
        "bias": torch.linspace(-1, 1, 5),  # replicated
        "moments": np.full((3, 3), 0.5),  # replicated
    }


def split(value: Any, dim: int, rank: int, world: int) -> tuple[Any, tuple[int, ...]]:
    """``torch.chunk``'s piece ``rank`` of ``world`` along ``dim``, and its offsets."""
    tensor = torch.as_tensor(value)
    pieces = torch.chunk(tensor, world, dim=dim)
    offsets = [0] * tensor.dim()
    offsets[dim] = sum(p.shape[dim] for p in pieces[:rank])
    piece = pieces[rank].clone()
    return (piece.numpy() if isinstance(value, np.ndarray) else piece), tuple(offsets)


def shard_of(value: Any, dim: int, rank: int, world: int) -> Shard:
    piece, offsets = split(value, dim, rank, world)
    return Shard(piece, tuple(value.shape), offsets)


def rank_state(rank: int, world: int) -> dict[str, Any]:
    """What rank ``rank`` of ``world`` saves: its shards, the replicated arrays, plain
    values, and a per-rank array (a Shard of a (world, 4) tensor: one row each)."""
    g = global_state()
    return {
        "model": {"w0": shard_of(g["w0"], 0, rank, world),
                  "w1": shard_of(g["w1"], 1, rank, world),
                  "emb": shard_of(g["emb"], 0, rank, world),
                  "bias": g["bias"]},
        "optim": [g["moments"], np.float32(0.25)],
        "rng": Shard(np.full((1, 4), rank, dtype=np.uint8), (world, 4), (rank, 0)),
        "step": 7, "lr": 0.1, "name": "dist",
    }


SHARD_DIMS = {"model/w0": 0, "model/w1": 1, "model/emb": 0}


def template(rank: int, world: int) -> dict[str, Any]:
    """Empty buffers for rank ``rank`` of ``world`` to load its part into."""
    g = global_state()

    def empty(value: Any, dim: int) -> Shard:
        shard = shard_of(value, dim, rank, world)
        local = shard.local
        zeros = np.zeros_like(local) if isinstance(local, np.ndarray) else torch.zeros_like(local)
        return Shard(zeros, shard.global_shape, shard.offsets)

    return {"model": {"w0": empty(g["w0"], 0), "w1": empty(g["w1"], 1),
                      "emb": empty(g["emb"], 0), "bias": torch.zeros(5)},
            "optim": [np.zeros((3, 3))]}


def as_list(value: Any) -> Any:
    """A loaded tree as JSON (arrays as nested lists of floats)."""
    if isinstance(value, dict):
        return {k: as_list(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_list(v) for v in value]
    if isinstance(value, Shard):
        return {"offsets": list(value.offsets), "local": as_list(value.local)}
    if isinstance(value, torch.Tensor):
        return value.float().tolist()
    if isinstance(value, np.ndarray | np.generic):
        return np.asarray(value).astype(float).tolist()
    return value


# ---------------------------------------------------------------------- running ranks
def run_ranks(tmp: Path, world: int, scenario: str, config: dict[str, Any],
              timeout: float = 60, **args: Any) -> list[Any]:
    """Run ``scenario`` on ``world`` ranks; every rank's JSON result, in rank order."""
    rendezvous = tmp / f"rendezvous-{uuid.uuid4().hex[:8]}"
    payload = json.dumps({"config": config, **args})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        str(HERE), os.environ.get("PYTHONPATH")]))}
    procs = [subprocess.Popen([sys.executable, str(CHILD), scenario, str(rank), str(world),
                               str(rendezvous), payload],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for rank in range(world)]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=timeout))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    results = []
    for rank, (proc, (out, err)) in enumerate(zip(procs, outputs, strict=True)):
        lines = [line for line in out.splitlines() if line.startswith(RESULT)]
        assert proc.returncode == 0 and lines, (
            f"rank {rank} exited with {proc.returncode}\nstdout:\n{out}\nstderr:\n{err}")
        results.append(json.loads(lines[-1][len(RESULT):]))
    return results
