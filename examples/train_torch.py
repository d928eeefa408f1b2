"""A small PyTorch training loop that checkpoints asynchronously and resumes.

Run it twice: the second run resumes from the latest checkpoint of the first and carries
on counting steps. Needs the torch extra (``pip install 'dataplane[torch]'``).

    python examples/train_torch.py --steps 30
    python examples/train_torch.py --steps 30   # resumes at step 31
"""

from __future__ import annotations

import argparse

import torch

import dataplane
from dataplane.checkpoints import Retention, SaveHandle

RUN = "demo/torch-regression"


def build() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    return model, torch.optim.Adam(model.parameters(), lr=1e-2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--every", type=int, default=10)
    args = parser.parse_args()
    model, optimizer = build()
    with dataplane.connect() as plane:
        checkpoints = plane.checkpoints
        checkpoints.retention = Retention(keep_last=3)
        start = 0
        latest = checkpoints.latest(RUN)
        if latest is not None:
            state = checkpoints.load(RUN, latest.step)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start = state["step"]
            print(f"resumed {RUN} at step {start}")
        generator = torch.Generator().manual_seed(start)
        pending: SaveHandle | None = None
        for step in range(start + 1, start + args.steps + 1):
            x = torch.randn(64, 8, generator=generator)
            loss = torch.nn.functional.mse_loss(model(x), x.sum(dim=1, keepdim=True))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()  # mutates parameters a pending async save already copied
            if step % args.every == 0:
                pending = checkpoints.save_async(RUN, step, {
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "step": step, "loss": loss.item(),
                })
        if pending is not None:
            done = pending.result()
            print(f"last checkpoint: step {done.step}; kept steps {checkpoints.steps(RUN)}")
        print(f"finished at step {start + args.steps}, loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
