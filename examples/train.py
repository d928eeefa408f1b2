"""A training script as a platform team would write it with dataplane.

Each data-parallel rank reads its own deterministic shard of a dataset version, "trains"
(a least-squares fit, to keep the example dependency-free), and rank 0 publishes the model
with lineage pointing at the exact dataset version it used.

    python examples/train.py                       # creates a toy dataset first if needed
    RANK=1 WORLD_SIZE=2 python examples/train.py   # what each rank of a 2-rank job runs
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa

import dataplane
from dataplane.datasets import WriteOptions

DATASET = "demo/regression"
MODEL = "demo/linear"


def ensure_dataset(plane: dataplane.DataPlane) -> str:
    """The dataset version to train on (written once, here, so the example runs alone)."""
    if not plane.datasets.list(prefix=DATASET):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(10_000, 3))
        y = x @ np.array([2.0, -1.0, 0.5]) + 0.1 * rng.normal(size=10_000)
        table = pa.table({"x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2], "y": y})
        # Row groups are the unit of sharding: keep them small enough for every rank.
        plane.datasets.write(DATASET, table, aliases=["train"],
                             options=WriteOptions(max_rows_per_group=1000))
    return plane.datasets.resolve(f"{DATASET}@train").uri


def main() -> None:
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    with dataplane.connect() as plane:
        dataset = ensure_dataset(plane)
        features, targets = [], []
        for batch in plane.datasets.iter_batches(dataset, batch_size=2048, shard=rank,
                                                 num_shards=world):
            columns = batch.to_pydict()
            features.append(np.column_stack([columns["x0"], columns["x1"], columns["x2"]]))
            targets.append(np.asarray(columns["y"]))
        x, y = np.concatenate(features), np.concatenate(targets)
        weights, *_ = np.linalg.lstsq(x, y, rcond=None)
        print(f"rank {rank}/{world}: {len(y)} rows from {dataset}, weights {weights.round(3)}")
        if rank != 0:
            return
        with tempfile.TemporaryDirectory() as out:
            np.save(Path(out) / "weights.npy", weights)
            (Path(out) / "config.json").write_text(json.dumps({"features": 3}))
            version = plane.models.publish(MODEL, out, aliases=["candidate"],
                                           metadata={"datasets": [dataset], "rows": len(y)})
        print(f"published {version.uri} ({version.digest[:19]}...) from {dataset}")


if __name__ == "__main__":
    main()
