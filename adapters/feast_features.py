"""The Feast feature adapter: dataplane definitions translated into Feast objects.

Feast is imported here only, when ``[features] adapter = "feast"`` is first used.

- repository: ``<features dir>/feast``; registry ``[features] registry`` (a file path or
  an SQL URL; default ``<repo>/registry.db``) with ``serve_features_while_materializing``
  on, so reads keep answering while a materialization runs (Feast #6780);
- offline store ``file``; online store ``sqlite`` (default ``<repo>/online.db``) or
  ``redis`` from ``[features] online_url``;
- every view reads a *staged* Parquet copy of its canonical source
  (:mod:`dataplane.features.sources`), refreshed when the source's identity changes (an
  alias moved, a file changed). Staging is what lets Feast read dataplane datasets and
  gives it the native adapter's tie-break (see :func:`spread_ties`);
- every view gets a ``<view>__push`` PushSource, so ``push`` works on every view;
- writes (apply, materialize, push) go through one ``FeatureStore`` and reads through
  another: Feast's SQLite online store keeps one connection per store, and a reader on
  the writer's connection sees a batch before it commits (half an entity: some features
  new, some old). On its own connection a reader sees only committed batches.

Where Feast's own semantics differ from the feature port's, this adapter closes the gap:
online values older than the TTL are returned as ``None`` (Feast serves them), pushes
older than the stored value are dropped (Feast's SQLite store overwrites), and entity rows
repeated with the same timestamp all get their values (Feast collapses them).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import tempfile
import time
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dataplane.errors import BackendError, ConfigError
from dataplane.features.definitions import DTYPES, Definitions, FeatureView
from dataplane.features.plan import Plan
from dataplane.features.port import FeatureBackend, FeatureContext
from dataplane.features.requests import FeatureRequest, ViewRequest
from dataplane.features.sources import last_of_groups, resolve_source

__all__ = ["FeastFeatureBackend", "feast_repo_config"]

_ROW = "__dp_row"


class _QuietServingNote(logging.Filter):
    """Feast warns that ``serve_features_while_materializing`` "typically has no effect"
    on a file registry; in this process it does (the registry object carries the flag),
    so the note only misleads."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "serve_features_while_materializing" not in record.getMessage()


_feast_config_log = logging.getLogger("feast.repo_config")
if not any(isinstance(f, _QuietServingNote) for f in _feast_config_log.filters):
    _feast_config_log.addFilter(_QuietServingNote())


def feast_repo_config(context: FeatureContext) -> Any:
    """The Feast ``RepoConfig`` this adapter uses (public so tests and benchmarks can open
    the very same Feast repository directly)."""
    from feast import RepoConfig
    from feast.infra.registry.sql import SqlRegistryConfig
    from feast.repo_config import RegistryConfig

    settings = context.settings
    repo = settings.dir / "feast"
    repo.mkdir(parents=True, exist_ok=True)
    registry = settings.registry or str(repo / "registry.db")
    kind = SqlRegistryConfig if "://" in registry else RegistryConfig
    return RepoConfig(
        project=settings.project, provider="local", repo_path=repo,
        registry=kind(registry_type="sql" if "://" in registry else "file", path=registry,
                      cache_ttl_seconds=60, serve_features_while_materializing=True),
        offline_store={"type": "file"}, online_store=_online_config(settings.online_url, repo),
        entity_key_serialization_version=3)


def _online_config(url: str | None, repo: Path) -> dict[str, Any]:
    if url is None:
        return {"type": "sqlite", "path": str(repo / "online.db")}
    if url.startswith("sqlite:///"):
        return {"type": "sqlite", "path": url.removeprefix("sqlite:///")}
    if url.startswith("unix://"):
        raise ConfigError("Feast's redis online store needs host:port, not a unix socket",
                          key="features.online_url")
    rest = url.split("://", 1)[1]
    hostport, _, db = rest.partition("/")
    if "@" in hostport:
        password, _, hostport = hostport.rpartition("@")
        hostport += f",password={password.split(':')[-1]}"
    ssl = ",ssl=true" if url.startswith("rediss://") else ""
    return {"type": "redis", "connection_string": f"{hostport},db={db or 0}{ssl}"}


