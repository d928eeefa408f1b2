"""Every error dataplane raises, and the HTTP status the sidecar maps it to.

Backends raise their own exceptions (``botocore``'s ``ClientError``, ``OSError``,
``aiohttp``'s connection errors, ...). Adapters translate them at the port boundary,
so code above the blob port only ever sees this hierarchy::

    DataplaneError (500)
    ├── ConfigError (500)                    a config file, key or value is wrong
    │   ├── UnknownBackendError (500)        a backend name or URL scheme nobody serves
    │   └── MissingDependencyError (500)     an optional extra is not installed
    ├── InvalidNameError (400)               a name, address, ref or key breaks a rule
    ├── InvalidSourceError (400)             data given to publish/write is unusable
    │   └── SchemaMismatchError (400)        a dataset's schema differs from the required one
    ├── InvalidDefinitionError (400)         feature definitions contradict themselves
    ├── InvalidEntityKeyError (400)          entity rows miss a join key, add one, or mistype it
    ├── NotFoundError (404)                  no such object, name, version or alias
    │   └── UnknownFeatureError (404)        no such feature, feature view or feature service
    ├── AlreadyExistsError (409)             put-if-absent on an existing key, ...
    ├── ConflictError (409)                  the state changed under a concurrent writer
    ├── PreconditionFailedError (412)        a conditional request did not hold
    ├── PermissionDeniedError (403)          the backend refused the credentials
    ├── IntegrityError (502)                 bytes do not match their recorded digest
    ├── NotSupportedError (501)              the backend lacks a capability
    └── BackendError (502)                   the backend failed permanently
        └── TransientError (503)             throttled, 5xx, reset, timed out: retryable
            └── BackendUnavailableError (503) still failing after the bounded retries

``TransientError`` is the only class the retry policy retries. When the retries run out
the adapter raises ``BackendUnavailableError``, which names the backend, the number of
attempts and the time spent.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExistsError",
    "BackendError",
    "BackendUnavailableError",
    "ConfigError",
    "ConflictError",
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
    "SchemaMismatchError",
    "TransientError",
    "UnknownBackendError",
    "UnknownFeatureError",
]


class DataplaneError(Exception):
    """Base of every dataplane error; ``http_status`` is what the sidecar answers."""

    http_status: int = 500


class ConfigError(DataplaneError):
    """The configuration is invalid.

    The message names the file (when there is one), the key and the reason, e.g.
    ``dataplane.toml: backends.lake.url: unsupported scheme 'ftp'``.
    """

    def __init__(self, reason: str, *, file: str | None = None, key: str | None = None):
        self.reason = reason
        self.file = file
        self.key = key
        where = ": ".join(part for part in (file, key) if part)
        super().__init__(f"{where}: {reason}" if where else reason)


class UnknownBackendError(ConfigError):
    """A backend name that the config does not define, or a URL scheme no adapter serves."""


class MissingDependencyError(ConfigError):
    """An adapter needs an optional extra that is not installed; the message says how."""


class InvalidNameError(DataplaneError):
    """A name, address, ref or blob key breaks a rule; ``rule`` says which one."""

    http_status = 400

    def __init__(self, value: str, rule: str):
        self.value = value
        self.rule = rule
        super().__init__(f"invalid name {value!r}: {rule}")


class InvalidSourceError(DataplaneError):
    """What was given to publish or write cannot be used: an empty folder, a symlink that
    leaves the source, unsupported data."""

    http_status = 400


class SchemaMismatchError(InvalidSourceError):
    """A dataset write does not match the schema it was required to have; the message
    names the columns that differ."""


class NotFoundError(DataplaneError):
    """The object, name, version or alias does not exist."""

    http_status = 404


class InvalidDefinitionError(DataplaneError):
    """Feature definitions are inconsistent: a view names an undefined entity, a service an
    undefined feature, two objects share a name, a dtype or TTL is not understood."""

    http_status = 400


class InvalidEntityKeyError(DataplaneError):
    """Entity rows given to a feature lookup lack a join key the features need, carry a key
    no requested view has, or hold a value of the wrong type; the message names the key."""

    http_status = 400


class UnknownFeatureError(NotFoundError):
    """A feature reference names a feature view, feature or feature service that is not
    applied; the message names it and what exists instead."""


class AlreadyExistsError(DataplaneError):
    """The target already exists and the operation must not overwrite it."""

    http_status = 409


class ConflictError(DataplaneError):
    """A concurrent writer changed the state this operation depended on."""

    http_status = 409


class PreconditionFailedError(DataplaneError):
    """A conditional request's precondition did not hold."""

    http_status = 412


class PermissionDeniedError(DataplaneError):
    """The backend refused the operation for these credentials."""

    http_status = 403


class IntegrityError(DataplaneError):
    """Bytes read back do not match the digest recorded when they were written."""

    http_status = 502

    def __init__(self, obj: str, expected: str, actual: str, detail: str = ""):
        self.obj = obj
        self.expected = expected
        self.actual = actual
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"integrity check failed for {obj}: expected {expected}, got {actual}{extra}"
        )


class NotSupportedError(DataplaneError):
    """The backend does not offer the capability the operation needs."""

    http_status = 501


class BackendError(DataplaneError):
    """The storage backend failed in a way a retry will not fix."""

    http_status = 502


class TransientError(BackendError):
    """A fault worth retrying: throttling, a 5xx, a reset connection, a timeout."""

    http_status = 503


class BackendUnavailableError(TransientError):
    """The backend kept failing transiently until the retry policy gave up."""
