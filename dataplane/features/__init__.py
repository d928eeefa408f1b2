"""Features: ``plane.features`` is a :class:`FeatureStore` over Feast or the native backend.

>>> from dataplane.features import Entity, Feature, FeatureView, FeatureService
>>> driver = Entity("driver", join_key="driver_id", dtype="int64")
>>> stats = FeatureView("driver_stats", entities=("driver",), ttl="1d",
...                     features=(Feature("trips", "int64"), Feature("rating", "float64")),
...                     source="datasets/driver_stats@prod")
>>> plane.features.apply([driver, stats])

The definitions (:mod:`.definitions`), the plan of an apply (:mod:`.plan`), request
checks (:mod:`.requests`), source normalisation (:mod:`.sources`), the backend port
(:mod:`.port`) and the store (:mod:`.store`) each live in their own module.
"""

from .definitions import (
    DTYPES,
    Definitions,
    Entity,
    Feature,
    FeatureService,
    FeatureView,
    load_definitions,
)
from .plan import Change, Plan
from .port import FeatureBackend, FeatureContext
from .requests import FeatureRequest, ViewRequest
from .store import FeatureStore

__all__ = [
    "DTYPES",
    "Change",
    "Definitions",
    "Entity",
    "Feature",
    "FeatureBackend",
    "FeatureContext",
    "FeatureRequest",
    "FeatureService",
    "FeatureStore",
    "FeatureView",
    "Plan",
    "ViewRequest",
    "load_definitions",
]
