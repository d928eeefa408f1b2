"""Configuration: where the catalog lives, which backends exist, and the routes between them.

Where the config comes from, first match wins:

1. the ``config`` argument of :func:`dataplane.connect` (a path, a mapping, or a
   :class:`Config`);
2. the file named by the ``DATAPLANE_CONFIG`` environment variable;
3. ``dataplane.toml`` in the working directory;
4. the embedded default: an SQLite catalog and a local blob folder under ``./.dataplane/``.

Relative ``file://`` and ``sqlite:///`` paths are relative to the config file's folder
(to the working directory for a mapping or the embedded default). ``${VAR}`` in any string
is replaced by the environment variable ``VAR``. Every problem raises one
:class:`~dataplane.errors.ConfigError` naming the file, the key and the reason. Secrets
never appear in ``repr``, ``str`` or error messages.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .blob.registry import check_scheme, scheme_of
from .errors import ConfigError, InvalidNameError, UnknownBackendError
from .names import check_tenant
from .retry import RetryPolicy

__all__ = ["BackendConfig", "Config", "FeaturesConfig", "Route", "load_config", "mask_url"]

ENV_VAR = "DATAPLANE_CONFIG"
DEFAULT_FILE = "dataplane.toml"
DEFAULT_DIR = ".dataplane"
_TOP_KEYS = {"catalog", "defaults", "backends", "routes", "cache", "features"}
_FEATURE_KEYS = {"adapter", "dir", "online_url", "registry", "project"}
FEATURE_ADAPTERS = ("native", "feast")
_ONLINE_SCHEMES = ("sqlite:///", "redis://", "rediss://", "unix://")
CACHE_ENV_VAR = "DATAPLANE_CACHE_DIR"
_RETRY_KEYS = {"attempts", "deadline_s", "initial_wait_s", "max_wait_s"}
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SECRET_WORDS = ("secret", "token", "password", "key", "credential")
_URL_PASSWORD = re.compile(r"(://[^/:@]+):[^/@]*@")


def mask_url(url: str) -> str:
    """``scheme://user:***@host/...``: a URL safe to print."""
    return _URL_PASSWORD.sub(r"\1:***@", url)


def _is_secret(option: str) -> bool:
    return any(word in option.lower() for word in _SECRET_WORDS) and option != "endpoint_url"


@dataclass(frozen=True)
class BackendConfig:
    """One named backend: its URL, the adapter's options and an optional retry policy."""

    name: str
    url: str
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    retry: RetryPolicy | None = None

    def masked_options(self) -> dict[str, Any]:
        """The options with every secret-looking value replaced by ``***``."""
        return {k: "***" if _is_secret(k) else mask_url(v) if isinstance(v, str) else v
                for k, v in self.options.items()}

    def __repr__(self) -> str:
        return (f"BackendConfig(name={self.name!r}, url={mask_url(self.url)!r}, "
                f"options={self.masked_options()!r})")


@dataclass(frozen=True)
class Route:
    """Send names matching ``match`` (a ``tenant/kind/name`` glob) to ``backend``."""

    match: str
    backend: str


@dataclass(frozen=True)
class FeaturesConfig:
    """The ``[features]`` section: which adapter serves ``plane.features`` and where.

    ``dir`` holds dataplane's record of applied definitions and, by default, the embedded
    online store (``sqlite:///<dir>/online.db``) and Feast's repository. ``online_url`` is
    ``sqlite:///path`` or ``redis://host:port/db``; ``registry`` is Feast's registry (a
    file path or an SQL URL; the native adapter needs none); ``project`` namespaces the
    online values (default: the tenant).
    """

    adapter: str = "native"
    dir: Path = field(default_factory=lambda: (Path.cwd() / DEFAULT_DIR / "features").resolve())
    online_url: str | None = None
    registry: str | None = None
    project: str = "default"

    @property
    def online(self) -> str:
        """The online store URL, defaulting to the embedded SQLite file in ``dir``."""
        return self.online_url or f"sqlite:///{self.dir / 'online.db'}"

    def __repr__(self) -> str:
        online = mask_url(self.online_url) if self.online_url else None
        registry = mask_url(self.registry) if self.registry else None
        return (f"FeaturesConfig(adapter={self.adapter!r}, dir={str(self.dir)!r}, "
                f"online_url={online!r}, registry={registry!r}, project={self.project!r})")


