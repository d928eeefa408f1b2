"""The native feature backend: no Feast, pyarrow offline, SQLite or Redis online.

- offline: point-in-time joins over the views' canonical sources (:mod:`.offline`);
- online: :mod:`.online` at ``[features] online_url`` (embedded SQLite by default);
- materialization: per view, each entity's latest row in the window, written in batches
  of ``batch_size`` entities; every entity is one record, so it is never half updated,
  and readers keep the previous complete value until its new one is committed.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from dataplane.features.definitions import FeatureView
from dataplane.features.plan import Plan
from dataplane.features.port import FeatureBackend, FeatureContext
from dataplane.features.requests import FeatureRequest, ViewRequest

from .codec import decode_value, encode_keys, encode_rows
from .offline import join_view, latest_rows
from .online import OnlineStore, open_online

__all__ = ["NativeFeatureBackend"]

_YEAR = timedelta(weeks=52)


class NativeFeatureBackend(FeatureBackend):
    """Feature backend with no dependency beyond pyarrow (and ``redis`` for Redis)."""

    name = "native"
    batch_size = 1000

    def __init__(self, context: FeatureContext):
        super().__init__(context)
        self.online: OnlineStore = open_online(context.settings.online, context.settings.project)
        self._sources: dict[tuple[str, str], pa.Table] = {}
        self._lock = threading.Lock()

    def apply(self, plan: Plan) -> None:
        for change in plan:
            if change.resets_online:
                self.online.drop(change.name)

    # ------------------------------------------------------------ materialize
    def materialize(self, views: list[FeatureView], start: datetime, end: datetime) -> None:
        for view in views:
            self._materialize_view(view, start, end)

    def materialize_incremental(self, views: list[FeatureView], end: datetime) -> None:
        now = datetime.now(UTC)
        for view in views:
            start = self.context.state.watermark(view.name) or now - (view.ttl or _YEAR)
            self._materialize_view(view, start, end)

    def _materialize_view(self, view: FeatureView, start: datetime, end: datetime) -> None:
        keys = self._keys(view)
        latest = latest_rows(self._source(view), view, keys, _us(start), _us(end))
        self._write(view, latest)

    def _write(self, view: FeatureView, table: pa.Table) -> None:
        for offset in range(0, table.num_rows, self.batch_size):
            batch = table.slice(offset, self.batch_size)
            self.online.write(view.name, encode_rows(batch, self._keys(view),
                                                     view.timestamp_field, view.feature_names))

    def push(self, view: FeatureView, rows: pa.Table) -> None:
        self._write(view, rows.filter(_last_per_entity(rows, self._keys(view))))

    # ------------------------------------------------------------------ reads
    def get_online(self, request: FeatureRequest, keys: dict[str, list[Any]]
                   ) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        now_us = time.time_ns() // 1000
        for part in request.views:
            out.update(self._read_view(part, keys, now_us))
        return out

    def _read_view(self, part: ViewRequest, keys: dict[str, list[Any]], now_us: int
                   ) -> dict[str, list[Any]]:
        view = part.view
        records = self.online.read(view.name, encode_keys([keys[k] for k in part.key_names]))
        cutoff = now_us - view.ttl // timedelta(microseconds=1) if view.ttl else None
        values = [json.loads(r[1]) if r is not None and (cutoff is None or r[0] >= cutoff)
                  else None for r in records]
        out = {}
        for feature, column in zip(part.features, part.columns, strict=True):
            dtype = view.feature(feature).dtype  # type: ignore[union-attr]
            plain = dtype not in ("timestamp", "bytes")
            out[column] = [None if v is None else v.get(feature) if plain
                           else decode_value(v.get(feature), dtype) for v in values]
        return out

    def get_historical(self, request: FeatureRequest, entities: pa.Table,
                       timestamp_column: str) -> pa.Table:
        result = entities
        for part in request.views:
            source = self._source(part.view)
            columns = join_view(source, part.view, part.key_names, list(part.features),
                                entities, timestamp_column)
            for name, column in zip(part.columns, columns, strict=True):
                result = result.append_column(name, column)
        return result

    # ---------------------------------------------------------------- helpers
    def _keys(self, view: FeatureView) -> list[str]:
        return [key for key, _ in self.context.definitions.join_keys(view)]

    def _source(self, view: FeatureView) -> pa.Table:
        """The canonical source, cached per (view definition, source identity)."""
        from dataplane.features.sources import resolve_source

        ref = resolve_source(self.context.plane, view)
        cache_key = (json.dumps(self.context.definitions.to_dict()["views"], sort_keys=True)
                     + view.name, ref.identity)
        with self._lock:
            table = self._sources.get(cache_key)
        if table is None:
            table = self.context.load_source(view)
            with self._lock:
                self._sources = {cache_key: table, **dict(list(self._sources.items())[:3])}
        return table

    def close(self) -> None:
        self.online.close()


def _us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _last_per_entity(rows: pa.Table, keys: list[str]) -> pa.Array:
    from dataplane.features.sources import last_of_groups

    return last_of_groups(rows, keys)
