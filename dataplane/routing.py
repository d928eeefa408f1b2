"""Routing: which backend holds the bytes of a given ``tenant/kind/name``.

Routes are tried in config order; the first whose glob matches ``tenant/kind/name`` wins,
and the default backend takes the rest. ``*`` matches across ``/``, so
``*/checkpoints/*`` sends every tenant's checkpoints, nested names included, to one
backend. Routing decides where *new* bytes go; readers always follow the locations the
catalog recorded, so changing a route never breaks an existing version.

Route overrides, kept in the catalog (a migration installs them), are applied after the
configured routes: the newest override whose glob matches, and whose ``from_backend`` is
the configured choice (or ``None``), redirects the write to its ``to_backend``.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from .config import Config

if TYPE_CHECKING:  # the catalog pulls in SQLAlchemy
    from .catalog.records import RouteOverride

__all__ = ["Router"]


class Router:
    """Maps names to backend names according to a :class:`~dataplane.config.Config`."""

    def __init__(self, config: Config):
        self._routes = config.routes
        self._default = config.default_backend

    def backend_for(self, tenant: str, kind: str, name: str,
                    overrides: Sequence[RouteOverride] = ()) -> str:
        """The backend that new versions of ``tenant/kind/name`` are written to.

        ``overrides`` (newest first, as :meth:`Catalog.route_overrides` returns them) are
        applied to the configured choice; each applies at most once, so overrides that
        chain (a -> b, then b -> c) are followed without looping.
        """
        path = f"{tenant}/{kind}/{name}"
        backend = next((r.backend for r in self._routes if fnmatchcase(path, r.match)),
                       self._default)
        pending = list(overrides)
        while True:
            found = next((o for o in pending if fnmatchcase(path, o.pattern)
                          and o.from_backend in (None, backend)), None)
            if found is None or found.to_backend == backend:
                return backend
            backend = found.to_backend
            pending.remove(found)
