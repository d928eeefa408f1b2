"""The README demo and the examples run end to end, as a user would run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(script: str, cwd: Path, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("DATAPLANE_CONFIG", "DATAPLANE_CACHE_DIR")}
    result = subprocess.run([sys.executable, str(REPO / "examples" / script)], cwd=cwd,
                            capture_output=True, text=True, env={**environ, **env})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_demo_runs_end_to_end_and_again(tmp_path: Path) -> None:
    first = run("quickstart.py", tmp_path)
    assert "published dp://default/models/demo/sentiment@1" in first
    assert "read 4 verified rows of demo/reviews@train, 3 positive" in first
    assert "demo ok" in first
    again = run("quickstart.py", tmp_path)  # re-running adds versions and still succeeds
    assert "demo/sentiment@3" in again and "demo ok" in again


def test_training_example_shards_across_ranks_and_publishes(tmp_path: Path) -> None:
    rank1 = run("train.py", tmp_path, RANK="1", WORLD_SIZE="2")
    rank0 = run("train.py", tmp_path, RANK="0", WORLD_SIZE="2")
    assert "rank 1/2: 5000 rows" in rank1 and "published" not in rank1
    assert "rank 0/2: 5000 rows" in rank0
    assert "published dp://default/models/demo/linear@1" in rank0


def test_torch_training_loop_checkpoints_async_and_resumes(tmp_path: Path) -> None:
    first = run("train_torch.py", tmp_path)
    assert "last checkpoint: step 30; kept steps [10, 20, 30]" in first
    second = run("train_torch.py", tmp_path)
    assert "resumed demo/torch-regression at step 30" in second
    assert "kept steps [40, 50, 60]" in second


def test_demo_checkpoints_and_resumes(tmp_path: Path) -> None:
    out = run("quickstart.py", tmp_path)
    assert "checkpointed demo/run steps [1, 2]; resumed step 2" in out


def test_demo_serves_features_online_and_point_in_time(tmp_path: Path) -> None:
    out = run("quickstart.py", tmp_path)
    assert "online {'driver_id': [1001, 1002], 'trips': [5, 7], 'rating': [4.7, 4.9]}" in out
    assert "driver 1001 trips 1 h ago = 3, now = 5" in out


def test_features_example_runs_on_the_native_adapter(tmp_path: Path) -> None:
    out = run("features.py", tmp_path)
    assert "online: {'driver_id': [1001, 1002, 9], 'trips': [12, 4, None]" in out
    assert "training set:" in out
