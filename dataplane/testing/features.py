"""The feature conformance suite: the behaviour every feature adapter keeps.

An adapter is "done" when it passes this suite. Subclass :class:`FeatureStoreConformance`
and give it a ``plane_factory`` fixture: a callable that takes a fresh project name and
returns a connected :class:`~dataplane.DataPlane` whose ``[features]`` section selects the
adapter (with that ``project``, so tests sharing an online server never meet)::

    class TestMyAdapter(FeatureStoreConformance):
        @pytest.fixture
        def plane_factory(self, tmp_path):
            def make(project):
                return dataplane.connect({..., "features": {"adapter": "mine",
                                                             "project": project}})
            return make

Every test uses the same definitions and data (:func:`scenario`) and checks exact
expected values, so two adapters that pass give identical answers: nulls, missing
entities, TTL expiry online and offline, late data, duplicate timestamps (the later
created timestamp wins, then the row later in the source), point-in-time correctness,
push, incremental materialization, apply idempotence with a plan, reads during a
materialization, and the errors bad input gets.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest

from ..errors import (
    InvalidEntityKeyError,
    SchemaMismatchError,
    UnknownFeatureError,
)
from ..features import Entity, Feature, FeatureService, FeatureView

if TYPE_CHECKING:
    from ..facade import DataPlane

__all__ = ["FEATURES", "FeatureStoreConformance", "scenario", "scenario_definitions"]

FEATURES = ["driver_stats:trips", "driver_stats:rating", "driver_stats:city",
            "driver_stats:active"]
HOUR = timedelta(hours=1)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def scenario_definitions(source: str = "datasets/conf/driver_stats@prod",
                         ttl: timedelta | None = timedelta(days=1)) -> list[Any]:
    """One entity, one view (TTL one day, a created-timestamp column), one service."""
    return [
        Entity("driver", join_key="driver_id", dtype="int64"),
        FeatureView("driver_stats", entities=("driver",), source=source, ttl=ttl,
                    created_timestamp_field="created",
                    features=(Feature("trips", "int64"), Feature("rating", "float64"),
                              Feature("city", "string"), Feature("active", "bool"))),
        FeatureService("driver_model", features=("driver_stats:trips", "driver_stats:city")),
    ]


def scenario(t: datetime) -> pa.Table:
    """The source rows, relative to ``t`` (a recent time):

    - driver 1: three rows at t-3h, t-2h, t-1h (trips 1, 2, 3);
    - driver 2: nulls (rating and city are null);
    - driver 3: two rows at the same event time, the later *created* one (trips 7) wins
      although it comes first in the source;
    - driver 4: two rows identical in event and created time: the later row (9) wins;
    - driver 5: one row three days old: expired online (TTL one day);
    - driver 6: one row in the future (t+5h): not yet visible.
    """
    rows = [
        (1, t - 3 * HOUR, t - 3 * HOUR, 1, 0.1, "a", True),
        (1, t - 2 * HOUR, t - 2 * HOUR, 2, 0.2, "b", False),
        (1, t - HOUR, t - HOUR, 3, 0.3, "c", True),
        (2, t - 2 * HOUR, t - 2 * HOUR, 5, None, None, True),
        (3, t - 2 * HOUR, t - HOUR, 7, 0.7, "late-created", True),
        (3, t - 2 * HOUR, t - 2 * HOUR, 6, 0.6, "early-created", False),
        (4, t - 2 * HOUR, t - 2 * HOUR, 8, 0.8, "first", False),
        (4, t - 2 * HOUR, t - 2 * HOUR, 9, 0.9, "second", True),
        (5, t - timedelta(days=3), t - timedelta(days=3), 50, 5.0, "old", True),
        (6, t + 5 * HOUR, t + 5 * HOUR, 60, 6.0, "future", True),
    ]
    names = ["driver_id", "event_timestamp", "created", "trips", "rating", "city", "active"]
    columns = list(zip(*rows, strict=True))
    ts = pa.timestamp("us", tz="UTC")
    types = [pa.int64(), ts, ts, pa.int64(), pa.float64(), pa.string(), pa.bool_()]
    return pa.table([pa.array(c, k) for c, k in zip(columns, types, strict=True)], names=names)


class FeatureStoreConformance:
    """Inherit this class and provide a ``plane_factory`` fixture (see the module doc)."""

    reader_threads: int = 2
    entities_during_materialize: int = 2000

    @pytest.fixture
    def plane(self, plane_factory: Callable[[str], DataPlane]) -> Iterator[DataPlane]:
        plane = plane_factory(f"conf_{uuid.uuid4().hex[:10]}")
        try:
            yield plane
            plane.features.apply([])  # removes the test's views and their online values
        finally:
            plane.close()

    @pytest.fixture
    def applied(self, plane: DataPlane) -> tuple[DataPlane, datetime]:
        """The scenario written as dataset ``conf/driver_stats@prod`` and applied."""
        t = _now()
        plane.datasets.write("conf/driver_stats", scenario(t), aliases=["prod"])
        plane.features.apply(scenario_definitions())
        return plane, t

    # ------------------------------------------------------------ apply / plan
    def test_apply_is_idempotent_and_plans_changes(self, plane: DataPlane) -> None:
        plane.datasets.write("conf/driver_stats", scenario(_now()), aliases=["prod"])
        definitions = scenario_definitions()
        plan = plane.features.plan(definitions)
        assert plan.of("add", "entity") == ["driver"] and plan.of("add", "view") == [
            "driver_stats"] and plan.of("add", "service") == ["driver_model"]
        assert plane.features.definitions.views == ()  # plan changed nothing
        assert plane.features.apply(definitions).summary() == "3 to add, 0 to update, " \
                                                               "0 to delete"
        again = plane.features.apply(definitions)
        assert not again and "no changes" in str(again)
        changed = scenario_definitions(ttl=timedelta(hours=12))[:2]  # new TTL, no service
        plan = plane.features.apply(changed)
        assert plan.of("update", "view") == ["driver_stats"]
        assert plan.of("delete", "service") == ["driver_model"]
        assert "ttl" in str(plan)
        assert not plane.features.apply(changed)

    # ----------------------------------------------------------------- online
    def test_deleting_or_reshaping_a_view_drops_its_online_values(
            self, applied: tuple[DataPlane, datetime]) -> None:
        plane, t = applied
        rows = [{"driver_id": 1}]
        assert plane.features.get_online(["driver_stats:trips"], rows)["trips"] == [None]
        plane.features.materialize(t - timedelta(days=7), t)
        assert plane.features.get_online(["driver_stats:trips"], rows)["trips"] == [3]
        definitions = scenario_definitions()
        view = definitions[1]
        narrower = FeatureView(view.name, view.entities, view.features[:3], view.source,
                               created_timestamp_field="created", ttl=view.ttl)
        plan = plane.features.apply([definitions[0], narrower])  # one feature fewer
        assert [c.resets_online for c in plan if c.kind == "view"] == [True]
        assert plane.features.get_online(["driver_stats:trips"], rows)["trips"] == [None]
        plane.features.materialize(t - timedelta(days=7), t)
        assert plane.features.get_online(["driver_stats:trips"], rows)["trips"] == [3]
        plane.features.apply(definitions[:1])  # the view is gone
        with pytest.raises(UnknownFeatureError, match="driver_stats"):
            plane.features.get_online(["driver_stats:trips"], rows)
        plane.features.apply(definitions)
        assert plane.features.get_online(["driver_stats:trips"], rows)["trips"] == [None]

    def test_online_after_materialize(self, applied: tuple[DataPlane, datetime]) -> None:
        plane, t = applied
        plane.features.materialize(t - timedelta(days=7), t)
        rows = [{"driver_id": i} for i in (1, 2, 3, 4, 5, 6, 99)]
        got = plane.features.get_online(FEATURES, rows)
        assert got == {
            "driver_id": [1, 2, 3, 4, 5, 6, 99],
            "trips": [3, 5, 7, 9, None, None, None],
            "rating": [0.3, None, 0.7, 0.9, None, None, None],
            "city": ["c", None, "late-created", "second", None, None, None],
            "active": [True, True, True, True, None, None, None],
        }

    def test_online_by_service_and_full_names(self, applied: tuple[DataPlane, datetime]
                                              ) -> None:
        plane, t = applied
        plane.features.materialize(t - timedelta(days=7), t)
        assert plane.features.get_online("driver_model", {"driver_id": [1, 99]}) == {
            "driver_id": [1, 99], "trips": [3, None], "city": ["c", None]}
        full = plane.features.get_online(["driver_stats:trips"], [{"driver_id": 4}],
                                         full_feature_names=True)
        assert full == {"driver_id": [4], "driver_stats__trips": [9]}
        empty: dict[str, list[Any]] = {"driver_id": [], "trips": [], "city": []}
        assert plane.features.get_online("driver_model", []) == empty
        assert plane.features.get_online("driver_model", {"driver_id": []}) == empty
        none = pa.table({"driver_id": pa.array([], pa.int64()),
                         "event_timestamp": pa.array([], pa.timestamp("us", tz="UTC"))})
        history = plane.features.get_historical(none, "driver_model")
        assert history.num_rows == 0 and history.column_names[-2:] == ["trips", "city"]

    def test_materialize_window_is_inclusive_and_point_in_time(
            self, applied: tuple[DataPlane, datetime]) -> None:
        plane, t = applied
        plane.features.materialize(t - 3 * HOUR, t - 2 * HOUR)  # both ends inclusive
        got = plane.features.get_online(["driver_stats:trips"], [{"driver_id": 1}])
        assert got["trips"] == [2]

    def test_an_earlier_window_never_moves_values_back(
            self, applied: tuple[DataPlane, datetime]) -> None:
        plane, t = applied
        plane.features.materialize(t - HOUR, t)
        plane.features.materialize(t - 3 * HOUR, t - 2 * HOUR)  # older rows of driver 1
        rows = {"driver_id": [1, 2]}
        assert plane.features.get_online(["driver_stats:trips", "driver_stats:city"],
                                         rows) == {"driver_id": [1, 2], "trips": [3, 5],
                                                   "city": ["c", None]}

    def test_every_dtype_and_string_keys_round_trip(self, plane: DataPlane) -> None:
        t, ts = _now(), pa.timestamp("us", tz="UTC")
        seen = t - timedelta(days=1)
        plane.datasets.write("conf/kinds", pa.table({
            "k": ["a", "b"], "event_timestamp": pa.array([t - HOUR] * 2, ts),
            "seen": pa.array([seen, None], ts), "blob": pa.array([b"\x00\x01", None]),
            "small": pa.array([1.5, None], pa.float32()), "n": pa.array([7, None], pa.int32()),
        }), aliases=["prod"])
        plane.features.apply([Entity("k", dtype="string"), FeatureView(
            "kinds", ("k",), (Feature("seen", "timestamp"), Feature("blob", "bytes"),
                              Feature("small", "float32"), Feature("n", "int32")),
            "datasets/conf/kinds@prod")])
        plane.features.materialize(t - timedelta(days=2), t)
        refs = ["kinds:seen", "kinds:blob", "kinds:small", "kinds:n"]
        assert plane.features.get_online(refs, {"k": ["a", "b", "zz"]}) == {
            "k": ["a", "b", "zz"], "seen": [seen, None, None],
            "blob": [b"\x00\x01", None, None], "small": [1.5, None, None],
            "n": [7, None, None]}
        history = plane.features.get_historical(
            pa.table({"k": ["a", "b"], "event_timestamp": pa.array([t, t], ts)}), refs)
        assert history.schema.types[2:] == [ts, pa.binary(), pa.float32(), pa.int32()]
        assert history.slice(0, 1).to_pylist()[0] | {"event_timestamp": None} == {
            "k": "a", "event_timestamp": None, "seen": seen, "blob": b"\x00\x01",
            "small": 1.5, "n": 7}

    # ------------------------------------------------------------- historical
    def test_historical_point_in_time(self, applied: tuple[DataPlane, datetime]) -> None:
        plane, t = applied
        entity_rows = [
            (1, t - 150 * timedelta(minutes=1)),   # between t-3h and t-2h: trips 1
            (1, t - 2 * HOUR),                     # exactly at a row: that row (2)
            (1, t - 4 * HOUR),                     # before every row: null
            (1, t),                                # latest: 3
            (2, t),                                # nulls stay nulls
            (3, t),                                # tie broken by created: 7
            (3, t - 90 * timedelta(minutes=1)),    # 7 not yet created then: 6
            (4, t),                                # full tie: the later row, 9
            (5, t - timedelta(days=3) + HOUR),     # within the TTL: 50
            (5, t),                                # older than the TTL: null
            (6, t),                                # only a future row: null
            (99, t),                               # unknown entity: null
            (1, t - 150 * timedelta(minutes=1)),   # a repeated row gets values too
        ]
        entities = pa.table({"driver_id": [r[0] for r in entity_rows],
                             "event_timestamp": pa.array([r[1] for r in entity_rows],
                                                         pa.timestamp("us", tz="UTC")),
                             "label": list(range(len(entity_rows)))})
        got = plane.features.get_historical(entities, ["driver_stats:trips",
                                                       "driver_stats:city"])
        assert got.column_names == ["driver_id", "event_timestamp", "label", "trips", "city"]
        assert got.column("label").to_pylist() == list(range(len(entity_rows)))
        expected = [1, 2, None, 3, 5, 7, 6, 9, 50, None, None, None, 1]
        assert got.column("trips").to_pylist() == expected
        assert got.column("city").to_pylist()[4] is None
        assert got.schema.field("trips").type == pa.int64()

    # ------------------------------------------------------------ late / push
    def test_late_data_and_incremental(self, applied: tuple[DataPlane, datetime]) -> None:
        plane, t = applied
        plane.features.materialize(t - timedelta(days=7), t)
        late = [
            *scenario(t).to_pylist(),
            {"driver_id": 1, "event_timestamp": t - 30 * timedelta(minutes=1),
             "created": t + HOUR, "trips": 4, "rating": 0.4, "city": "late", "active": True},
            {"driver_id": 2, "event_timestamp": t + HOUR, "created": t + HOUR, "trips": 11,
             "rating": 1.1, "city": "new", "active": False},
        ]
        table = pa.Table.from_pylist(late, scenario(t).schema)
        plane.datasets.write("conf/driver_stats", table, aliases=["prod"])
        plane.features.materialize_incremental(t + 2 * HOUR)
        got = plane.features.get_online(["driver_stats:trips", "driver_stats:city"],
                                        [{"driver_id": 1}, {"driver_id": 2}])
        # the late row's event time is before the last materialization's end: not online
        assert got == {"driver_id": [1, 2], "trips": [3, 11], "city": ["c", "new"]}
        history = plane.features.get_historical(
            pa.table({"driver_id": [1], "event_timestamp": pa.array(
                [t + 3 * HOUR], pa.timestamp("us", tz="UTC"))}), ["driver_stats:trips"])
        assert history.column("trips").to_pylist() == [4]  # offline sees the late row

    def test_first_incremental_starts_at_now_minus_ttl(
            self, applied: tuple[DataPlane, datetime]) -> None:
        plane, t = applied
        plane.features.materialize_incremental(t)
        got = plane.features.get_online(["driver_stats:trips"],
                                         [{"driver_id": 1}, {"driver_id": 5}])
        assert got["trips"] == [3, None]  # driver 5's row is older than now - ttl

    def test_push_writes_fresh_values_and_never_older(
            self, applied: tuple[DataPlane, datetime]) -> None:
        plane, t = applied
        plane.features.materialize(t - timedelta(days=7), t)
        fresh = {"driver_id": [1, 7], "event_timestamp": [t + HOUR, t], "created": [t, t],
                 "trips": [100, 70], "rating": [1.0, 7.0], "city": ["pushed", "new"],
                 "active": [False, True]}
        plane.features.push("driver_stats", fresh)
        features = ["driver_stats:trips", "driver_stats:city"]
        rows = [{"driver_id": 1}, {"driver_id": 7}]
        assert plane.features.get_online(features, rows) == {
            "driver_id": [1, 7], "trips": [100, 70], "city": ["pushed", "new"]}
        stale = {**fresh, "event_timestamp": [t - 10 * HOUR, t - 10 * HOUR],
                 "trips": [-1, -1], "city": ["stale", "stale"]}
        plane.features.push("driver_stats", stale)
        assert plane.features.get_online(features, rows)["trips"] == [100, 70]

    # -------------------------------------------------- serving while writing
    def test_reads_during_materialization_see_whole_values(self, plane: DataPlane) -> None:
        n, t = self.entities_during_materialize, _now()

        def version(shift: int) -> pa.Table:
            ids = list(range(n))
            return pa.table({"driver_id": ids,
                             "event_timestamp": pa.array([t - HOUR * (2 - shift)] * n,
                                                         pa.timestamp("us", tz="UTC")),
                             "a": [i + shift * 100_000 for i in ids],
                             "b": [2 * (i + shift * 100_000) for i in ids]})

        plane.datasets.write("conf/pairs", version(0), aliases=["prod"])
        plane.features.apply([
            Entity("driver", join_key="driver_id"),
            FeatureView("pairs", ("driver",), (Feature("a", "int64"), Feature("b", "int64")),
                        "datasets/conf/pairs@prod")])
        plane.features.materialize(t - timedelta(days=1), t)
        plane.datasets.write("conf/pairs", version(1), aliases=["prod"])
        errors: list[BaseException] = []
        done = threading.Event()

        def reader() -> None:
            try:
                while not done.is_set():
                    got = plane.features.get_online(["pairs:a", "pairs:b"],
                                                    {"driver_id": list(range(0, n, 7))})
                    for a, b in zip(got["a"], got["b"], strict=True):
                        assert a is not None and b == 2 * a, (a, b)  # never half updated
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=reader) for _ in range(self.reader_threads)]
        for thread in threads:
            thread.start()
        try:
            plane.features.materialize(t - timedelta(days=1), t)
        finally:
            done.set()
            for thread in threads:
                thread.join()
        assert not errors, errors[0]
        final = plane.features.get_online(["pairs:a"], {"driver_id": [0, n - 1]})
        assert final["a"] == [100_000, n - 1 + 100_000]

    # -------------------------------------------------------------- bad input
    def test_unknown_feature_view_and_service_are_named(
            self, applied: tuple[DataPlane, datetime]) -> None:
        plane, _ = applied
        rows = [{"driver_id": 1}]
        with pytest.raises(UnknownFeatureError, match="driver_stats:nope"):
            plane.features.get_online(["driver_stats:nope"], rows)
        with pytest.raises(UnknownFeatureError, match="ghost"):
            plane.features.get_online(["ghost:trips"], rows)
        with pytest.raises(UnknownFeatureError, match="no_such_service"):
            plane.features.get_online("no_such_service", rows)

    def test_bad_entity_keys_are_named(self, applied: tuple[DataPlane, datetime]) -> None:
        plane, t = applied
        with pytest.raises(InvalidEntityKeyError, match="'driver'"):
            plane.features.get_online(FEATURES, [{"driver": 1}])
        with pytest.raises(InvalidEntityKeyError, match="driver_id"):
            plane.features.get_online(FEATURES, [{"driver_id": "1"}])
        with pytest.raises(InvalidEntityKeyError, match="driver_id"):
            plane.features.get_online(FEATURES, {"driver_id": [True]})
        entities = pa.table({"driver_id": ["1"], "event_timestamp": [t]})
        with pytest.raises(InvalidEntityKeyError, match="driver_id"):
            plane.features.get_historical(entities, FEATURES)

    def test_view_whose_source_lacks_a_feature_is_refused(self, plane: DataPlane) -> None:
        plane.datasets.write("conf/driver_stats", scenario(_now()).drop(["rating"]),
                             aliases=["prod"])
        with pytest.raises(SchemaMismatchError, match="'rating'") as error:
            plane.features.apply(scenario_definitions())
        assert "driver_stats" in str(error.value)
        assert plane.features.definitions.views == ()
