"""Features through dataplane: the same code on the native adapter or on Feast.

    python examples/features.py                 # native: pyarrow offline, SQLite online
    python examples/features.py --adapter feast # Feast (needs pip install 'dataplane[feast]')
    python examples/features.py --online redis://127.0.0.1:6379/0

Writes a small driver-statistics dataset, applies an entity, a feature view over the
dataset and a feature service, materializes the last day into the online store, and reads
features online (for serving) and point-in-time correct (for training).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pyarrow as pa

import dataplane
from dataplane.features import Entity, Feature, FeatureService, FeatureView


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--adapter", default="native", choices=["native", "feast"])
    parser.add_argument("--online", default=None, help="online store URL (default SQLite)")
    parser.add_argument("--dir", default=".dataplane-features-example")
    args = parser.parse_args()
    features = {"adapter": args.adapter, "dir": f"{args.dir}/features",
                **({"online_url": args.online} if args.online else {})}
    config = {"catalog": {"url": f"sqlite:///{args.dir}/catalog.db"},
              "backends": {"local": {"url": f"file://{args.dir}/blobs"}},
              "cache": {"dir": f"{args.dir}/cache"}, "features": features}
    now = datetime.now(UTC).replace(microsecond=0)
    hours = [now - timedelta(hours=h) for h in (5, 3, 1)]
    with dataplane.connect(config) as plane:
        plane.datasets.write("drivers/hourly", pa.table({
            "driver_id": [1001, 1002, 1001], "event_timestamp": hours,
            "trips": [10, 4, 12], "acceptance": [0.91, 0.75, None]}), aliases=["prod"])
        plan = plane.features.apply([
            Entity("driver", join_key="driver_id", dtype="int64"),
            FeatureView("driver_hourly", entities=("driver",), ttl="1d",
                        source="datasets/drivers/hourly@prod",
                        features=(Feature("trips", "int64"), Feature("acceptance", "float64"))),
            FeatureService("ranking_v1", features=("driver_hourly:trips",
                                                   "driver_hourly:acceptance")),
        ])
        print(plan)
        plane.features.materialize(now - timedelta(days=1), now)
        print("online:", plane.features.get_online(
            "ranking_v1", [{"driver_id": 1001}, {"driver_id": 1002}, {"driver_id": 9}]))
        training = pa.table({"driver_id": [1001, 1001, 1002],
                             "event_timestamp": [now - timedelta(hours=4), now,
                                                 now - timedelta(hours=6)],
                             "label": [1, 0, 1]})
        print("training set:")
        print(plane.features.get_historical(training, "ranking_v1").to_pandas())


if __name__ == "__main__":
    main()
