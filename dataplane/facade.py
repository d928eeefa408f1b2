"""The :class:`DataPlane` facade: one object that holds the config, the catalog and the
blob stores, and that every domain store, the CLI and the sidecar start from.

Call order: :func:`connect` validates the config and opens (creating or upgrading) the
catalog; blob stores are opened lazily, on first use of each backend, so a backend whose
extra is not installed only fails when something actually routes to it. ``close()``
releases everything; the facade is also a context manager.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .blob import BlobStore, open_store
from .config import Config, load_config
from .errors import ConfigError, UnknownBackendError
from .names import Address, Kind, check_kind, check_name, check_tenant, parse_address
from .routing import Router

if TYPE_CHECKING:  # the catalog pulls in SQLAlchemy: imported by connect(), not at import
    from .artifacts import GcReport
    from .cache import NodeCache
    from .catalog import Catalog
    from .checkpoints import CheckpointStore
    from .datasets import DatasetStore
    from .features import FeatureStore
    from .migrate import Migrations
    from .models import ModelStore

__all__ = ["DataPlane", "connect"]


class DataPlane:
    """Entry point to dataplane; build it with :func:`connect`."""

    def __init__(self, config: Config, catalog: Catalog):
        self.config = config
        self.catalog = catalog
        self.router = Router(config)
        self._stores: dict[str, BlobStore] = {}
        self._lock = threading.Lock()
        self._models: ModelStore | None = None
        self._datasets: DatasetStore | None = None
        self._checkpoints: CheckpointStore | None = None
        self._features: FeatureStore | None = None
        self._cache: NodeCache | None = None

    @property
    def cache(self) -> NodeCache:
        """The node-local cache (``[cache] dir``, ``$DATAPLANE_CACHE_DIR``, or
        ``.dataplane/cache``) that ``fetch`` fills and every process on the node shares."""
        from .cache import NodeCache

        if self._cache is None:
            self._cache = NodeCache(self.config.cache_dir)
        return self._cache

    @property
    def models(self) -> ModelStore:
        """Model artifacts: publish, resolve, fetch, open, aliases, versions, delete."""
        from .models import ModelStore

        if self._models is None:
            self._models = ModelStore(self, "models", self.cache)
        return self._models

    @property
    def datasets(self) -> DatasetStore:
        """Tabular datasets in Arrow/Parquet: write, read, iter_batches, plus everything
        models have (versions, aliases, fetch, delete)."""
        from .datasets import DatasetStore

        if self._datasets is None:
            self._datasets = DatasetStore(self, "datasets", self.cache)
        return self._datasets

    @property
    def checkpoints(self) -> CheckpointStore:
        """Training checkpoints: save, save_async, load, read, steps, latest, delete."""
        from .checkpoints import CheckpointStore

        with self._lock:
            if self._checkpoints is None:
                self._checkpoints = CheckpointStore(self)
            return self._checkpoints

    @property
    def features(self) -> FeatureStore:
        """Features: apply definitions, materialize, get_online, get_historical, push —
        served by the ``[features] adapter`` (native by default, or Feast)."""
        from .features import FeatureStore

        with self._lock:
            if self._features is None:
                self._features = FeatureStore(self)
            return self._features

    @property
    def migrate(self) -> Migrations:
        """Migrations between backends: ``plan``, ``run``, ``status``, ``verify``,
        ``rollback``, ``cleanup`` (see :mod:`dataplane.migrate`)."""
        from .migrate import Migrations

        return Migrations(self)

    def gc(self, *, grace_period_s: float = 3600.0, dry_run: bool = False) -> GcReport:
        """Delete stored objects no live model or dataset version references, once older
        than ``grace_period_s``; ``dry_run`` only lists them."""
        from .artifacts import collect_garbage

        return collect_garbage(self, ("models", "datasets"), grace_period_s=grace_period_s,
                               dry_run=dry_run)

    @property
    def tenant(self) -> str:
        """The tenant that short addresses (``name@ref``) belong to."""
        return self.config.tenant

    def address(self, ref: str, kind: Kind) -> Address:
        """Parse ``name@ref`` (in this tenant) or a full ``dp://`` address of ``kind``."""
        return parse_address(ref, tenant=self.tenant, kind=kind)

    def store(self, backend: str) -> BlobStore:
        """The blob store of a configured backend, opened on first use and then reused."""
        with self._lock:
            if backend not in self._stores:
                self._stores[backend] = self._open(backend)
            return self._stores[backend]

    def check_backends(self) -> None:
        """Open every configured backend (no I/O), so option errors surface now, each
        naming the file and the backend's key."""
        for backend in self.config.backends:
            self.store(backend)

    def route(self, kind: str, name: str, tenant: str | None = None) -> str:
        """The backend that new bytes of ``tenant/kind/name`` go to: the configured route,
        then any route override in the catalog (a migration's redirect)."""
        tenant = check_tenant(tenant or self.tenant)
        return self.router.backend_for(tenant, check_kind(kind), check_name(name),
                                       self.catalog.route_overrides())

    def close(self) -> None:
        """Close every opened blob store and the catalog."""
        with self._lock:
            stores, self._stores = list(self._stores.values()), {}
        if self._checkpoints is not None:
            self._checkpoints.close()  # waits for async saves in flight
        if self._features is not None:
            self._features.close()
        for store in stores:
            store.close()
        self.catalog.close()

    def __enter__(self) -> DataPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DataPlane(tenant={self.tenant!r}, config={self.config!r})"

    def _open(self, backend: str) -> BlobStore:
        spec = self.config.backends.get(backend)
        if spec is None:
            raise UnknownBackendError(
                f"no backend named {backend!r} (configured: {', '.join(self.config.backends)})"
            )
        try:
            return open_store(spec.url, dict(spec.options), spec.retry)
        except ConfigError as error:
            source = str(self.config.source) if self.config.source else None
            raise type(error)(error.reason, file=source, key=f"backends.{backend}") from error


def connect(config: str | os.PathLike[str] | Mapping[str, Any] | Config | None = None
            ) -> DataPlane:
    """Validate the configuration, open the catalog, and return the facade.

    ``config`` is a TOML file path, a mapping of the same shape, a :class:`Config`, or
    ``None`` to look for ``$DATAPLANE_CONFIG``, then ``./dataplane.toml``, then fall back
    to the embedded default under ``./.dataplane/``.
    """
    from .catalog import open_catalog

    loaded = load_config(config)
    return DataPlane(loaded, open_catalog(loaded.catalog_url))
