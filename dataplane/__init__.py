"""dataplane: one stable logical address and one small API for ML models, datasets,
features and checkpoints, whichever storage backend holds them.

>>> import dataplane
>>> plane = dataplane.connect()          # dataplane.toml, $DATAPLANE_CONFIG, or ./.dataplane/
"""

from .config import BackendConfig, Config, Route, load_config
from .errors import (
    AlreadyExistsError,
    BackendError,
    BackendUnavailableError,
    ConfigError,
    ConflictError,
    DataplaneError,
    IntegrityError,
    InvalidDefinitionError,
    InvalidEntityKeyError,
    InvalidNameError,
    InvalidSourceError,
    MissingDependencyError,
    NotFoundError,
    NotSupportedError,
    PermissionDeniedError,
    PreconditionFailedError,
    SchemaMismatchError,
    TransientError,
    UnknownBackendError,
    UnknownFeatureError,
)
from .facade import DataPlane, connect
from .names import Address, Ref, parse_address

__version__ = "0.1.0"

__all__ = [
    "Address",
    "AlreadyExistsError",
    "BackendConfig",
    "BackendError",
    "BackendUnavailableError",
    "Config",
    "ConfigError",
    "ConflictError",
    "DataPlane",
    "DataplaneError",
    "IntegrityError",
    "InvalidDefinitionError",
    "InvalidEntityKeyError",
    "InvalidNameError",
    "InvalidSourceError",
    "MissingDependencyError",
    "NotFoundError",
    "NotSupportedError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "Ref",
    "Route",
    "SchemaMismatchError",
    "TransientError",
    "UnknownBackendError",
    "UnknownFeatureError",
    "__version__",
    "connect",
    "load_config",
    "parse_address",
]
