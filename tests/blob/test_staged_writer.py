"""The staged positional writer (object stores): a killed writer's file in ``$TMPDIR`` is
removed when the next writer opens, a live writer's file never is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from dataplane_adapters.memory import MemoryBlobStore

from dataplane.blob.positional import STAGED_PREFIX, StagedPositionalWriter


def staged(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{STAGED_PREFIX}*"))


def test_a_killed_writers_staged_file_is_removed_by_the_next_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    child = textwrap.dedent("""
        import sys, time
        from dataplane_adapters.memory import MemoryBlobStore
        writer = MemoryBlobStore().open_positional("big", 10**6)
        writer.write_at(0, b"x" * 1000)
        print("ready", flush=True)
        time.sleep(60)
    """)
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    process = subprocess.Popen([sys.executable, "-c", child], env=env, stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    live = StagedPositionalWriter(MemoryBlobStore(), "live", 10)
    try:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        (dead,) = (path for path in staged(tmp_path) if path.name != Path(live._file.name).name)
        old = time.time() - 3600
        for path in staged(tmp_path):  # both old enough to be judged by their lock alone
            os.utime(path, (old, old))
        after = StagedPositionalWriter(MemoryBlobStore(), "next", 10)
        names = {path.name for path in staged(tmp_path)}
        assert dead.name not in names  # the killed writer's file is gone
        assert Path(live._file.name).name in names  # the live one's stays
        after.write_at(0, b"0123456789")
        after.commit()
    finally:
        live.abort()
    assert staged(tmp_path) == []
