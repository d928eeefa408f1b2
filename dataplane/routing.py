"""Routing: which backend holds the bytes of a given ``tenant/kind/name``.

Routes are tried in config order; the first whose glob matches ``tenant/kind/name`` wins,
and the default backend takes the rest. ``*`` matches across ``/``, so
``*/checkpoints/*`` sends every tenant's checkpoints, nested names included, to one
backend. Routing decides where *new* bytes go; readers always follow the locations the
catalog recorded, so changing a route never breaks an existing version.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from .config import Config

__all__ = ["Router"]


class Router:
    """Maps names to backend names according to a :class:`~dataplane.config.Config`."""

    def __init__(self, config: Config):
        self._routes = config.routes
        self._default = config.default_backend

    def backend_for(self, tenant: str, kind: str, name: str) -> str:
        """The backend that new versions of ``tenant/kind/name`` are written to."""
        path = f"{tenant}/{kind}/{name}"
        for route in self._routes:
            if fnmatchcase(path, route.match):
                return route.backend
        return self._default