def _feast_type(dtype: str) -> Any:
    from feast import types

    return {"int64": types.Int64, "int32": types.Int32, "float64": types.Float64,
            "float32": types.Float32, "string": types.String, "bool": types.Bool,
            "bytes": types.Bytes, "timestamp": types.UnixTimestamp}[dtype]


class FeastFeatureBackend(FeatureBackend):
    """The feature port over a Feast ``FeatureStore`` (see the module docstring)."""

    name = "feast"

    def __init__(self, context: FeatureContext):
        super().__init__(context)
        from feast import FeatureStore

        self.repo = context.settings.dir / "feast"
        config = feast_repo_config(context)
        self.store: Any = FeatureStore(config=config)  # writes
        self.reader: Any = FeatureStore(config=config)  # reads, on their own connection
        self._guard_sqlite_online(context.definitions)  # repositories applied before

    # ------------------------------------------------------------------ apply
    def apply(self, plan: Plan) -> None:
        wanted = plan.definitions
        resets = [c.name for c in plan if c.resets_online and c.action == "update"]
        deletes = [self._existing(c.kind, c.name) for c in plan if c.action == "delete"]
        deletes += [self._existing("view", name) for name in resets]
        if any(d is not None for d in deletes):
            self.store.apply([], objects_to_delete=[d for d in deletes if d is not None],
                             partial=False)
        for view in wanted.views:
            self._stage(view, wanted)
        self.store.apply(self._objects(wanted))
        self._guard_sqlite_online(wanted)
        self.reader.refresh_registry()

    def _guard_sqlite_online(self, definitions: Definitions) -> None:
        """Make Feast's SQLite online tables refuse writes older than what they hold.

        Feast's SQLite store upserts unconditionally, so materializing an earlier window
        after a later one moved entities back in time. A ``BEFORE UPDATE`` trigger that
        ``RAISE(IGNORE)``s an older ``event_ts`` skips just that row's update (all rows of
        an entity carry the same time, so the entity stays whole); an equal time still
        replaces, as on the native stores. Feast's Redis store checks times itself.
        """
        config = self.store.config
        if config.online_store.type != "sqlite":
            return
        tables = [f"{config.project}_{v.name}" for v in definitions.views if v.online]
        with closing(sqlite3.connect(config.online_store.path, timeout=60)) as conn, conn:
            present = {row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            for table in (t for t in tables if t in present):
                conn.execute(f'CREATE TRIGGER IF NOT EXISTS "{table}__dp_never_older" BEFORE '
                             f'UPDATE ON "{table}" WHEN NEW.event_ts < OLD.event_ts '
                             "BEGIN SELECT RAISE(IGNORE); END")

    def _existing(self, kind: str, name: str) -> Any:
        getter = {"entity": self.store.get_entity, "view": self.store.get_feature_view,
                  "service": self.store.get_feature_service}[kind]
        try:
            return getter(name)
        except Exception:  # Feast raises a different class per object kind
            return None

    def _objects(self, definitions: Definitions) -> list[Any]:
        from feast import Entity, FeatureService, ValueType

        entities = {e.name: Entity(name=e.name, join_keys=[e.join_key],
                                   value_type=ValueType.INT64 if e.dtype == "int64"
                                   else ValueType.STRING, description=e.description)
                    for e in definitions.entities}
        views = {v.name: self._view(v, entities) for v in definitions.views}
        services = [FeatureService(name=s.name, features=[_projection(views, ref)
                                                          for ref in s.features],
                                   description=s.description)
                    for s in definitions.services]
        return [*entities.values(), *views.values(), *services]

    def _view(self, view: FeatureView, entities: dict[str, Any]) -> Any:
        from feast import FeatureView as FeastView
        from feast import Field, FileSource, PushSource

        batch = FileSource(name=f"{view.name}__source", path=str(self._staged(view)),
                           timestamp_field=view.timestamp_field,
                           created_timestamp_column=view.created_timestamp_field or "")
        return FeastView(
            name=view.name, entities=[entities[e] for e in view.entities],
            ttl=view.ttl or timedelta(0), online=view.online, description=view.description,
            schema=[Field(name=f.name, dtype=_feast_type(f.dtype)) for f in view.features],
            source=PushSource(name=f"{view.name}__push", batch_source=batch))

    # ---------------------------------------------------------------- staging
    def _staged(self, view: FeatureView) -> Path:
        return self.repo / "sources" / f"{view.name}.parquet"

    def _stage(self, view: FeatureView, definitions: Definitions | None = None) -> None:
        """Write the view's canonical source where its FileSource points, unless the
        staged copy is already of this source identity and definition."""
        definitions = definitions or self.context.definitions
        ref = resolve_source(self.context.plane, view)
        own = next(v for v in definitions.to_dict()["views"] if v["name"] == view.name)
        stamp = json.dumps([ref.identity, own, definitions.join_keys(view)], sort_keys=True)
        path = self._staged(view)
        marker = path.with_suffix(".json")
        if path.exists() and marker.exists() and marker.read_text() == stamp:
            return
        from dataplane.features.sources import load_source

        table = load_source(self.context.plane, view, definitions, ref)
        keys = [key for key, _ in definitions.join_keys(view)]
        table = spread_ties(table, view.timestamp_field, keys)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{view.name}-", suffix=".tmp")
        os.close(fd)
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, path)  # Feast reads the old file or the new one, never half
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        marker.write_text(stamp)

    # ------------------------------------------------------------ materialize
    def materialize(self, views: list[FeatureView], start: datetime, end: datetime) -> None:
        for view in views:
            self._stage(view)
        self.store.materialize(start, end, feature_views=[v.name for v in views])
        self.reader.refresh_registry()

    def materialize_incremental(self, views: list[FeatureView], end: datetime) -> None:
        for view in views:
            self._stage(view)
        self.store.materialize_incremental(end, feature_views=[v.name for v in views])
        self.reader.refresh_registry()

    def push(self, view: FeatureView, rows: pa.Table) -> None:
        from feast.data_source import PushMode

        rows = self._not_older(view, rows)
        if not rows.num_rows:
            return
        if all(rows.column(name).null_count == rows.num_rows for name in view.feature_names):
            # Feast's write_to_online_store drops a batch whose features are all null
            # (it warns and returns); a push of nulls is a real update, so it goes in
            # through the same provider call Feast makes for any other batch
            fv = self.store.get_feature_view(view.name)
            self.store._get_provider().ingest_df(fv, rows.to_pandas())
            return
        self.store.push(f"{view.name}__push", rows.to_pandas(), to=PushMode.ONLINE)

    def _not_older(self, view: FeatureView, rows: pa.Table) -> pa.Table:
        """Drop rows older than what the online store holds (to the second)."""
        keys = [k for k, _ in self.context.definitions.join_keys(view)]
        entity_rows = rows.select(keys).to_pylist()
        first = view.features[0].name
        stored = self.store.get_online_features(
            features=[f"{view.name}:{first}"], entity_rows=entity_rows,
        ).to_dict(include_event_timestamps=True)[f"{first}__ts"]
        seconds = rows.column(view.timestamp_field).cast(pa.int64()).to_numpy() // 1_000_000
        return rows.filter(pa.array(seconds >= np.asarray(stored, dtype=np.int64)))

    # ------------------------------------------------------------------ reads
    def get_online(self, request: FeatureRequest, keys: dict[str, list[Any]]
                   ) -> dict[str, list[Any]]:
        names = list(keys)
        rows = [dict(zip(names, values, strict=True)) for values in zip(*keys.values(),
                                                                           strict=True)]
        ttl_views = [v for v in request.views if v.view.ttl is not None]
        full = request.columns != tuple(f for v in request.views for f in v.features)
        response = self.reader.get_online_features(features=list(request.refs),
                                                  entity_rows=rows, full_feature_names=full)
        data = response.to_dict(include_event_timestamps=bool(ttl_views))
        out = {column: data[column] for column in request.columns}
        if ttl_views:
            _expire(out, data, ttl_views)
        return out

    def get_historical(self, request: FeatureRequest, entities: pa.Table,
                       timestamp_column: str) -> pa.Table:
        for part in request.views:
            self._stage(part.view)
        full = request.columns != tuple(f for v in request.views for f in v.features)
        table = entities
        for part in request.views:  # one view at a time: Feast drops a row for all views
            # when one view has no value for it; here only that view's columns get nulls
            take, result = self._historical_rows(part, entities, timestamp_column, full)
            for feature, column in zip(part.features, part.columns, strict=True):
                dtype = DTYPES[part.view.feature(feature).dtype]  # type: ignore[union-attr]
                values = pa.array(result[column], from_pandas=True)
                table = table.append_column(column, _cast(values, dtype).take(take))
        return table

    def _historical_rows(self, part: ViewRequest, entities: pa.Table, timestamp_column: str,
                         full: bool) -> tuple[pa.Array, Any]:
        """Feast's answer for one view, asked once per distinct (view's join keys,
        timestamp) — Feast keeps one row of each such group, so rows that differ only in
        another view's keys would lose values — and which answer row each entity row takes."""
        keys = [*part.key_names, timestamp_column]
        frame = entities.select(keys).to_pandas()
        groups = frame.groupby(keys, sort=False).ngroup().to_numpy()
        unique = frame.drop_duplicates(keys).reset_index(drop=True)
        unique[_ROW] = np.arange(len(unique))
        result = self._historical_of(part, unique, full)
        position = np.full(len(unique), -1, np.int64)
        position[result[_ROW].to_numpy()] = np.arange(len(result))
        return pa.array(position[groups], mask=position[groups] < 0), result

    def _historical_of(self, part: ViewRequest, unique: Any, full: bool) -> Any:
        """Feast's point-in-time join of one view's features (a pandas frame)."""
        refs = [f"{part.view.name}:{feature}" for feature in part.features]
        try:
            job = self.reader.get_historical_features(
                entity_df=unique, features=refs, full_feature_names=full,
                filter_by_created_timestamp=bool(part.view.created_timestamp_field))
            return job.to_df()  # filter: no value created after the entity row's time
        except Exception as error:
            raise BackendError(f"feast get_historical_features failed: {error}") from error


