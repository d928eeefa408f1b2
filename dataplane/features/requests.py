"""Feature requests checked against the applied definitions, before any adapter runs.

:func:`resolve_features` turns what a caller asks for — ``["view:feature", ...]``,
``"view:*"``/``"view"`` for a whole view, or the name of a feature service — into a
:class:`FeatureRequest`; an unknown view, feature or service raises
:class:`~dataplane.errors.UnknownFeatureError` naming it and what exists.
:func:`entity_columns` checks entity rows: every join key the requested views need is
present, no other key is, and each value has the key's type — otherwise
:class:`~dataplane.errors.InvalidEntityKeyError` names the key.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidEntityKeyError, UnknownFeatureError
from .definitions import Definitions, FeatureView

__all__ = ["FeatureRequest", "ViewRequest", "entity_columns", "resolve_features"]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class ViewRequest:
    """The features asked of one view, with the view's join keys and output columns."""

    view: FeatureView
    features: tuple[str, ...]
    keys: tuple[tuple[str, str], ...]
    columns: tuple[str, ...]

    @property
    def key_names(self) -> list[str]:
        return [key for key, _ in self.keys]


@dataclass(frozen=True)
class FeatureRequest:
    """A checked request: per view what to read, and the output columns in order."""

    refs: tuple[str, ...]
    views: tuple[ViewRequest, ...]
    columns: tuple[str, ...]

    @property
    def join_keys(self) -> dict[str, str]:
        """Every join key the request needs, with its dtype, in first-use order."""
        return {key: dtype for view in self.views for key, dtype in view.keys}


def resolve_features(definitions: Definitions, features: Sequence[str] | str,
                     full_feature_names: bool = False) -> FeatureRequest:
    """Expand services and whole views, check every ref, group by view (first-use order)."""
    refs = list(dict.fromkeys(_expand(definitions, features)))  # a ref asked twice: once
    grouped: dict[str, list[str]] = {}
    for ref in refs:
        view_name, _, feature = ref.partition(":")
        view = _view(definitions, view_name, ref)
        if view.feature(feature) is None:
            raise UnknownFeatureError(f"unknown feature {ref!r}: feature view {view_name} has "
                                      f"{', '.join(view.feature_names)}")
        if feature not in grouped.setdefault(view_name, []):
            grouped[view_name].append(feature)
    views = tuple(_view_request(definitions, name, names, full_feature_names)
                  for name, names in grouped.items())
    columns = tuple(c for v in views for c in v.columns)
    duplicate = sorted({c for c in columns if columns.count(c) > 1})
    if duplicate:
        raise UnknownFeatureError(f"feature {duplicate[0]!r} is requested from two views; "
                                  "pass full_feature_names=True to get view__feature columns")
    return FeatureRequest(tuple(refs), views, columns)


def _expand(definitions: Definitions, features: Sequence[str] | str) -> list[str]:
    items = [features] if isinstance(features, str) else list(features)
    if not items:
        raise UnknownFeatureError("no features requested")
    refs: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"a feature reference is a string, got {type(item).__name__}")
        if ":" not in item:
            service = definitions.service(item)
            if service is not None:
                refs += _expand(definitions, list(service.features))
                continue
        view_name, _, feature = item.partition(":")
        if feature in ("", "*"):
            refs += [f"{view_name}:{f}" for f in _view(definitions, view_name, item)
                     .feature_names]
        else:
            refs.append(item)
    return refs


def _view(definitions: Definitions, name: str, ref: str) -> FeatureView:
    view = definitions.view(name)
    if view is None:
        services = [s.name for s in definitions.services]
        raise UnknownFeatureError(
            f"unknown feature view or service in {ref!r} (views: "
            f"{', '.join(v.name for v in definitions.views) or 'none'}; services: "
            f"{', '.join(services) or 'none'})")
    return view


def _view_request(definitions: Definitions, name: str, features: list[str], full: bool
                  ) -> ViewRequest:
    view = definitions.view(name)
    assert view is not None
    columns = tuple(f"{name}__{f}" if full else f for f in features)
    return ViewRequest(view, tuple(features), tuple(definitions.join_keys(view)), columns)


def entity_columns(request: FeatureRequest,
                   entity_rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]
                   ) -> dict[str, list[Any]]:
    """The entity rows as checked columns of join key values (one list per key)."""
    columns = _as_columns(entity_rows)
    needed = request.join_keys
    unknown = [key for key in columns if key not in needed]
    if unknown:
        raise InvalidEntityKeyError(f"unknown entity key {unknown[0]!r}: the requested "
                                    f"features join on {', '.join(needed)}")
    for key, dtype in needed.items():
        if key not in columns:
            users = [v.view.name for v in request.views if key in v.key_names]
            raise InvalidEntityKeyError(f"entity rows lack join key {key!r} (needed by "
                                        f"feature view {', '.join(users)})")
        check_key_values(key, dtype, columns[key])
    return columns


def _as_columns(rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]
                ) -> dict[str, list[Any]]:
    if isinstance(rows, Mapping):
        columns = {k: list(v) for k, v in rows.items()}
        if len({len(v) for v in columns.values()}) > 1:
            raise InvalidEntityKeyError("entity columns have different lengths")
        return columns
    if isinstance(rows, str | bytes):
        raise TypeError("entity_rows is a list of {join_key: value} mappings")
    rows = list(rows)
    names = list(rows[0]) if rows else []
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"entity row {index} is a {type(row).__name__}, not a mapping")
        if list(row) != names and set(row) != set(names):
            missing = sorted(set(names) ^ set(row))
            raise InvalidEntityKeyError(f"entity row {index} has keys {sorted(row)}, unlike "
                                        f"row 0 (differs in {missing[0]!r})")
    return {name: [row[name] for row in rows] for name in names}


def check_key_values(key: str, dtype: str, values: Sequence[Any]) -> None:
    """Every value fits the key's dtype (``int64``: integers within its range, not bools;
    ``string``)."""
    if _plainly_fit(dtype, values):  # the common case, without a check per value
        return
    for index, value in enumerate(values):
        if dtype == "int64":
            ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) \
                and _INT64_MIN <= int(value) <= _INT64_MAX
        else:
            ok = isinstance(value, str)
        if not ok:
            raise InvalidEntityKeyError(
                f"join key {key!r} is {dtype}, but row {index} holds "
                f"{value!r} ({type(value).__name__})")


def _plainly_fit(dtype: str, values: Sequence[Any]) -> bool:
    """Whether every value is a plain ``int`` in the int64 range or a plain ``str``, as
    the dtype asks (False leaves the verdict to the check of each value)."""
    if dtype == "int64":
        return all(type(v) is int for v in values) and (
            not values or (min(values) >= _INT64_MIN and max(values) <= _INT64_MAX))
    return all(type(v) is str for v in values)
