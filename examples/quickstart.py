"""End-to-end demo on the embedded default (SQLite catalog + local blobs in ./.dataplane/).

It publishes a small model, writes a small dataset, moves an alias, reads both back by
logical address (every byte verified against the digests recorded at write time), saves
two checkpoint steps (one asynchronously) and resumes from the latest, defines a small
feature view over a dataplane dataset, materializes it into the embedded online store
(SQLite) and reads features online and point-in-time, and prints a short summary.
Run it as often as you like: each run adds new versions.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.table import Table

import dataplane
from dataplane.features import Entity, Feature, FeatureView

console = Console(soft_wrap=True)


def make_model(folder: Path, version: int) -> Path:
    """A stand-in for a training run's output: weights and a config."""
    (folder / "weights.bin").write_bytes(bytes(range(256)) * 4096 * version)
    (folder / "config.json").write_text(json.dumps({"layers": 2, "run": version}))
    return folder


def main() -> None:
    with dataplane.connect() as plane:
        console.print(f"[bold]dataplane demo[/bold]: catalog {plane.config.catalog_url}")
        reviews = pa.table({"text": ["good", "bad", "fine", "great"], "label": [1, 0, 1, 1],
                            "split": ["train", "train", "test", "train"]})
        data = plane.datasets.write("demo/reviews", reviews, partition_by=["split"],
                                    aliases=["train"])
        console.print(f"wrote {data.uri}: {reviews.num_rows} rows, {len(data.files)} file(s)")

        with tempfile.TemporaryDirectory() as tmp:
            first = plane.models.publish("demo/sentiment", make_model(Path(tmp), 1))
            second = plane.models.publish("demo/sentiment", make_model(Path(tmp), 2),
                                          metadata={"datasets": [data.uri]}, aliases=["prod"])
        console.print(f"published {first.uri} and {second.uri}; prod -> v{second.version}")

        folder = plane.models.fetch("demo/sentiment@prod")
        config = json.loads((folder / "config.json").read_text())
        with plane.models.open(f"dp://{plane.tenant}/models/demo/sentiment@prod",
                               "weights.bin") as weights:
            weights.seek(1000)
            window = weights.read(4)
        console.print(f"fetched {folder} (verified): config {config}, bytes 1000-1003 "
                      f"of weights.bin = {window.hex()}")

        table = plane.datasets.read("demo/reviews@train").to_table()
        positives = pc.sum(table["label"]).as_py()
        console.print(f"read {table.num_rows} verified rows of demo/reviews@train, "
                      f"{positives} positive; lineage of the model: "
                      f"{plane.models.resolve('demo/sentiment@prod').metadata['datasets']}")

        # checkpoints: save two steps (the second asynchronously), then resume from latest
        state = {"weights": np.ones((256, 256), dtype=np.float32), "step": 0}
        run = "demo/run"
        start = (plane.checkpoints.latest(run).step + 1) if plane.checkpoints.latest(run) else 1
        plane.checkpoints.save(run, start, {**state, "step": start})
        state["weights"] *= 2
        handle = plane.checkpoints.save_async(run, start + 1, {**state, "step": start + 1})
        state["weights"][:] = -1  # safe: save_async already took its snapshot
        handle.result()
        resumed = plane.checkpoints.load(run)
        console.print(f"checkpointed {run} steps {plane.checkpoints.steps(run)[-2:]}; resumed "
                      f"step {resumed['step']} with weights[0, 0] = "
                      f"{resumed['weights'][0, 0]} (verified)")

        demo_features(plane)

        summary = Table("kind", "name", "latest", "digest", "backend")
        for store in (plane.models, plane.datasets):
            for version in store.list(prefix="demo/"):
                summary.add_row(version.kind, version.name, str(version.version),
                                version.digest[:19] + "...",
                                plane.route(version.kind, version.name))
        console.print(summary)
        console.print("[green]demo ok[/green]")


def demo_features(plane: dataplane.DataPlane) -> None:
    """A feature view over a dataplane dataset: applied, materialized into the embedded
    online store (SQLite), read online and point-in-time correct offline."""
    now = datetime.now(UTC).replace(microsecond=0)
    stats = pa.table({
        "driver_id": [1001, 1002, 1001],
        "event_timestamp": [now - timedelta(hours=2), now - timedelta(hours=1),
                            now - timedelta(minutes=30)],
        "trips": [3, 7, 5], "rating": [4.5, 4.9, 4.7]})
    plane.datasets.write("demo/driver_stats", stats, aliases=["features"])
    plan = plane.features.apply([
        Entity("driver", join_key="driver_id"),
        FeatureView("driver_stats", entities=("driver",), ttl="1d",
                    features=(Feature("trips", "int64"), Feature("rating", "float64")),
                    source="datasets/demo/driver_stats@features")])
    plane.features.materialize(now - timedelta(days=1), now)
    online = plane.features.get_online(["driver_stats:trips", "driver_stats:rating"],
                                       [{"driver_id": 1001}, {"driver_id": 1002}])
    console.print(f"features ({plan.summary() if plan else 'definitions unchanged'}): "
                  f"online {online}", highlight=False)
    entities = pa.table({"driver_id": [1001, 1001],
                         "event_timestamp": [now - timedelta(hours=1), now]})
    history = plane.features.get_historical(entities, ["driver_stats:trips"])
    console.print(f"features point-in-time: driver 1001 trips 1 h ago = "
                  f"{history['trips'][0]}, now = {history['trips'][1]}", highlight=False)


if __name__ == "__main__":
    main()
