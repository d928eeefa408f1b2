"""Checkpoint I/O settings: the pool size defaults to what each backend suits."""

from __future__ import annotations

from pathlib import Path

from dataplane.blob import open_store
from dataplane.checkpoints.io import IOSettings, workers_for
from dataplane.testing.servers import Endpoint, create_s3_bucket, s3_options


def test_local_disk_gets_a_small_pool_unless_set(tmp_path: Path) -> None:
    with open_store(tmp_path.as_uri()) as store:
        assert workers_for(IOSettings(), store) == 4
        assert workers_for(IOSettings(workers=3), store) == 3


def test_object_stores_get_a_wide_pool(s3_endpoint: Endpoint) -> None:
    bucket = create_s3_bucket(s3_endpoint.endpoint_url)
    with open_store(f"s3://{bucket}/ckpt", s3_options(s3_endpoint.endpoint_url)) as store:
        assert workers_for(IOSettings(), store) == 32
        assert workers_for(IOSettings(workers=2), store) == 2


def test_a_save_leaves_the_garbage_collector_as_it_found_it(tmp_path: Path) -> None:
    """Planning a save (and taking an async snapshot) pauses cyclic collection; it is
    resumed only if it was on."""
    import gc

    import numpy as np

    import dataplane

    plane = dataplane.connect({"catalog": {"url": f"sqlite:///{tmp_path / 'c.db'}"},
                               "backends": {"main": {"url": (tmp_path / "b").as_uri()}},
                               "defaults": {"backend": "main"}})
    state = {f"t{i}": np.full(3, i, dtype=np.float32) for i in range(50)}
    assert gc.isenabled()
    plane.checkpoints.save("gc-run", 1, state)
    assert gc.isenabled()
    plane.checkpoints.save_async("gc-run", 3, state).result()
    assert gc.isenabled()
    gc.disable()
    try:
        plane.checkpoints.save("gc-run", 2, state)
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert plane.checkpoints.load("gc-run", 2)["t7"].tolist() == [7.0, 7.0, 7.0]
