"""Feature definitions in dataplane's own terms: entities, feature views, feature services.

Definitions are plain frozen dataclasses with no backend in them; an adapter translates
them (the Feast adapter into Feast objects, the native one into its own tables).
:class:`Definitions` checks that they hold together — unique names, views that name
defined entities, services that name applied features — and raises
:class:`~dataplane.errors.InvalidDefinitionError` naming the object otherwise. They
round-trip through plain mappings (``to_dict`` / ``from_mapping``), which is also the
format of a TOML definitions file (:func:`load_definitions`).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import InvalidDefinitionError

__all__ = [
    "DTYPES",
    "Definitions",
    "Entity",
    "Feature",
    "FeatureService",
    "FeatureView",
    "load_definitions",
]

#: The value types a feature or join key may have, and their Arrow types.
DTYPES: dict[str, pa.DataType] = {
    "int64": pa.int64(),
    "int32": pa.int32(),
    "float64": pa.float64(),
    "float32": pa.float32(),
    "string": pa.string(),
    "bool": pa.bool_(),
    "bytes": pa.binary(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
KEY_DTYPES = ("int64", "string")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
_TTL = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def check_identifier(value: Any, what: str) -> str:
    """A name usable as a column, table and Feast object name: a letter, then up to 62
    letters, digits or underscores."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidDefinitionError(f"{what} {value!r} must start with a letter and hold "
                                     "only letters, digits and _ (at most 63)")
    if "__" in value:
        raise InvalidDefinitionError(f"{what} {value!r} must not contain '__' "
                                     "(reserved for view__feature column names)")
    return value


def check_dtype(value: Any, what: str, allowed: Iterable[str] = DTYPES) -> str:
    allowed = tuple(allowed)
    if value not in allowed:
        raise InvalidDefinitionError(f"{what} has dtype {value!r}; expected one of "
                                     f"{', '.join(allowed)}")
    return str(value)


def parse_ttl(value: Any, what: str) -> timedelta | None:
    """``None``/``0`` (never expires), a ``timedelta``, seconds, or ``"30m"``/``"1d"``."""
    if value is None or isinstance(value, timedelta):
        ttl = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        ttl = timedelta(seconds=value)
    elif isinstance(value, str) and _TTL.match(value.strip()):
        number, unit = _TTL.match(value.strip()).groups()  # type: ignore[union-attr]
        ttl = timedelta(**{_UNITS[unit]: int(number)})
    else:
        raise InvalidDefinitionError(f"{what}: ttl {value!r} is not a timedelta, a number "
                                     "of seconds or a string like '30m', '12h', '7d'")
    if ttl is not None and ttl < timedelta(0):
        raise InvalidDefinitionError(f"{what}: ttl must not be negative")
    return ttl if ttl else None


@dataclass(frozen=True)
class Entity:
    """What features are about (a driver, a user): a name and its join key column.

    ``join_key`` defaults to the name; ``dtype`` is ``int64`` or ``string``.
    """

    name: str
    join_key: str = ""
    dtype: str = "int64"
    description: str = ""

    def __post_init__(self) -> None:
        check_identifier(self.name, "entity")
        object.__setattr__(self, "join_key", self.join_key or self.name)
        check_identifier(self.join_key, f"entity {self.name}: join key")
        check_dtype(self.dtype, f"entity {self.name}", KEY_DTYPES)


@dataclass(frozen=True)
class Feature:
    """One column of a feature view: its name and dtype (see :data:`DTYPES`)."""

    name: str
    dtype: str

    def __post_init__(self) -> None:
        check_identifier(self.name, "feature")
        check_dtype(self.dtype, f"feature {self.name}")


@dataclass(frozen=True)
class FeatureView:
    """Features of some entities, read from one source with an event-timestamp column.

    ``source`` is a dataplane dataset address (``datasets/driver_stats@prod``, a full
    ``dp://tenant/datasets/...`` address) or a Parquet file/folder path. A source row is
    valid from its ``timestamp_field`` on, for ``ttl`` (``None``: forever). Among rows of
    one entity with the same event timestamp, the one with the later
    ``created_timestamp_field`` wins, then the one later in the source.
    """

    name: str
    entities: tuple[str, ...]
    features: tuple[Feature, ...]
    source: str
    timestamp_field: str = "event_timestamp"
    created_timestamp_field: str | None = None
    ttl: timedelta | None = None
    online: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        check_identifier(self.name, "feature view")
        object.__setattr__(self, "entities", tuple(self.entities))
        object.__setattr__(self, "features", tuple(_feature(f) for f in self.features))
        object.__setattr__(self, "ttl", parse_ttl(self.ttl, f"feature view {self.name}"))
        if not self.features:
            raise InvalidDefinitionError(f"feature view {self.name} has no features")
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise InvalidDefinitionError(f"feature view {self.name} lists a feature twice")
        if not isinstance(self.source, str) or not self.source:
            raise InvalidDefinitionError(f"feature view {self.name}: source must be a "
                                         "dataset address or a Parquet path")

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> Feature | None:
        return next((f for f in self.features if f.name == name), None)


@dataclass(frozen=True)
class FeatureService:
    """A named group of features: refs ``view:feature``, or ``view`` for all of a view."""

    name: str
    features: tuple[str, ...]
    description: str = ""

    def __post_init__(self) -> None:
        check_identifier(self.name, "feature service")
        object.__setattr__(self, "features", tuple(self.features))
        if not self.features:
            raise InvalidDefinitionError(f"feature service {self.name} has no features")


def _feature(value: Feature | tuple[str, str]) -> Feature:
    return value if isinstance(value, Feature) else Feature(*value)