@dataclass(frozen=True)
class Config:
    """A validated configuration; build it with :func:`load_config`."""

    catalog_url: str
    tenant: str
    default_backend: str
    backends: Mapping[str, BackendConfig]
    routes: tuple[Route, ...] = ()
    source: Path | None = None
    cache_dir: Path = field(default_factory=lambda: default_cache_dir(Path.cwd()))
    features: FeaturesConfig = field(default_factory=FeaturesConfig)

    def __repr__(self) -> str:
        return (f"Config(source={self.source}, catalog_url={mask_url(self.catalog_url)!r}, "
                f"tenant={self.tenant!r}, default_backend={self.default_backend!r}, "
                f"backends={list(self.backends.values())!r}, routes={list(self.routes)!r})")


def load_config(config: str | os.PathLike[str] | Mapping[str, Any] | Config | None = None
                ) -> Config:
    """Find, read and validate the configuration (see the module docstring for the order)."""
    if isinstance(config, Config):
        return config
    if isinstance(config, Mapping):
        return _Parser(None, Path.cwd()).parse(config)
    path = _find_file(config)
    if path is None:
        return default_config(Path.cwd())
    return _Parser(path, path.parent).parse(_read_toml(path))


def default_config(base: Path) -> Config:
    """The embedded default: SQLite catalog and local blobs under ``base/.dataplane``."""
    root = (base / DEFAULT_DIR).resolve()
    local = BackendConfig("local", (root / "blobs").as_uri())
    return Config(f"sqlite:///{root / 'catalog.db'}", "default", "local", {"local": local},
                  cache_dir=default_cache_dir(base),
                  features=FeaturesConfig(dir=root / "features"))


