"""Feature look-ups through ``plane.features`` against Feast's own FeatureStore, one run.

Online: lookups of 1 and 100 entity rows, every peer called once per round in a rotating
order, on the same repository and data: ``plane.features`` on the native adapter (SQLite,
Redis) and on the Feast adapter (SQLite, Redis), and ``feast.FeatureStore
.get_online_features`` called directly on the Feast adapter's very repository. Judged:
Feast adapter p50 and p99 <= 1.10x Feast direct (same online store); native + Redis p99 at
least 2x faster than Feast direct.

Historical: 100,000 entity rows over 1,000,000 feature rows, native (pyarrow) against
Feast's file offline store (``get_historical_features(...).to_df()``), each in its own
child process so that its peak RSS is its own. Judged: native at least 1.0x as fast.

Method: one warm-up of 20 rounds, then ``--rounds`` rounds; in each round every peer looks
up the same random entity rows once, in a new random order every round, with
``gc.collect()`` before each timed call. p50 and p99 are over each peer's own samples. (A
rotating order kept every peer behind the same neighbour: the peer that followed a light
call found Feast's code and data colder than the one that followed a Feast call.)

Run: ``python benchmarks/features.py [--rounds 3000] [--redis redis://127.0.0.1:6379/0]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import render

import dataplane
from dataplane.features import Entity, Feature, FeatureView

FEATURES = ["stats:clicks", "stats:score", "stats:tag", "stats:active"]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def config(root: Path, **features: Any) -> dict[str, Any]:
    return {"catalog": {"url": f"sqlite:///{root / 'catalog.db'}"},
            "backends": {"local": {"url": f"file://{root / 'blobs'}", "fsync": False}},
            "cache": {"dir": str(root / "cache")},
            "features": {"dir": str(root / "features"), **features}}


def source(entities: int, per_entity: int, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = entities * per_entity
    ids = np.repeat(np.arange(entities, dtype=np.int64), per_entity)
    offsets = rng.choice(30 * 86400, n, replace=True)
    clicks = rng.integers(0, 10_000, n)
    return pa.table({
        "user_id": ids,
        "event_timestamp": pa.array(T0.timestamp() * 1e6 - offsets * 1e6,
                                    pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "clicks": clicks, "score": rng.random(n),
        "tag": pa.array([f"tag{i % 100}" for i in clicks]),
        "active": rng.random(n) < 0.5})


def definitions() -> list[Any]:
    return [Entity("user", join_key="user_id"),
            FeatureView("stats", ("user",), (Feature("clicks", "int64"),
                                             Feature("score", "float64"),
                                             Feature("tag", "string"),
                                             Feature("active", "bool")),
                        "datasets/bench/stats@prod", ttl=None)]


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ------------------------------------------------------------------ online
def online(root: Path, rounds: int, redis_url: str | None, entities: int) -> list[str]:
    table = source(entities, 3)
    planes: dict[str, Any] = {}
    kinds = [("native", "sqlite", None), ("feast", "sqlite", None)]
    if redis_url:
        kinds += [("native", "redis", redis_url), ("feast", "redis", redis_url)]
    for adapter, store, url in kinds:
        extra = {"online_url": url} if url else {}
        plane = dataplane.connect(config(root / f"{adapter}-{store}", adapter=adapter,
                                         project=f"bench_{adapter}_{os.getpid()}", **extra))
        plane.datasets.write("bench/stats", table, aliases=["prod"])
        plane.features.apply(definitions())
        plane.features.materialize(T0 - timedelta(days=60), T0)
        planes[f"{adapter}-{store}"] = plane
    from dataplane_adapters.feast_features import feast_repo_config
    from feast import FeatureStore

    peers: dict[str, Callable[[list[dict[str, int]]], Any]] = {}
    for store in ("sqlite", "redis"):
        if f"feast-{store}" not in planes:
            continue
        direct = FeatureStore(config=feast_repo_config(planes[f"feast-{store}"].features
                                                       .backend.context))
        peers[f"feast direct ({store})"] = (
            lambda rows, d=direct: d.get_online_features(features=FEATURES,
                                                         entity_rows=rows).to_dict())
    for name, plane in planes.items():
        peers[f"plane.features {name.replace('-', ' (')})"] = (
            lambda rows, p=plane: p.features.get_online(FEATURES, rows))
    gc.collect()
    gc.freeze()  # setup's objects leave the collector's view: each collect() stays cheap
    lines = []
    rng = random.Random(5)
    order = random.Random(7)
    for size in (1, 100):
        samples: dict[str, list[float]] = {name: [] for name in peers}
        names = list(peers)
        for round_ in range(rounds + 20):
            rows = [{"user_id": rng.randrange(entities)} for _ in range(size)]
            order.shuffle(names)  # each peer follows a different one from round to round
            for name in names:
                gc.collect()  # no peer pays for another's garbage
                start = time.perf_counter()
                peers[name](rows)
                if round_ >= 20:  # warm-up rounds are not counted
                    samples[name].append(time.perf_counter() - start)
        lines.append(online_table(size, samples))
    for plane in planes.values():
        plane.features.apply([])  # drops the online values (the Redis keys) it wrote
        plane.close()
    return lines


def online_table(size: int, samples: dict[str, list[float]]) -> str:
    body = []
    for name, values in samples.items():
        store = "redis" if "redis" in name else "sqlite"
        base = samples.get(f"feast direct ({store})") or samples["feast direct (sqlite)"]
        p50, p99 = pct(values, 0.5), pct(values, 0.99)
        r50, r99 = p50 / pct(base, 0.5), p99 / pct(base, 0.99)
        verdict = ""
        if "plane.features feast" in name:
            verdict = "ok" if r50 <= 1.10 and r99 <= 1.10 else "SLOW"
        elif "native (redis)" in name:
            verdict = "ok" if r99 <= 0.5 else "SLOW"
        body.append((name, f"{p50 * 1e3:.3f}", f"{p99 * 1e3:.3f}", f"{r50:.2f}",
                     f"{r99:.2f}", verdict))
    header = ("peer", "p50 ms", "p99 ms", "p50 / feast direct", "p99 / feast direct",
              "verdict")
    return f"\n### online lookup, {size} entity row(s)\n\n" + render(header, body, {0, 5})


# -------------------------------------------------------------- historical
def historical(root: Path, entity_rows: int, feature_rows: int, repeat: int) -> str:
    entities = feature_rows // 10
    plane = dataplane.connect(config(root / "hist", adapter="feast", project="bench_hist"))
    plane.datasets.write("bench/stats", source(entities, 10, seed=2), aliases=["prod"])
    plane.features.apply(definitions())
    plane.close()
    rng = np.random.default_rng(9)
    df = pa.table({"user_id": rng.integers(0, entities, entity_rows).astype(np.int64),
                   "event_timestamp": pa.array(T0.timestamp() * 1e6 - rng.integers(
                       0, 30 * 86400, entity_rows) * 1e6, pa.int64()).cast(
                       pa.timestamp("us", tz="UTC"))})
    import pyarrow.parquet as pq

    pq.write_table(df, root / "entities.parquet")
    results: dict[str, list[dict[str, float]]] = {"native": [], "feast": []}
    for _ in range(repeat):
        for peer in ("native", "feast"):
            out = subprocess.run([sys.executable, __file__, "--historical-child", peer,
                                  str(root)], capture_output=True, text=True, check=True)
            results[peer].append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = {p: statistics.median(r["seconds"] for r in v) for p, v in results.items()}
    rss = {p: max(r["rss_mib"] for r in v) for p, v in results.items()}
    speed = med["feast"] / med["native"]
    body = [("native (pyarrow) via plane.features", f"{med['native']:.2f}",
             f"{rss['native']:.0f}", f"{speed:.2f}x", "ok" if speed >= 1.0 else "SLOW"),
            ("feast direct (file offline store)", f"{med['feast']:.2f}",
             f"{rss['feast']:.0f}", "1.00x", "")]
    header = ("peer", "median s", "peak RSS MiB", "speed vs feast", "verdict")
    return (f"\n### historical: {entity_rows:,} entity rows over {feature_rows:,} feature "
            f"rows (median of {repeat})\n\n" + render(header, body, {0, 4}))


def historical_child(peer: str, root: Path) -> None:
    import pyarrow.parquet as pq

    entities = pq.read_table(root / "entities.parquet")
    plane = dataplane.connect(config(root / "hist", adapter="feast", project="bench_hist"))
    start = time.perf_counter()
    if peer == "native":
        from dataplane_adapters.native_features import NativeFeatureBackend

        from dataplane.features.port import FeatureContext

        store = plane.features
        ctx = FeatureContext(plane, plane.config.features, store.state, store._load)
        backend = NativeFeatureBackend(ctx)
        store._backend = backend  # the same definitions and sources, served natively
        result = store.get_historical(entities, FEATURES)
        rows = result.num_rows
    else:
        from dataplane_adapters.feast_features import feast_repo_config
        from feast import FeatureStore

        direct = FeatureStore(config=feast_repo_config(plane.features.backend.context))
        start = time.perf_counter()  # Feast's import and registry open are not counted
        frame = direct.get_historical_features(entity_df=entities.to_pandas(),
                                               features=FEATURES).to_df()
        rows = len(frame)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "rss_mib": peak_rss_mib(), "rows": rows}))


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss it does not inherit the parent's
    peak across fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3000,
                        help="measured lookups per peer and size")
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0",
                        help="Redis URL for the Redis rows ('' to skip them)")
    parser.add_argument("--entity-rows", type=int, default=100_000)
    parser.add_argument("--feature-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="historical repetitions")
    parser.add_argument("--skip-historical", action="store_true")
    parser.add_argument("--historical-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.historical_child:
        historical_child(args.historical_child[0], Path(args.historical_child[1]))
        return
    with tempfile.TemporaryDirectory(prefix="dp-features-bench-") as tmp:
        root = Path(tmp)
        for line in online(root, args.rounds, args.redis or None, args.entities):
            print(line, flush=True)
        if not args.skip_historical:
            print(historical(root, args.entity_rows, args.feature_rows, args.repeat))


if __name__ == "__main__":
    main()
