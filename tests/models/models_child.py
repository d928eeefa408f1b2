"""A separate process for the model tests: ``python models_child.py COMMAND CONFIG_JSON ...``.

- ``fetch CONFIG REF GO_FILE``: connect, print ``ready``, wait until ``GO_FILE`` exists
  (so several children start fetching at the same moment), fetch ``REF`` into the node
  cache and print one JSON line: the view folder and the sha256 of every file in it.
- ``publish CONFIG NAME SOURCE``: connect, print ``publishing``, publish ``SOURCE`` as
  ``NAME`` and print ``committed <version>`` (a test kills it somewhere in between).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import dataplane


def fetch(config: dict[str, object], ref: str, go_file: str) -> None:
    with dataplane.connect(config) as plane:
        print("ready", flush=True)
        while not Path(go_file).exists():
            time.sleep(0.001)
        folder = plane.models.fetch(ref)
        digests = {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                   for p in sorted(folder.rglob("*")) if p.is_file()}
        print(json.dumps({"view": str(folder), "files": digests}), flush=True)


def publish(config: dict[str, object], name: str, source: str) -> None:
    with dataplane.connect(config) as plane:
        print("publishing", flush=True)
        version = plane.models.publish(name, source)
        print(f"committed {version.version}", flush=True)


def main(argv: list[str]) -> None:
    command, config, *rest = argv
    {"fetch": fetch, "publish": publish}[command](json.loads(config), *rest)


if __name__ == "__main__":
    main(sys.argv[1:])
