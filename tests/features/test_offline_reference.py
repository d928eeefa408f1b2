"""Point-in-time joins of both adapters against a brute-force reference, on random data
full of ties: string and composite join keys, the created-timestamp cut-off, the TTL."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from feature_support import factory

from dataplane.features import Entity, Feature, FeatureView

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")


def reference(rows: list[dict[str, Any]], key: tuple[Any, ...], at: datetime,
              ttl: timedelta) -> Any:
    """Latest row of ``key`` at or before ``at``, created by then, within the TTL; among
    equal event times the later created, then the later row."""
    best: tuple[Any, ...] | None = None
    for index, row in enumerate(rows):
        if (row["region"], row["shop"]) != key or row["ts"] > at or row["created"] > at:
            continue
        if row["ts"] < at - ttl:
            continue
        rank = (row["ts"], row["created"], index)
        if best is None or rank > best[0]:
            best = (rank, row["value"])
    return None if best is None else best[1]


@pytest.mark.parametrize("adapter", ["native", "feast"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_composite_string_keys_match_the_reference(tmp_path: Path, seed: int,
                                                   adapter: str) -> None:
    rng = random.Random(seed)
    regions, shops = ["eu", "us", "ap"], [1, 2, 3, 4]
    rows = []
    for _ in range(400):
        ts = T0 + timedelta(minutes=rng.randrange(0, 600, 10))  # many exact ties
        rows.append({"region": rng.choice(regions), "shop": rng.choice(shops), "ts": ts,
                     "created": ts + timedelta(minutes=rng.choice([0, 0, 5, 30])),
                     "value": rng.randrange(1000)})
    source = tmp_path / "sales.parquet"
    pq.write_table(pa.Table.from_pylist(rows, pa.schema([
        ("region", pa.string()), ("shop", pa.int64()), ("ts", TS), ("created", TS),
        ("value", pa.int64())])), source)
    ttl = timedelta(hours=2)
    plane = factory(tmp_path, adapter=adapter)(f"conf_offline_{seed}")
    plane.features.apply([
        Entity("region", dtype="string"), Entity("shop"),
        FeatureView("sales", ("region", "shop"), (Feature("value", "int64"),), str(source),
                    timestamp_field="ts", created_timestamp_field="created", ttl=ttl)])
    queries = [(rng.choice([*regions, "none"]), rng.choice(shops),
                T0 + timedelta(minutes=rng.randrange(-30, 700, 5))) for _ in range(500)]
    entities = pa.table({"region": [q[0] for q in queries], "shop": [q[1] for q in queries],
                         "event_timestamp": pa.array([q[2] for q in queries], TS)})
    got = plane.features.get_historical(entities, ["sales:value"]).column("value").to_pylist()
    expected = [reference(rows, (q[0], q[1]), q[2], ttl) for q in queries]
    assert got == expected
    assert sum(v is not None for v in got) > 100
    plane.close()