def default_cache_dir(base: Path) -> Path:
    """``$DATAPLANE_CACHE_DIR``, else ``base/.dataplane/cache``."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).resolve()
    return (base / DEFAULT_DIR / "cache").resolve()


def _find_file(config: str | os.PathLike[str] | None) -> Path | None:
    if config is not None:
        path = Path(config)
        if not path.is_file():
            raise ConfigError("config file not found", file=str(path))
        return path.resolve()
    if os.environ.get(ENV_VAR):
        path = Path(os.environ[ENV_VAR])
        if not path.is_file():
            raise ConfigError(f"config file named by ${ENV_VAR} not found", file=str(path))
        return path.resolve()
    candidate = Path.cwd() / DEFAULT_FILE
    return candidate.resolve() if candidate.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"not valid TOML: {error}", file=str(path)) from error
    except OSError as error:
        raise ConfigError(f"cannot read: {error.strerror}", file=str(path)) from error


class _Parser:
    """Validates one raw config mapping; every error names ``file`` and the key path."""

    def __init__(self, file: Path | None, base: Path):
        self.file = str(file) if file else None
        self.source = file
        self.base = base

    def error(self, key: str, reason: str, cls: type[ConfigError] = ConfigError) -> ConfigError:
        return cls(reason, file=self.file, key=key)

    def parse(self, raw: Mapping[str, Any]) -> Config:
        unknown = sorted(set(raw) - _TOP_KEYS)
        if unknown:
            raise self.error(unknown[0], f"unknown key (expected {', '.join(sorted(_TOP_KEYS))})")
        defaults = self.table(raw, "defaults", {"tenant", "backend"})
        backends = self.backends(raw.get("backends", {}))
        default_backend = self.string(defaults, "defaults.backend", "local")
        if not backends:
            backends = {"local": BackendConfig("local", self.file_url("file://.dataplane/blobs"))}
        if default_backend not in backends:
            raise self.error("defaults.backend", f"no backend named {default_backend!r} "
                             f"(defined: {', '.join(sorted(backends))})", UnknownBackendError)
        return Config(
            catalog_url=self.catalog_url(raw),
            tenant=self.tenant(defaults),
            default_backend=default_backend,
            backends=backends,
            routes=self.routes(raw.get("routes", []), backends),
            source=self.source,
            cache_dir=self.cache_dir(raw),
            features=self.features(raw, self.tenant(defaults)),
        )

    # ------------------------------------------------------------- sections
    def catalog_url(self, raw: Mapping[str, Any]) -> str:
        catalog = self.table(raw, "catalog", {"url"})
        url = self.string(catalog, "catalog.url", "sqlite:///.dataplane/catalog.db")
        if not url.startswith(("sqlite:", "postgresql")):
            raise self.error("catalog.url", f"unsupported catalog URL {mask_url(url)!r} "
                             "(use sqlite:///path or postgresql+psycopg://...)")
        return self.sqlite_url(url) if url.startswith("sqlite:///") else url

    def cache_dir(self, raw: Mapping[str, Any]) -> Path:
        cache = self.table(raw, "cache", {"dir"})
        if "dir" not in cache:
            return default_cache_dir(self.base)
        return (self.base / Path(self.string(cache, "cache.dir")).expanduser()).resolve()

    def features(self, raw: Mapping[str, Any], tenant: str) -> FeaturesConfig:
        section = self.table(raw, "features", _FEATURE_KEYS)
        adapter = self.string(section, "features.adapter", "native")
        if adapter not in FEATURE_ADAPTERS:
            raise self.error("features.adapter", f"unknown feature adapter {adapter!r} "
                             f"(known: {', '.join(FEATURE_ADAPTERS)})")
        folder = Path(self.string(section, "features.dir", f"{DEFAULT_DIR}/features"))
        online = self.string(section, "features.online_url") if "online_url" in section else None
        if online is not None:
            online = self.online_url(online)
        registry = self.string(section, "features.registry") if "registry" in section else None
        if registry is not None and "://" not in registry:
            registry = str((self.base / Path(registry).expanduser()).resolve())
        project = self.string(section, "features.project", tenant.replace("-", "_"))
        if not re.fullmatch(r"[A-Za-z0-9_]{1,63}", project):
            raise self.error("features.project", f"{project!r} must be 1-63 of A-Z a-z 0-9 _")
        return FeaturesConfig(adapter, (self.base / folder.expanduser()).resolve(), online,
                              registry, project)

    def online_url(self, url: str) -> str:
        if not url.startswith(_ONLINE_SCHEMES):
            raise self.error("features.online_url", f"unsupported online store "
                             f"{mask_url(url)!r} (use sqlite:///path or redis://host:port/db)")
        return self.sqlite_url(url) if url.startswith("sqlite:///") else url

    def tenant(self, defaults: Mapping[str, Any]) -> str:
        tenant = self.string(defaults, "defaults.tenant", "default")
        try:
            return check_tenant(tenant)
        except InvalidNameError as error:
            raise self.error("defaults.tenant", error.rule) from error

    def backends(self, raw: Any) -> dict[str, BackendConfig]:
        if not isinstance(raw, Mapping):
            raise self.error("backends", "must be a table of named backends")
        return {name: self.backend(name, spec) for name, spec in raw.items()}

    def backend(self, name: str, spec: Any) -> BackendConfig:
        key = f"backends.{name}"
        if not isinstance(spec, Mapping):
            raise self.error(key, "must be a table with at least a url")
        if "url" not in spec:
            raise self.error(f"{key}.url", "missing (every backend needs a url)")
        options = {k: self.expand(f"{key}.{k}", v) for k, v in spec.items()
                   if k not in ("url", "retry")}
        try:
            url = self.file_url(self.string(spec, f"{key}.url"))
            check_scheme(url)
        except UnknownBackendError as error:
            raise self.error(f"{key}.url", str(error), UnknownBackendError) from error
        except ConfigError as error:
            if error.key:  # already names file and key
                raise
            raise self.error(f"{key}.url", str(error)) from error
        return BackendConfig(name, url, options, self.retry(f"{key}.retry", spec.get("retry")))

    def retry(self, key: str, raw: Any) -> RetryPolicy | None:
        if raw is None:
            return None
        if not isinstance(raw, Mapping) or set(raw) - _RETRY_KEYS:
            allowed = ", ".join(sorted(_RETRY_KEYS))
            raise self.error(key, f"must be a table with keys among {allowed}")
        bad = [k for k, v in raw.items() if isinstance(v, bool) or not isinstance(v, int | float)]
        if bad:
            raise self.error(f"{key}.{bad[0]}", "must be a number")
        try:
            return RetryPolicy(**raw)
        except (TypeError, ValueError) as error:
            raise self.error(key, str(error)) from error

    def routes(self, raw: Any, backends: Mapping[str, BackendConfig]) -> tuple[Route, ...]:
        if not isinstance(raw, list):
            raise self.error("routes", "must be an array of tables ([[routes]])")
        routes = []
        for index, spec in enumerate(raw):
            key = f"routes[{index}]"
            if not isinstance(spec, Mapping) or set(spec) != {"match", "backend"}:
                raise self.error(key, "each route needs exactly 'match' and 'backend'")
            match = self.string(spec, f"{key}.match")
            if match.count("/") < 2:
                raise self.error(f"{key}.match", f"{match!r} must be a tenant/kind/name glob")
            backend = self.string(spec, f"{key}.backend")
            if backend not in backends:
                raise self.error(f"{key}.backend", f"no backend named {backend!r}",
                                 UnknownBackendError)
            routes.append(Route(match, backend))
        return tuple(routes)

    # --------------------------------------------------------------- values
    def table(self, raw: Mapping[str, Any], key: str, allowed: set[str]) -> Mapping[str, Any]:
        value = raw.get(key, {})
        if not isinstance(value, Mapping):
            raise self.error(key, "must be a table")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.error(f"{key}.{unknown[0]}",
                             f"unknown key (expected {', '.join(sorted(allowed))})")
        return value

    def string(self, raw: Mapping[str, Any], key: str, default: str | None = None) -> str:
        value = raw.get(key.rsplit(".", 1)[-1], default)
        if not isinstance(value, str) or not value:
            raise self.error(key, "must be a non-empty string")
        expanded = self.expand(key, value)
        assert isinstance(expanded, str)
        return expanded

    def expand(self, key: str, value: Any) -> Any:
        """Replace ``${VAR}`` in strings (recursively in tables and arrays)."""
        if isinstance(value, str):
            return _ENV_REF.sub(lambda m: self.env(key, m.group(1)), value)
        if isinstance(value, Mapping):
            return {k: self.expand(f"{key}.{k}", v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.expand(key, v) for v in value]
        return value

    def env(self, key: str, variable: str) -> str:
        if variable not in os.environ:
            raise self.error(key, f"environment variable {variable} is not set")
        return os.environ[variable]

    def file_url(self, url: str) -> str:
        if scheme_of(url) != "file":
            return url
        path = Path(url.removeprefix("file://"))
        return (path if path.is_absolute() else (self.base / path).resolve()).as_uri()

    def sqlite_url(self, url: str) -> str:
        path = Path(url.removeprefix("sqlite:///"))
        if str(path) in ("", ":memory:") or path.is_absolute():
            return url
        return f"sqlite:///{(self.base / path).resolve()}"
