"""The README's features snippet runs as written, in a fresh process and folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def features_snippet() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.index("\n## Features\n")
    start = readme.index("```python\n", section) + len("```python\n")
    return readme[start:readme.index("```", start)]


def test_the_readme_features_snippet_runs_verbatim(tmp_path: Path) -> None:
    code = features_snippet() + (
        "\nprint(plane.features.get_online('ranking_v1', [{'driver_id': 1001}, "
        "{'driver_id': 1002}]))"
        "\nprint(plane.features.get_historical(entity_df, ['driver_stats:trips'])"
        ".column('trips').to_pylist())\n")
    environ = {k: v for k, v in os.environ.items()
               if k not in ("DATAPLANE_CONFIG", "DATAPLANE_CACHE_DIR")}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=environ,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    online, history = result.stdout.strip().splitlines()[-2:]
    assert online == "{'driver_id': [1001, 1002], 'trips': [5, 9], 'rating': [4.7, 4.9]}"
    assert history == "[3, 5]"
