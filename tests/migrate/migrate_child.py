"""Child processes of the migration tests: ``reader SPEC STOP OUT SEED``.

A reader connects with the spec's config and, until the file STOP exists, resolves a
random version (a fresh resolve each time) and reads every file or array of it through
dataplane, comparing SHA-256 with what the test wrote. Every exception and every wrong
byte is recorded in OUT (JSON); OUT.progress holds the running count of reads.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import dataplane

sys.path.insert(0, str(Path(__file__).parent))
from migrate_support import read_back


def reader(spec_path: str, stop: str, out: str, seed: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    expected: dict[str, dict[str, str]] = spec["expected"]
    rng = random.Random(int(seed))
    reads, errors = 0, []
    progress = Path(out + ".progress")
    with dataplane.connect(spec["config"]) as plane:
        while not Path(stop).exists():
            ref = rng.choice(sorted(expected))
            try:
                wrong = read_back(plane, ref, expected[ref])
                errors.extend(f"wrong bytes: {w}" for w in wrong)
            except Exception as error:
                errors.append(f"{ref}: {type(error).__name__}: {error}")
            reads += 1
            progress.write_text(str(reads))
    Path(out).write_text(json.dumps({"reads": reads, "errors": errors}))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "reader":
        reader(*args)
    else:
        raise SystemExit(f"unknown command {command!r}")
