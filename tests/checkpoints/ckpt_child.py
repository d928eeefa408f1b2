"""The saver process of the kill test, and the deterministic per-step state it saves.

``python ckpt_child.py CONFIG_JSON RUN`` imports numpy, torch and dataplane once, builds
the base buffers, prints ``ready`` and then serves commands from stdin, one per line:

- ``go``: fork a saver process and print ``pid <PID>``. The saver connects and saves
  steps ``latest + 1``, ``latest + 2``, ... of ``RUN`` until it is killed, printing
  ``saving <N>`` before and ``saved <N>`` after each. When the saver ends, print
  ``exit <signal number>`` (or ``exit code <N>`` if it ever returned).

Forking from this warm process instead of starting a new interpreter per trial saves the
1.5 s that ``import torch`` costs, so 20 kills fit in a few tens of seconds; each saver
is still a separate process, killed with a real SIGKILL.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np
import torch

BIG = 4 * 2**20  # float32 elements: 16 MiB per large tensor
SMALL = 300
CHUNK_BYTES = 4 * 2**20


def make_base() -> list[np.ndarray]:
    rng = np.random.default_rng(20240601)
    return [rng.standard_normal(BIG, dtype=np.float32) for _ in range(4)]


def kill_state(step: int, base: list[np.ndarray]) -> dict[str, Any]:
    """The state saved at ``step``: about 57 MB in 4 large tensors (one of them bfloat16)
    and 300 small arrays, every element depending on the step."""
    shift = np.float32(step)
    return {
        "model": {
            "embed": torch.from_numpy((base[0] + shift).reshape(2048, 2048)),
            "proj": torch.from_numpy((base[1] - shift).reshape(1024, 4096)),
            "head_bf16": torch.from_numpy(base[2] * shift).to(torch.bfloat16).reshape(4096, 1024),
        },
        "optimizer": {
            "exp_avg": (base[3] + shift).reshape(4096, 1024),
            "small": [np.arange(256, dtype=np.float32) * i + step for i in range(SMALL)],
        },
        "step": step,
        "tag": f"step-{step}",
    }


def saver(config: dict[str, Any], run: str, base: list[np.ndarray]) -> None:
    import dataplane
    from dataplane.checkpoints import CheckpointStore, IOSettings, Retention

    plane = dataplane.connect(config)
    store = CheckpointStore(plane, settings=IOSettings(chunk_bytes=CHUNK_BYTES),
                            retention=Retention(keep_last=2))
    latest = store.latest(run)
    step = latest.step + 1 if latest else 1
    while True:
        state = kill_state(step, base)
        print(f"saving {step}", flush=True)
        store.save(run, step, state)
        print(f"saved {step}", flush=True)
        step += 1


def main(config_json: str, run: str) -> None:
    config = json.loads(config_json)
    base = make_base()
    import dataplane  # noqa: F401 - imported once here, before the forks

    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            continue
        pid = os.fork()
        if pid == 0:  # the saver
            try:
                saver(config, run, base)
            finally:
                os._exit(1)
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            print(f"exit {os.WTERMSIG(status)}", flush=True)
        else:
            print(f"exit code {os.WEXITSTATUS(status)}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