def spread_ties(table: pa.Table, timestamp: str, keys: list[str]) -> pa.Table:
    """Make event times unique per entity for Feast, keeping the order of the ties.

    Feast's file offline store breaks ties between rows of one entity with the same event
    time (which differ in created time) with an unstable sort, so it may pick either. In
    the canonical table the winner of a tie is the last row of its run; here each earlier
    row moves back by one nanosecond per place, so Feast's order by event time alone is
    the tie-break order. The winner keeps its exact time; a moved row can differ only at
    the exact nanosecond of a TTL boundary.
    """
    n = table.num_rows
    if n == 0:
        return table.set_column(table.column_names.index(timestamp), timestamp,
                                table.column(timestamp).cast(pa.timestamp("ns", tz="UTC")))
    ends = last_of_groups(table, [*keys, timestamp]).to_numpy(zero_copy_only=False)
    index = np.arange(n)
    end_of = np.minimum.accumulate(np.where(ends, index, n)[::-1])[::-1]
    nanos = table.column(timestamp).cast(pa.int64()).to_numpy() * 1000 - (end_of - index)
    spread = pa.array(nanos, pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
    return table.set_column(table.column_names.index(timestamp), timestamp, spread)


def _cast(values: pa.Array, kind: pa.DataType) -> pa.Array:
    if pa.types.is_timestamp(kind) and pa.types.is_timestamp(values.type) \
            and values.type.tz is None:
        values = values.cast(pa.timestamp(values.type.unit, tz="UTC"))
    return values.cast(kind, safe=False)


def _projection(views: dict[str, Any], ref: str) -> Any:
    name, _, feature = ref.partition(":")
    return views[name][[feature]] if feature else views[name]


def _expire(out: dict[str, list[Any]], data: dict[str, Any], parts: list[Any]) -> None:
    """Null the values of TTL views whose event time is older than now - ttl."""
    now = time.time()
    for part in parts:
        cutoff = now - part.view.ttl.total_seconds()
        for column in part.columns:
            stamps = data[f"{column}__ts"]
            out[column] = [None if ts < cutoff else value
                           for value, ts in zip(out[column], stamps, strict=True)]
