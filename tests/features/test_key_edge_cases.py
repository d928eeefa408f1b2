"""Join keys at the edges found in review: composite keys of large integers, integer keys
beyond float precision next to nulls, and a feature named like a join key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from feature_support import plane_config

import dataplane
from dataplane.errors import InvalidEntityKeyError, UnknownFeatureError
from dataplane.features import Entity, Feature, FeatureView

T = datetime(2026, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
TS = pa.timestamp("us", tz="UTC")


def test_composite_keys_of_large_integers_never_collide(tmp_path: Path) -> None:
    with dataplane.connect(plane_config(tmp_path, adapter="native")) as plane:
        plane.datasets.write("edge/comp", pa.table({
            "a": [1, 1 + 2**44, 7], "b": [5, 5, 2**20 - 1],
            "event_timestamp": pa.array([T - HOUR] * 3, TS), "v": [10, 20, 30]}),
            aliases=["prod"])
        plane.features.apply([Entity("a"), Entity("b"), FeatureView(
            "cv", ("a", "b"), (Feature("v", "int64"),), "datasets/edge/comp@prod")])
        rows = pa.table({"a": [1, 1 + 2**44, 7], "b": [5, 5, 2**20 - 1],
                         "event_timestamp": pa.array([T] * 3, TS)})
        assert plane.features.get_historical(rows, ["cv:v"])["v"].to_pylist() == [10, 20, 30]


def test_a_null_key_does_not_blur_ids_beyond_float_precision(tmp_path: Path) -> None:
    with dataplane.connect(plane_config(tmp_path, adapter="native")) as plane:
        plane.datasets.write("edge/big", pa.table({
            "a": [2**53, 2**53 + 1], "event_timestamp": pa.array([T - HOUR] * 2, TS),
            "v": [0, 1]}), aliases=["prod"])
        plane.features.apply([Entity("a"), FeatureView(
            "bv", ("a",), (Feature("v", "int64"),), "datasets/edge/big@prod")])
        rows = pa.table({"a": pa.array([2**53, None, 2**53 + 1], pa.int64()),
                         "event_timestamp": pa.array([T] * 3, TS)})
        assert plane.features.get_historical(rows, ["bv:v"])["v"].to_pylist() == [0, None, 1]


def test_a_feature_named_like_a_join_key_is_refused_online(tmp_path: Path) -> None:
    with dataplane.connect(plane_config(tmp_path, adapter="native")) as plane:
        plane.datasets.write("edge/users", pa.table({
            "user_id": [2], "event_timestamp": pa.array([T - HOUR], TS), "driver_id": [200]}),
            aliases=["prod"])
        plane.datasets.write("edge/drivers", pa.table({
            "driver_id": [1], "event_timestamp": pa.array([T - HOUR], TS), "trips": [1]}),
            aliases=["prod"])
        plane.features.apply([
            Entity("user_id"), Entity("driver_id"),
            FeatureView("u", ("user_id",), (Feature("driver_id", "int64"),),
                        "datasets/edge/users@prod"),
            FeatureView("d", ("driver_id",), (Feature("trips", "int64"),),
                        "datasets/edge/drivers@prod")])
        with pytest.raises(InvalidEntityKeyError, match="driver_id"):
            plane.features.get_online(["d:trips", "u:driver_id"],
                                      {"driver_id": [1], "user_id": [2]})


@pytest.mark.parametrize("adapter", ["native", "feast"])
def test_a_view_without_a_value_nulls_only_its_own_columns(tmp_path: Path, adapter: str
                                                            ) -> None:
    """Two views in one historical request; driver 2's value in ``a`` is past its TTL:
    only ``a``'s column is null for it, ``b`` still answers."""
    with dataplane.connect(plane_config(tmp_path, adapter=adapter, project="edge")) as plane:
        for name, column in (("a", "trips"), ("b", "rides")):
            plane.datasets.write(f"edge/{name}", pa.table({
                "driver_id": [1, 2], "event_timestamp": pa.array([T - HOUR, T - 5 * HOUR], TS),
                column: [1, 2]}), aliases=["prod"])
        plane.features.apply([
            Entity("driver_id"),
            FeatureView("a", ("driver_id",), (Feature("trips", "int64"),),
                        "datasets/edge/a@prod", ttl=2 * HOUR),
            FeatureView("b", ("driver_id",), (Feature("rides", "int64"),),
                        "datasets/edge/b@prod")])
        rows = pa.table({"driver_id": [1, 2], "event_timestamp": pa.array([T] * 2, TS)})
        got = plane.features.get_historical(rows, ["a:trips", "b:rides"])
        assert got["trips"].to_pylist() == [1, None]
        assert got["rides"].to_pylist() == [1, 2]


def test_offline_only_views_refuse_push_and_materialize(tmp_path: Path) -> None:
    with dataplane.connect(plane_config(tmp_path, adapter="native")) as plane:
        plane.datasets.write("edge/off", pa.table({
            "driver_id": [1], "event_timestamp": pa.array([T - HOUR], TS), "trips": [1]}),
            aliases=["prod"])
        plane.features.apply([Entity("driver_id"), FeatureView(
            "off", ("driver_id",), (Feature("trips", "int64"),), "datasets/edge/off@prod",
            online=False)])
        rows = [{"driver_id": 1, "event_timestamp": T, "trips": 2}]
        for call in (lambda: plane.features.push("off", rows),
                     lambda: plane.features.materialize(T - 2 * HOUR, T, views=["off"])):
            with pytest.raises(UnknownFeatureError, match="offline only"):
                call()
        plane.features.materialize(T - 2 * HOUR, T)  # all views: the offline one is skipped
