"""Child process for test_features_kill: materialize one view in small batches, slowly
enough that the parent can kill it part-way. Arguments: the config as JSON, the end time."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta

from dataplane_adapters.native_features import NativeFeatureBackend

import dataplane

NativeFeatureBackend.batch_size = 50  # many small batches: a kill lands between or inside one

if __name__ == "__main__":
    config, end = json.loads(sys.argv[1]), datetime.fromisoformat(sys.argv[2])
    with dataplane.connect(config) as plane:
        print("materializing", flush=True)
        plane.features.materialize(end - timedelta(days=1), end)
        print("done", flush=True)
