"""Inputs found in review to break one adapter but not the other: a feature asked for twice,
an integer key beyond int64, entity rows with a null key or timestamp, and pushes of no
rows or of an all-null feature column. Both adapters must answer alike."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from feature_support import plane_config

import dataplane
from dataplane import DataPlane
from dataplane.errors import InvalidEntityKeyError, NotFoundError, SchemaMismatchError
from dataplane.features import Entity, Feature, FeatureView

HOUR = timedelta(hours=1)
TS = pa.timestamp("us", tz="UTC")


@pytest.fixture(params=["native", "feast"])
def plane(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DataPlane]:
    with dataplane.connect(plane_config(tmp_path, adapter=request.param,
                                        project=f"review_{request.param}")) as plane:
        yield plane


@pytest.fixture
def t(plane: DataPlane) -> datetime:
    t = datetime.now(UTC).replace(microsecond=0)
    plane.datasets.write("review/s", pa.table({
        "driver_id": [1, 1, 2], "event_timestamp": pa.array([t - 3 * HOUR, t - HOUR,
                                                             t - 2 * HOUR], TS),
        "v": [10, 11, 20], "name": ["a", "b", "c"]}), aliases=["prod"])
    plane.features.apply([Entity("driver", join_key="driver_id"), FeatureView(
        "s", ("driver",), (Feature("v", "int64"), Feature("name", "string")),
        "datasets/review/s@prod")])
    plane.features.materialize(t - timedelta(days=1), t)
    return t


def test_a_feature_asked_for_twice_is_read_once(plane: DataPlane, t: datetime) -> None:
    assert plane.features.get_online(["s:v", "s:v", "s"], [{"driver_id": 1}]) == {
        "driver_id": [1], "v": [11], "name": ["b"]}


def test_an_integer_key_beyond_int64_is_refused(plane: DataPlane, t: datetime) -> None:
    with pytest.raises(InvalidEntityKeyError, match="driver_id"):
        plane.features.get_online(["s:v"], [{"driver_id": 2**63}])


def test_entity_rows_with_a_null_key_or_time_get_nulls(plane: DataPlane, t: datetime) -> None:
    rows = pa.table({"driver_id": pa.array([1, None, 2, 1], pa.int32()),
                     "event_timestamp": pa.array([t, t, t, None], TS), "label": [0, 1, 2, 3]})
    got = plane.features.get_historical(rows, ["s:v", "s:name"])
    assert got.column_names == ["driver_id", "event_timestamp", "label", "v", "name"]
    assert got.column("driver_id").type == pa.int32()  # the caller's columns, as given
    assert got.column("v").to_pylist() == [11, None, 20, None]
    assert got.column("name").to_pylist() == ["b", None, "c", None]
    nothing = plane.features.get_historical(rows.slice(1, 1), ["s:v"])
    assert nothing.column("v").to_pylist() == [None]
    assert nothing.column("label").to_pylist() == [1]
    empty = plane.features.get_historical(rows.slice(0, 0), ["s:v"])
    assert empty.num_rows == 0 and empty.schema.field("v").type == pa.int64()


def test_a_timestamp_column_that_is_not_one_is_named(plane: DataPlane, t: datetime) -> None:
    rows = pa.table({"driver_id": [1], "event_timestamp": [t.isoformat()]})
    with pytest.raises(InvalidEntityKeyError, match="'event_timestamp' column is string"):
        plane.features.get_historical(rows, ["s:v"])


def test_pushes_of_no_rows_or_all_null_features(plane: DataPlane, t: datetime) -> None:
    plane.features.push("s", [])
    plane.features.push("s", pa.table({"driver_id": pa.array([], pa.int64()),
                                       "event_timestamp": pa.array([], TS),
                                       "v": pa.array([], pa.int64()),
                                       "name": pa.array([], pa.string())}))
    plane.features.push("s", [{"driver_id": 2, "event_timestamp": t, "v": None, "name": None}])
    assert plane.features.get_online(["s:v", "s:name"], {"driver_id": [1, 2]}) == {
        "driver_id": [1, 2], "v": [11, None], "name": ["b", None]}
    with pytest.raises(SchemaMismatchError, match="pushed table has no column 'v'"):
        plane.features.push("s", [{"driver_id": 2, "event_timestamp": t}])


def test_a_source_column_of_nulls_only_serves_nulls(plane: DataPlane, t: datetime) -> None:
    plane.datasets.write("review/n", pa.table({
        "driver_id": [1], "event_timestamp": pa.array([t - HOUR], TS), "v": [1],
        "seen": pa.nulls(1)}), aliases=["prod"])
    plane.features.apply([Entity("driver", join_key="driver_id"), FeatureView(
        "n", ("driver",), (Feature("v", "int64"), Feature("seen", "timestamp")),
        "datasets/review/n@prod")])
    plane.features.materialize(t - timedelta(days=1), t)
    assert plane.features.get_online("n", [{"driver_id": 1}]) == {
        "driver_id": [1], "v": [1], "seen": [None]}
    rows = pa.table({"driver_id": [1], "event_timestamp": pa.array([t], TS)})
    history = plane.features.get_historical(rows, "n")
    assert history.column("seen").to_pylist() == [None]
    assert history.schema.field("seen").type == TS


def test_views_with_different_keys_in_one_historical_request(plane: DataPlane, t: datetime
                                                             ) -> None:
    plane.datasets.write("review/pair", pa.table({
        "rider": ["r1", "r2"], "driver_id": [1, 1],
        "event_timestamp": pa.array([t - HOUR] * 2, TS), "fare": [7.5, 9.0]}),
        aliases=["prod"])
    plane.features.apply([
        Entity("driver", join_key="driver_id"), Entity("rider", dtype="string"),
        FeatureView("s", ("driver",), (Feature("v", "int64"), Feature("name", "string")),
                    "datasets/review/s@prod"),
        FeatureView("pair", ("rider", "driver"), (Feature("fare", "float64"),),
                    "datasets/review/pair@prod")])
    # rows 0 and 1 share driver and time and differ only in the other view's key
    rows = pa.table({"driver_id": [1, 1, 2], "rider": ["r1", "r2", "r1"],
                     "event_timestamp": pa.array([t, t, t], TS)})
    got = plane.features.get_historical(rows, ["s:v", "pair:fare"])
    assert got.column("v").to_pylist() == [11, 11, 20]
    assert got.column("fare").to_pylist() == [7.5, 9.0, None]


def test_an_entity_key_change_rechecks_and_resets_its_views(plane: DataPlane, t: datetime
                                                            ) -> None:
    view = plane.features.definitions.view("s")
    assert view is not None
    with pytest.raises(SchemaMismatchError, match=r"'driver_id'.*cannot hold string"):
        plane.features.apply([Entity("driver", join_key="driver_id", dtype="string"), view])
    with pytest.raises(SchemaMismatchError, match="no column 'rider'"):
        plane.features.apply([Entity("driver", join_key="rider"), view])
    assert plane.features.definitions.entities[0].join_key == "driver_id"
    plane.datasets.write("review/s", pa.table({  # the same rows, keyed by another column
        "driver_id": [1, 1, 2], "other": [2, 2, 1],
        "event_timestamp": pa.array([t - 3 * HOUR, t - HOUR, t - 2 * HOUR], TS),
        "v": [10, 11, 20], "name": ["a", "b", "c"]}), aliases=["prod"])
    plan = plane.features.apply([Entity("driver", join_key="other"), view])
    assert plan.of("update", "view") == ["s"] and all(c.resets_online for c in plan
                                                      if c.kind == "view")
    assert plane.features.get_online(["s:v"], {"other": [1, 2]})["v"] == [None, None]
    plane.features.materialize(t - timedelta(days=1), t)
    assert plane.features.get_online(["s:v"], {"other": [1, 2]})["v"] == [20, 11]


def test_a_missing_source_dataset_names_the_view(plane: DataPlane) -> None:
    view = FeatureView("ghostly", ("driver",), (Feature("v", "int64"),),
                       "datasets/review/none@prod")
    with pytest.raises(NotFoundError, match="feature view ghostly: source datasets/review/"
                                            "none@prod"):
        plane.features.plan([Entity("driver", join_key="driver_id"), view])