@dataclass(frozen=True)
class Definitions:
    """A whole feature repository: what ``apply`` makes true (objects it does not list are
    removed). Checked on construction."""

    entities: tuple[Entity, ...] = ()
    views: tuple[FeatureView, ...] = ()
    services: tuple[FeatureService, ...] = ()

    def __post_init__(self) -> None:
        for attr in ("entities", "views", "services"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        self._check_unique()
        entities = {e.name: e for e in self.entities}
        for view in self.views:
            self._check_view(view, entities)
        for service in self.services:
            self._check_service(service)

    @classmethod
    def of(cls, objects: Definitions | Iterable[Entity | FeatureView | FeatureService]
           ) -> Definitions:
        """``objects`` as :class:`Definitions` (a list of definitions is sorted by kind)."""
        if isinstance(objects, Definitions):
            return objects
        items = list(objects)
        unknown = [o for o in items if not isinstance(o, Entity | FeatureView | FeatureService)]
        if unknown:
            raise TypeError(f"not a feature definition: {unknown[0]!r}")
        return cls(tuple(o for o in items if isinstance(o, Entity)),
                   tuple(o for o in items if isinstance(o, FeatureView)),
                   tuple(o for o in items if isinstance(o, FeatureService)))

    def entity(self, name: str) -> Entity:
        return next(e for e in self.entities if e.name == name)

    def view(self, name: str) -> FeatureView | None:
        return next((v for v in self.views if v.name == name), None)

    def service(self, name: str) -> FeatureService | None:
        return next((s for s in self.services if s.name == name), None)

    def join_keys(self, view: FeatureView) -> list[tuple[str, str]]:
        """``(join key, dtype)`` of each of the view's entities, in order."""
        return [(self.entity(e).join_key, self.entity(e).dtype) for e in view.entities]

    def _check_unique(self) -> None:
        for kind, items in (("entity", self.entities), ("feature view", self.views),
                            ("feature service", self.services)):
            names = [item.name for item in items]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise InvalidDefinitionError(f"{kind} {duplicates[0]!r} is defined twice")

    def _check_view(self, view: FeatureView, entities: Mapping[str, Entity]) -> None:
        if not view.entities:
            raise InvalidDefinitionError(f"feature view {view.name} names no entity")
        for name in view.entities:
            if name not in entities:
                raise InvalidDefinitionError(
                    f"feature view {view.name} names entity {name!r}, which is not defined "
                    f"(entities: {', '.join(sorted(entities)) or 'none'})")
        keys = [entities[e].join_key for e in view.entities]
        reserved = {view.timestamp_field, view.created_timestamp_field, *keys}
        clash = [f.name for f in view.features if f.name in reserved]
        if clash:
            raise InvalidDefinitionError(f"feature view {view.name}: feature {clash[0]!r} "
                                         "is also a join key or timestamp column")

    def _check_service(self, service: FeatureService) -> None:
        for ref in service.features:
            view_name, _, feature = ref.partition(":")
            view = self.view(view_name)
            if view is None or (feature and view.feature(feature) is None):
                raise InvalidDefinitionError(
                    f"feature service {service.name} names {ref!r}, which is not a defined "
                    "feature view or view:feature")

    # ---------------------------------------------------------- serialization
    def to_dict(self) -> dict[str, Any]:
        """A JSON/TOML-ready mapping; :meth:`from_mapping` reads it back."""
        return {
            "entities": [{"name": e.name, "join_key": e.join_key, "dtype": e.dtype,
                          "description": e.description} for e in self.entities],
            "views": [_view_dict(v) for v in self.views],
            "services": [{"name": s.name, "features": list(s.features),
                          "description": s.description} for s in self.services],
        }

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Definitions:
        """Definitions from ``{"entities": [...], "views": [...], "services": [...]}``."""
        unknown = sorted(set(raw) - {"entities", "views", "services"})
        if unknown:
            raise InvalidDefinitionError(f"unknown section {unknown[0]!r} "
                                         "(expected entities, views, services)")
        try:
            return cls(tuple(Entity(**e) for e in raw.get("entities", [])),
                       tuple(_view_of(v) for v in raw.get("views", [])),
                       tuple(FeatureService(**s) for s in raw.get("services", [])))
        except TypeError as error:
            raise InvalidDefinitionError(f"bad definition: {error}") from error


def _view_dict(view: FeatureView) -> dict[str, Any]:
    return {"name": view.name, "entities": list(view.entities),
            "features": {f.name: f.dtype for f in view.features}, "source": view.source,
            "timestamp_field": view.timestamp_field,
            "created_timestamp_field": view.created_timestamp_field,
            "ttl_s": view.ttl.total_seconds() if view.ttl else None,
            "online": view.online, "description": view.description}


def _view_of(raw: Mapping[str, Any]) -> FeatureView:
    spec = dict(raw)
    features = spec.pop("features", {})
    if not isinstance(features, Mapping):
        raise InvalidDefinitionError(f"feature view {spec.get('name')!r}: features must be "
                                     "a table of name = dtype")
    if "ttl_s" in spec:
        spec["ttl"] = spec.pop("ttl_s")
    return FeatureView(features=tuple(Feature(n, d) for n, d in features.items()), **spec)


def load_definitions(path: str | Path) -> Definitions:
    """Read a TOML definitions file (``[[entities]]``, ``[[views]]`` with a
    ``[views.features]`` table of ``name = "dtype"``, ``[[services]]``)."""
    file = Path(path)
    try:
        raw = tomllib.loads(file.read_text())
    except OSError as error:
        raise InvalidDefinitionError(f"{file}: cannot read: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise InvalidDefinitionError(f"{file}: not valid TOML: {error}") from error
    try:
        return Definitions.from_mapping(raw)
    except InvalidDefinitionError as error:
        raise InvalidDefinitionError(f"{file}: {error}") from error

