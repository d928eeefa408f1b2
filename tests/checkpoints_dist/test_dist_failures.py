"""A failure on any rank makes every rank raise and commits nothing (4 gloo ranks).

One group of 4 processes runs, in order: a good step 1; five failed attempts at step 2
(a rank whose storage fails while the others write, a rank with an unsupported leaf,
shards that do not tile, a rank missing a key, an existing step); a good step 2; and a
save across a sub-group of ranks 0 and 1. After each attempt every rank reports the
committed steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from dist_support import global_state, local_config, run_ranks

import dataplane

RUN = "fails"


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("dist-failures")
    (tmp / "a-file").write_text("a blob folder cannot live under a file")
    broken = local_config(tmp)
    broken["backends"]["local"]["url"] = (tmp / "a-file" / "blobs").as_uri()
    results = run_ranks(tmp, 4, "failures", local_config(tmp), run=RUN, broken_config=broken,
                        timeout=120)
    return {"tmp": tmp, "results": results}


def _case(outcome: dict[str, Any], case: str) -> list[dict[str, Any]]:
    return [rank_results[case] for rank_results in outcome["results"]]


@pytest.mark.parametrize("case", ["write_fails", "bad_leaf", "not_tiling", "missing_key",
                                  "existing_step"])
def test_every_rank_raises_and_nothing_is_committed(outcome: dict[str, Any], case: str
                                                    ) -> None:
    results = _case(outcome, case)
    assert all("error" in r for r in results), results
    assert all(r["steps"] == [1] for r in results), results


def test_a_rank_whose_storage_fails(outcome: dict[str, Any]) -> None:
    results = _case(outcome, "write_fails")
    assert "a-file" in results[2]["message"]  # rank 2 raises its own error
    for rank in (0, 1, 3):
        assert results[rank]["error"] == "DataplaneError"
        assert "checkpoint 'fails' step 2 was not saved: rank 2 failed" in results[rank]["message"]


def test_a_rank_with_an_unsupported_leaf(outcome: dict[str, Any]) -> None:
    results = _case(outcome, "bad_leaf")
    assert all(r["error"] == "InvalidSourceError" for r in results)
    assert "unsupported value at 'bad'" in results[1]["message"]
    assert "rank 1 failed: InvalidSourceError: unsupported value at 'bad'" in results[0]["message"]


def test_shards_that_do_not_tile(outcome: dict[str, Any]) -> None:
    results = _case(outcome, "not_tiling")
    assert all(r["error"] == "InvalidSourceError" for r in results)
    assert all(r["message"] == results[0]["message"] for r in results)
    message = results[0]["message"]
    assert "the shards of 'model/emb' (global shape (10, 3)) do not tile it" in message
    assert "rank 2 holds shape (2, 3) at offsets (6, 0)" in message
    assert "block (3, 3)" in message


def test_a_rank_missing_a_key(outcome: dict[str, Any]) -> None:
    results = _case(outcome, "missing_key")
    assert all(r["error"] == "InvalidSourceError" for r in results)
    assert "rank 3 lacks 'model/bias'" in results[0]["message"]


def test_an_existing_step(outcome: dict[str, Any]) -> None:
    assert all(r["error"] == "AlreadyExistsError" for r in _case(outcome, "existing_step"))


def test_the_group_recovers_and_the_torn_save_is_collected(outcome: dict[str, Any]) -> None:
    assert all(r == {"ok": True, "steps": [1, 2]} for r in _case(outcome, "second"))
    with dataplane.connect(local_config(outcome["tmp"])) as plane:
        removed = plane.checkpoints.gc(RUN, grace_period_s=0)
        assert any("/step-0000000002-" in prefix for prefix in removed)  # rank 0, 1, 3's chunks
        live = plane.checkpoints.checkpoint(RUN, 2).record.manifest["prefix"]
        assert live not in removed
        state = plane.checkpoints.load(RUN, 2)
        assert torch.equal(state["model"]["w0"], global_state()["w0"])
        assert np.array_equal(state["model"]["emb"], global_state()["emb"])


def test_a_sub_group(outcome: dict[str, Any]) -> None:
    results = [r.get("subgroup") for r in outcome["results"]]
    assert results[0] == results[1] and results[0]["step"] == 1
    assert results[2]["error"] == "ConfigError" and "not a member" in results[2]["message"]
    assert results[3] is None
    with dataplane.connect(local_config(outcome["tmp"])) as plane:
        state = plane.checkpoints.load("sub", 1)
        assert torch.equal(state["model"]["w0"], global_state()["w0"])
        assert plane.checkpoints.checkpoint("sub", 1).record.manifest["sharding"][
            "world_size"] == 2

