"""The feature backend port: what an adapter (Feast, native) implements.

Features are not bytes, so unlike the blob port this interface is at the level of
feature requests. The :class:`~dataplane.features.FeatureStore` (``plane.features``) does
everything adapters share before calling one: it checks definitions and plans changes,
resolves and checks feature references and entity rows, and normalises sources
(:mod:`dataplane.features.sources`). An adapter receives only checked input.

Call order, per :class:`FeatureBackend` instance:

1. ``apply(plan)`` whenever the definitions change (never with an empty plan);
2. then, in any order and from any thread: ``materialize``, ``materialize_incremental``,
   ``get_online``, ``get_historical``, ``push``;
3. ``close()`` last.

Guarantees every adapter keeps (``dataplane.testing.features`` checks them):

- ``get_online`` returns, per requested feature, one value per entity row (``None`` for an
  entity never written, or whose value is older than the view's TTL at read time);
- an online value changes only as a whole per entity and view: a reader never sees some
  features of an entity from one source row and some from another, also while a
  materialization runs, and never an error because one runs;
- online writes never move an entity back in time: a value with an older event timestamp
  than the stored one is ignored (equal timestamps: the later write wins);
- ``get_historical`` gives each entity row the values of the latest source row at or
  before its timestamp (and created no later than it), within the TTL, else nulls; the
  output has the entity rows in their input order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .definitions import Definitions, FeatureView
from .plan import Plan
from .requests import FeatureRequest
from .state import FeatureState

if TYPE_CHECKING:
    from ..config import FeaturesConfig
    from ..facade import DataPlane

__all__ = ["FeatureBackend", "FeatureContext"]


@dataclass
class FeatureContext:
    """What an adapter may use: the plane (for dataset sources), the settings, the
    applied definitions and watermarks, and the source loader."""

    plane: DataPlane
    settings: FeaturesConfig
    state: FeatureState
    load_source: Callable[[FeatureView], pa.Table]

    @property
    def definitions(self) -> Definitions:
        return self.state.definitions

    @property
    def folder(self) -> Path:
        return self.settings.dir


class FeatureBackend(ABC):
    """One feature backend; built with a :class:`FeatureContext` (see the call order in
    the module docstring)."""

    name: str = "?"

    def __init__(self, context: FeatureContext):
        self.context = context

    @abstractmethod
    def apply(self, plan: Plan) -> None:
        """Make the backend match ``plan.definitions``: create, update and delete objects;
        drop the online values of views whose change ``resets_online``."""

    @abstractmethod
    def materialize(self, views: list[FeatureView], start: datetime, end: datetime) -> None:
        """Write each entity's latest row with ``start <= event time <= end`` online."""

    @abstractmethod
    def materialize_incremental(self, views: list[FeatureView], end: datetime) -> None:
        """Like :meth:`materialize` from each view's previous end (first time: ``now -
        ttl``, or one year without a TTL) to ``end``."""

    @abstractmethod
    def get_online(self, request: FeatureRequest, keys: dict[str, list[Any]]
                   ) -> dict[str, list[Any]]:
        """The feature columns (``request.columns``), one value per entity row."""

    @abstractmethod
    def get_historical(self, request: FeatureRequest, entities: pa.Table,
                       timestamp_column: str) -> pa.Table:
        """``entities`` (timestamps already ``timestamp[us, UTC]``, join keys ``int64`` or
        ``string``, no nulls in either) with the feature columns appended, rows in input
        order."""

    @abstractmethod
    def push(self, view: FeatureView, rows: pa.Table) -> None:
        """Write ``rows`` (canonical: typed, sorted, one per entity and timestamp) online."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
