"""One rank of a multi-rank checkpoint test:
``python dist_child.py SCENARIO RANK WORLD RENDEZVOUS_FILE ARGS_JSON``.

Joins the gloo process group (``file://RENDEZVOUS_FILE``), connects its own plane from
``ARGS_JSON["config"]``, runs the scenario and prints ``RESULT <json>`` as its last line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import torch.distributed as dist
from dist_support import CHUNK_BYTES, RESULT, as_list, global_state, rank_state, template

import dataplane
from dataplane.checkpoints import CheckpointStore, IOSettings, Shard


def save(rank: int, world: int, args: dict[str, Any]) -> Any:
    """Save ``rank_state`` as ``args["run"]`` step ``args["step"]``, small chunks."""
    with dataplane.connect(args["config"]) as plane:
        store = CheckpointStore(plane, IOSettings(chunk_bytes=CHUNK_BYTES))
        try:
            checkpoint = store.save(args["run"], args["step"], rank_state(rank, world),
                                    metadata={"saved_by": rank})
        finally:
            store.close()
        return {"step": checkpoint.step, "url": checkpoint.url, "keys": list(checkpoint.keys),
                "number": checkpoint.record.number, "metadata": dict(checkpoint.metadata)}


def load(rank: int, world: int, args: dict[str, Any]) -> Any:
    """Load this rank's part (``template(rank, world)``); the data, or the error."""
    with dataplane.connect(args["config"]) as plane:
        into = template(rank, world)
        try:
            loaded = plane.checkpoints.load(args["run"], args["step"], template=into)
        except dataplane.DataplaneError as error:
            return {"error": type(error).__name__, "message": str(error)}
        in_place = loaded["model"]["w0"] is into["model"]["w0"] and \
            loaded["model"]["w0"].local is into["model"]["w0"].local
        return {"loaded": as_list(loaded), "in_place": in_place}


def failures(rank: int, world: int, args: dict[str, Any]) -> Any:
    """A good step 1, failed attempts at step 2 (each must raise on every rank and commit
    nothing), then a good step 2; finally a save across a sub-group."""
    run = args["run"]
    results: dict[str, Any] = {}
    with dataplane.connect(args["config"]) as plane, \
            dataplane.connect(args["broken_config"]) as broken:
        ckpt = plane.checkpoints

        def attempt(case: str, call: Callable[[], Any]) -> None:
            try:
                call()
                results[case] = {"ok": True}
            except Exception as error:
                results[case] = {"error": type(error).__name__, "message": str(error)}
            dist.barrier()  # every rank has raised before anyone looks at the catalog
            results[case]["steps"] = ckpt.steps(run)

        attempt("first", lambda: ckpt.save(run, 1, rank_state(rank, world)))
        # a rank whose storage fails while the others write their chunks
        writer = broken.checkpoints if rank == 2 else ckpt
        attempt("write_fails", lambda: writer.save(run, 2, rank_state(rank, world)))
        # a rank whose state holds something checkpoints cannot store
        bad = {**rank_state(rank, world), **({"bad": {1, 2}} if rank == 1 else {})}
        attempt("bad_leaf", lambda: ckpt.save(run, 2, bad))
        # numpy.array_split's 3, 3, 2, 2 rows: not a regular grid
        emb = global_state()["emb"]
        starts = [0, 3, 6, 8]
        uneven = {**rank_state(rank, world), "model": {
            **rank_state(rank, world)["model"],
            "emb": Shard(np.array_split(emb, world)[rank], emb.shape, (starts[rank], 0))}}
        attempt("not_tiling", lambda: ckpt.save(run, 2, uneven))
        # rank 3 lacks a key the others have
        state = rank_state(rank, world)
        if rank == 3:
            del state["model"]["bias"]
        attempt("missing_key", lambda: ckpt.save(run, 2, state))
        attempt("existing_step", lambda: ckpt.save(run, 1, rank_state(rank, world)))
        attempt("second", lambda: ckpt.save(run, 2, rank_state(rank, world)))
        # a sub-group: ranks 0 and 1 save a 2-way state; rank 2 is not a member
        sub = dist.new_group([0, 1])
        if rank in (0, 1):
            attempt_sub = ckpt.save("sub", 1, rank_state(rank, 2), group=sub)
            results["subgroup"] = {"step": attempt_sub.step, "keys": list(attempt_sub.keys)}
        elif rank == 2:
            try:
                ckpt.save("sub", 5, rank_state(0, 1), group=sub)
            except Exception as error:
                results["subgroup"] = {"error": type(error).__name__, "message": str(error)}
        dist.barrier()
    return results


SCENARIOS: dict[str, Callable[[int, int, dict[str, Any]], Any]] = {
    "save": save, "load": load, "failures": failures,
}


def main(argv: list[str]) -> None:
    scenario, rank_text, world_text, rendezvous, payload = argv
    rank, world = int(rank_text), int(world_text)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank,
                            world_size=world, timeout=timedelta(seconds=60))
    try:
        result = SCENARIOS[scenario](rank, world, json.loads(payload))
    finally:
        dist.destroy_process_group()
    print(RESULT + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
