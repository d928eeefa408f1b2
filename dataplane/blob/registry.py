"""Find the blob adapter for a URL scheme, importing it only when it is first used.

Adapters are registered three ways, later ones winning:

1. the built-in table below (the adapters shipped in ``dataplane_adapters``);
2. entry points in the ``dataplane.blob_adapters`` group (``scheme = "module:Class"``),
   which is how an adapter in another distribution plugs in;
3. :func:`register_adapter` at run time.

An adapter class provides ``from_url(url, options, retry) -> BlobStore``. Before importing
one, the registry checks that the client library it needs is installed and otherwise
raises :class:`~dataplane.errors.MissingDependencyError` with the ``pip install`` line.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol
from urllib.parse import urlsplit

from ..errors import ConfigError, MissingDependencyError, UnknownBackendError
from ..retry import RetryPolicy
from .port import BlobStore

__all__ = ["AdapterSpec", "known_schemes", "open_store", "register_adapter"]

ENTRY_POINT_GROUP = "dataplane.blob_adapters"


class AdapterFactory(Protocol):
    def from_url(
        self, url: str, options: dict[str, Any], retry: RetryPolicy | None
    ) -> BlobStore: ...


@dataclass(frozen=True)
class AdapterSpec:
    """Where an adapter lives and what it needs installed."""

    target: str  # "module:Class"
    requires: tuple[str, ...] = ()
    extra: str | None = None
    loaded: dict[str, AdapterFactory] = field(default_factory=dict, compare=False)

    def load(self, scheme: str) -> AdapterFactory:
        if "cls" not in self.loaded:
            self._check_requirements(scheme)
            module_name, _, attr = self.target.partition(":")
            try:
                module = importlib.import_module(module_name)
            except ImportError as error:
                raise MissingDependencyError(
                    f"the {scheme}:// adapter could not be imported ({error}){self._hint()}"
                ) from error
            self.loaded["cls"] = getattr(module, attr)
        return self.loaded["cls"]

    def _check_requirements(self, scheme: str) -> None:
        for module in self.requires:
            if importlib.util.find_spec(module) is None:
                raise MissingDependencyError(
                    f"{scheme}:// URLs need the '{module}' package{self._hint()}"
                )

    def _hint(self) -> str:
        return f": pip install 'dataplane[{self.extra}]'" if self.extra else ""


_BUILTIN: dict[str, AdapterSpec] = {
    "file": AdapterSpec("dataplane_adapters.local:LocalBlobStore"),
    "memory": AdapterSpec("dataplane_adapters.memory:MemoryBlobStore"),
    "s3": AdapterSpec("dataplane_adapters.s3:S3BlobStore", ("s3fs",), "s3"),
    "gs": AdapterSpec("dataplane_adapters.gcs:GCSBlobStore", ("gcsfs",), "gcs"),
    "gcs": AdapterSpec("dataplane_adapters.gcs:GCSBlobStore", ("gcsfs",), "gcs"),
}
_runtime: dict[str, AdapterSpec] = {}
_from_entry_points: dict[str, AdapterSpec] | None = None


def register_adapter(scheme: str, target: str, *, requires: tuple[str, ...] = ()) -> None:
    """Serve ``scheme://`` URLs with the adapter class at ``target`` (``"module:Class"``)."""
    _runtime[scheme] = AdapterSpec(target, requires)


def _entry_point_specs() -> dict[str, AdapterSpec]:
    global _from_entry_points
    if _from_entry_points is None:
        found = entry_points(group=ENTRY_POINT_GROUP)
        builtin_targets = {spec.target for spec in _BUILTIN.values()}
        _from_entry_points = {
            ep.name: AdapterSpec(ep.value) for ep in found if ep.value not in builtin_targets
        }
    return _from_entry_points


def _spec_for(scheme: str) -> AdapterSpec:
    for table in (_runtime, _entry_point_specs(), _BUILTIN):
        if scheme in table:
            return table[scheme]
    raise UnknownBackendError(
        f"no blob adapter serves {scheme}:// URLs (known: {', '.join(known_schemes())})"
    )


def known_schemes() -> list[str]:
    """Every scheme some adapter serves."""
    return sorted({*_BUILTIN, *_entry_point_specs(), *_runtime})


def scheme_of(url: str) -> str:
    """The scheme of a backend URL; a URL without one is a configuration error."""
    scheme = urlsplit(url).scheme
    if not scheme:
        raise ConfigError(f"backend URL {url!r} has no scheme (e.g. file://, s3://)")
    return scheme


def check_scheme(url: str) -> None:
    """Raise ``UnknownBackendError`` unless some adapter serves this URL's scheme."""
    _spec_for(scheme_of(url))


def open_store(
    url: str, options: dict[str, Any] | None = None, retry: RetryPolicy | None = None
) -> BlobStore:
    """Open the blob store at ``url`` with the adapter registered for its scheme."""
    scheme = scheme_of(url)
    factory = _spec_for(scheme).load(scheme)
    return factory.from_url(url, dict(options or {}), retry)
