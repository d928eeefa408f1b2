"""``plane.features``: one feature interface over any feature backend (Feast, native).

>>> plan = plane.features.apply(definitions)          # idempotent; returns what changed
>>> plane.features.materialize(start, end)            # offline -> online, batched
>>> plane.features.get_online(["driver_stats:trips"], [{"driver_id": 1001}])
{'driver_id': [1001], 'trips': [7]}
>>> plane.features.get_historical(entity_df, ["driver_stats:trips"])   # pyarrow.Table

Call order: ``apply`` first (every other call checks its input against the applied
definitions, so an unknown feature, view, service or entity key fails here, before the
backend is touched); then the rest in any order, from any number of threads. The adapter
(``[features] adapter``) is imported on first use, so ``import feast`` only happens when
the Feast adapter serves.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..errors import (
    InvalidEntityKeyError,
    MissingDependencyError,
    SchemaMismatchError,
    UnknownFeatureError,
)
from .definitions import DTYPES, Definitions, Entity, FeatureService, FeatureView
from .plan import Plan, diff
from .port import FeatureBackend, FeatureContext
from .requests import FeatureRequest, entity_columns, resolve_features
from .sources import canonical, check_columns, load_source, source_schema, to_utc_micros
from .state import FeatureState

if TYPE_CHECKING:
    from ..config import FeaturesConfig
    from ..facade import DataPlane

__all__ = ["ADAPTERS", "FeatureStore"]

#: Adapter name -> "module:Class", imported on first use.
ADAPTERS = {
    "native": ("dataplane_adapters.native_features:NativeFeatureBackend", None),
    "feast": ("dataplane_adapters.feast_features:FeastFeatureBackend", "feast"),
}
DefinitionsLike = Definitions | Iterable[Entity | FeatureView | FeatureService]


class FeatureStore:
    """The feature interface (see the module docstring); get it as ``plane.features``."""

    def __init__(self, plane: DataPlane, settings: FeaturesConfig | None = None):
        self.plane = plane
        self.settings = settings or plane.config.features
        self.state = FeatureState(self.settings.dir / "state.json")
        self._backend: FeatureBackend | None = None
        self._lock = threading.Lock()
        self._requests: dict[tuple[Any, ...], FeatureRequest] = {}
        self._requests_of: Definitions | None = None

    # --------------------------------------------------------------- definitions
    @property
    def definitions(self) -> Definitions:
        """What is applied now (empty before the first ``apply``)."""
        return self.state.definitions

    def plan(self, definitions: DefinitionsLike) -> Plan:
        """What :meth:`apply` would change; nothing is changed. Sources are checked."""
        wanted = Definitions.of(definitions)
        plan = diff(self.definitions, wanted)
        for name in [*plan.of("add", "view"), *plan.of("update", "view")]:
            view = wanted.view(name)
            assert view is not None
            source_schema(self.plane, view, wanted)  # missing columns fail here
        return plan

    def apply(self, definitions: DefinitionsLike, *, dry_run: bool = False) -> Plan:
        """Make ``definitions`` the applied state and return the plan that did it.

        Objects applied before but absent now are deleted. Applying the same definitions
        twice gives an empty plan the second time and touches nothing.
        """
        plan = self.plan(definitions)
        if plan and not dry_run:
            self.backend.apply(plan)
            resets = [c.name for c in plan if c.resets_online]
            self.state.save(plan.definitions, resets)
        return plan

    # ------------------------------------------------------------ materialize
    def materialize(self, start: datetime, end: datetime,
                    views: Sequence[str] | None = None) -> None:
        """Write each entity's latest value with ``start <= event time <= end`` to the
        online store, in batches; readers keep getting complete values meanwhile."""
        start, end = _utc(start, "start"), _utc(end, "end")
        if start > end:
            raise ValueError(f"start {start.isoformat()} is after end {end.isoformat()}")
        chosen = self._online_views(views)
        self.backend.materialize(chosen, start, end)
        for view in chosen:
            self.state.set_watermark(view.name, end)

    def materialize_incremental(self, end: datetime, views: Sequence[str] | None = None
                                ) -> None:
        """Materialize from each view's previous end (first time: ``now - ttl``, or one
        year back without a TTL) up to ``end``."""
        end = _utc(end, "end")
        chosen = self._online_views(views)
        self.backend.materialize_incremental(chosen, end)
        for view in chosen:
            self.state.set_watermark(view.name, end)

    def _online_views(self, names: Sequence[str] | None) -> list[FeatureView]:
        definitions = self.definitions
        if names is None:
            return [v for v in definitions.views if v.online]
        views = []
        for name in [names] if isinstance(names, str) else names:
            view = definitions.view(name)
            if view is None:
                raise UnknownFeatureError(f"unknown feature view {name!r} (views: "
                                          f"{', '.join(v.name for v in definitions.views)})")
            if not view.online:
                raise UnknownFeatureError(f"feature view {name} is offline only (online = "
                                          "false): it is not materialized or pushed")
            views.append(view)
        return views

    # ------------------------------------------------------------------ reads
    def get_online(self, features: Sequence[str] | str,
                   entity_rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
                   *, full_feature_names: bool = False) -> dict[str, list[Any]]:
        """Latest values: ``{join key: [...], feature: [...]}``, one value per entity row,
        ``None`` where an entity has no value or its value is older than the TTL."""
        request = self.request(features, full_feature_names)
        clash = [c for c in request.columns if c in request.join_keys]
        if clash:
            raise InvalidEntityKeyError(
                f"feature column {clash[0]!r} has the name of a join key of this request: "
                "ask with full_feature_names=True")
        offline = [part.view.name for part in request.views if not part.view.online]
        if offline:
            raise UnknownFeatureError(f"feature view {offline[0]} is offline only "
                                      "(online = false): use get_historical")
        empty: dict[str, list[Any]] = {name: [] for name in [*request.join_keys,
                                                              *request.columns]}
        if not entity_rows:
            return empty
        keys = entity_columns(request, entity_rows)
        if not next(iter(keys.values())):
            return empty
        return {**keys, **self.backend.get_online(request, keys)}

    def get_historical(self, entity_df: Any, features: Sequence[str] | str, *,
                       timestamp_column: str = "event_timestamp",
                       full_feature_names: bool = False) -> pa.Table:
        """Point-in-time correct values for each row of ``entity_df`` (a pyarrow Table or a
        pandas DataFrame with the join keys and ``timestamp_column``): the latest source
        row at or before the row's timestamp, within the TTL. Rows keep their order and
        columns; a row with a null join key or timestamp gets nulls."""
        request = self.request(features, full_feature_names)
        entities = _entity_table(entity_df, request, timestamp_column)
        query, findable = _query_table(entities, request, timestamp_column)
        result = (self.backend.get_historical(request, query, timestamp_column)
                  if query.num_rows else _empty_features(query, request))
        found = result.select(list(request.columns))
        if findable is not None:  # rows with a null key or timestamp get nulls
            position = np.cumsum(findable) - 1
            found = found.take(pa.array(position, mask=~findable))
        for name in request.columns:
            entities = entities.append_column(name, found.column(name))
        return entities

    def request(self, features: Sequence[str] | str, full_feature_names: bool = False
                ) -> FeatureRequest:
        """``features`` checked against the applied definitions (cached per definitions)."""
        definitions = self.definitions
        cache_key = (features if isinstance(features, str) else tuple(features),
                     full_feature_names)
        if definitions is not self._requests_of:
            self._requests, self._requests_of = {}, definitions
        request = self._requests.get(cache_key)
        if request is None:
            request = resolve_features(definitions, features, full_feature_names)
            if len(self._requests) < 1024:
                self._requests[cache_key] = request
        return request

    # ------------------------------------------------------------------ push
    def push(self, view: str, rows: Any) -> None:
        """Write fresh rows (a pyarrow Table, pandas DataFrame, or list of dicts with the
        join keys, the event timestamp and the features) straight to the online store."""
        definition = self._online_views([view])[0]
        table = rows if isinstance(rows, pa.Table) else _table_of(rows)
        if table.num_rows == 0 and table.num_columns == 0:
            return  # no rows at all (an empty list or mapping)
        check_columns(definition, self.definitions, table.schema, "the pushed table")
        table = canonical(table, definition, self.definitions)
        if table.num_rows:
            self.backend.push(definition, table)

    # ---------------------------------------------------------------- backend
    @property
    def backend(self) -> FeatureBackend:
        """The adapter, imported and built on first use."""
        with self._lock:
            if self._backend is None:
                self._backend = self._open_backend()
            return self._backend

    def _open_backend(self) -> FeatureBackend:
        target, extra = ADAPTERS[self.settings.adapter]
        module_name, _, class_name = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            if extra and error.name and error.name.split(".")[0] == extra:
                raise MissingDependencyError(
                    f"the {self.settings.adapter} feature adapter needs the {extra!r} "
                    f"package: pip install 'dataplane[{extra}]'") from error
            raise
        context = FeatureContext(self.plane, self.settings, self.state, self._load)
        backend: FeatureBackend = getattr(module, class_name)(context)
        return backend

    def _load(self, view: FeatureView) -> pa.Table:
        return load_source(self.plane, view, self.definitions)

    def close(self) -> None:
        """Close the adapter's connections."""
        with self._lock:
            backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()

    def __repr__(self) -> str:
        return f"FeatureStore(adapter={self.settings.adapter!r}, dir={str(self.settings.dir)!r})"


