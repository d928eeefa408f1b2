"""Large writes stream: peak memory stays bounded whatever the dataset's size.

A child process writes 320 MiB of Arrow data from a generator and reports its peak RSS
(``ru_maxrss``) before and after the write. What the write may hold at once:

- the writer: at most ``max_buffered_bytes`` (16 MiB here) of batches, plus one row
  group of ``max_bytes_per_group`` (8 MiB) being encoded, which Parquet's encoder
  buffers at about 4x (measured: ~30 MiB of Arrow pool at peak), plus allocator slack:
  about 50-90 MiB of RSS in all;
- the commit (``ArtifactStore.commit_files``): hashing in 1 MiB reads, and uploading
  every part file at once (up to ``workers``), each through the local adapter's 8 MiB
  copy buffer: about 17 MiB per file in flight, here 5 files of ~64 MiB.

That is ~120-170 MiB, independent of the data's size once the file count passes
``workers``, so the test allows half of the data written: a writer that held the data, or
any large share of it, would grow the process by 320 MiB or more. (With the defaults, a
2 GiB write from a streaming reader peaked at ~390 MiB RSS in all, imports included.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys
import numpy as np, pyarrow as pa
import dataplane
from dataplane.datasets import WriteOptions

MiB = 2 ** 20
rows, batches = 32_768, int(sys.argv[1])
schema = pa.schema([("id", pa.int64()), ("x", pa.float64()), ("y", pa.float64()),
                    ("z", pa.int64())])

def generate():
    rng = np.random.default_rng(0)
    for i in range(batches):
        yield pa.record_batch([pa.array(np.arange(i * rows, (i + 1) * rows)),
                               pa.array(rng.random(rows)), pa.array(rng.random(rows)),
                               pa.array(rng.integers(0, 10**9, rows))], schema=schema)

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

options = WriteOptions(max_bytes_per_group=8 * MiB, max_buffered_bytes=16 * MiB,
                       max_bytes_per_file=64 * MiB)
plane = dataplane.connect({"backends": {"local": {"url": "file://blobs"}},
                           "cache": {"dir": "cache"}})
plane.datasets.write("warmup", next(generate()), options=options)  # imports, pools
before = peak()
version = plane.datasets.write("big", generate(), options=options)
print(json.dumps({"before": before, "after": peak(), "rows": version.manifest.extra["rows"],
                  "files": len(version.files), "bytes": rows * batches * 32}))
"""


def test_streaming_write_keeps_memory_bounded(tmp_path: Path) -> None:
    batches = 320  # 320 x 32,768 rows x 32 bytes = 320 MiB of Arrow data
    done = subprocess.run([sys.executable, "-c", CHILD, str(batches)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["rows"] == batches * 32_768 and report["files"] >= 4
    growth = report["after"] - report["before"]
    assert growth < report["bytes"] / 2, report
