"""The 4-rank save against S3 (the session's moto server): each rank writes its chunks to
the bucket over HTTP; the checkpoint then loads whole and resharded in this process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from dist_support import SHARD_DIMS, global_state, run_ranks, s3_config, split, template

import dataplane
from dataplane.testing.servers import Endpoint, create_s3_bucket


def test_four_ranks_save_to_s3(tmp_path: Path, s3_endpoint: Endpoint) -> None:
    config = s3_config(tmp_path, s3_endpoint.endpoint_url,
                       create_s3_bucket(s3_endpoint.endpoint_url))
    results = run_ranks(tmp_path, 4, "save", config, run="on-s3", step=3)
    assert all(r == results[0] for r in results)
    assert results[0]["url"].startswith("s3://")
    g = global_state()
    with dataplane.connect(config) as plane:
        state = plane.checkpoints.load("on-s3", 3)
        assert torch.equal(state["model"]["w0"], g["w0"])
        assert torch.equal(state["model"]["w1"], g["w1"])
        assert np.array_equal(state["model"]["emb"], g["emb"])
        assert plane.checkpoints.verify("on-s3", 3).step == 3
        for rank in range(2):
            loaded = plane.checkpoints.load("on-s3", 3, template=template(rank, 2))
            for key, dim in SHARD_DIMS.items():
                name = key.split("/")[1]
                piece, _ = split(g[name], dim, rank, 2)
                assert np.array_equal(np.asarray(torch.as_tensor(loaded["model"][name].local)
                                                 .float()),
                                      np.asarray(torch.as_tensor(piece).float()))