def _utc(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _empty_features(entities: pa.Table, request: FeatureRequest) -> pa.Table:
    for part in request.views:
        for feature, column in zip(part.features, part.columns, strict=True):
            dtype = part.view.feature(feature).dtype  # type: ignore[union-attr]
            entities = entities.append_column(column, pa.array([], DTYPES[dtype]))
    return entities


def _table_of(data: Any) -> pa.Table:
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(data, pandas.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, Mapping):
        return pa.table({k: list(v) for k, v in data.items()})
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        return pa.Table.from_pylist(list(data))
    raise TypeError(f"expected a pyarrow Table, pandas DataFrame or rows, got "
                    f"{type(data).__name__}")


def _entity_table(data: Any, request: FeatureRequest, timestamp_column: str) -> pa.Table:
    table = data if isinstance(data, pa.Table) else _table_of(data)
    needed = request.join_keys
    if timestamp_column not in table.column_names:
        raise InvalidEntityKeyError(f"the entity rows have no {timestamp_column!r} column "
                                    f"(columns: {', '.join(table.column_names)})")
    for key, dtype in needed.items():
        if key not in table.column_names:
            raise InvalidEntityKeyError(f"the entity rows lack join key {key!r}")
        kind = table.schema.field(key).type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        fits = pa.types.is_integer(kind) if dtype == "int64" else (
            pa.types.is_string(kind) or pa.types.is_large_string(kind))
        if not fits:
            raise InvalidEntityKeyError(f"join key {key!r} is {dtype}, but the entity "
                                        f"column is {kind}")
    clash = [c for c in request.columns if c in table.column_names]
    if clash:
        raise InvalidEntityKeyError(f"the entity rows already have a column {clash[0]!r}")
    index = table.column_names.index(timestamp_column)
    try:
        times = to_utc_micros(table.column(timestamp_column))
    except SchemaMismatchError:
        raise InvalidEntityKeyError(
            f"the entity rows' {timestamp_column!r} column is "
            f"{table.schema.field(timestamp_column).type}, not a timestamp") from None
    return table.set_column(index, timestamp_column, times)


def _query_table(entities: pa.Table, request: FeatureRequest, timestamp_column: str
                 ) -> tuple[pa.Table, np.ndarray | None]:
    """What adapters get: the join keys as ``int64``/``string`` and only the rows with
    every key and the timestamp set (``findable``: which rows those are, ``None``: all)."""
    query = entities
    for key, dtype in request.join_keys.items():
        column = query.column(key)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        try:
            column = column.cast(DTYPES[dtype])
        except pa.ArrowInvalid as error:
            raise InvalidEntityKeyError(f"join key {key!r} is {dtype}, but the entity "
                                        f"column holds values that do not fit: {error}"
                                        ) from None
        query = query.set_column(query.column_names.index(key), key, column)
    columns = [timestamp_column, *request.join_keys]
    if not any(query.column(c).null_count for c in columns):
        return query, None
    valid = np.ones(query.num_rows, dtype=bool)
    for name in columns:
        valid &= query.column(name).is_valid().to_numpy(zero_copy_only=False)
    return query.filter(pa.array(valid)), valid
