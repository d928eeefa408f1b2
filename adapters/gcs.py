"""Google Cloud Storage blob adapter (gcsfs): ``gs://bucket/prefix`` (``gcs://`` too).

Options are gcsfs's own keyword arguments (``project``, ``token``, ``endpoint_url``, ...)
plus ``part_size``. When ``endpoint_url`` points at an emulator (fake-gcs-server), the
adapter turns off gcsfs's hierarchical-namespace probe
(``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false``), which otherwise waits out a 60 s gRPC
timeout on every call. gcsfs retries transient HTTP errors itself (``GCSFS_TRIES`` tries,
backoff), so dataplane's policy for this adapter defaults to a single attempt on top.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from dataplane.blob.port import Capabilities, translate_os_error
from dataplane.errors import DataplaneError, PermissionDeniedError, TransientError
from dataplane.retry import RetryPolicy

from ._fsspec import FsspecBlobStore, check_options, pop_part_size, split_bucket_url

__all__ = ["GCSBlobStore"]

TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
#: Tries of gcsfs's own HTTP retry loop. Its default, 6, sleeps 31-36 s in all before it
#: reports an unreachable endpoint; 3 sleep 3-5 s.
GCSFS_TRIES = 3


class GCSBlobStore(FsspecBlobStore):
    """Objects under ``<bucket>/<prefix>/`` of a GCS (or emulated GCS) service."""

    capabilities = Capabilities(atomic_put_if_absent=True, server_side_copy=True,
                                request_concurrency=32)

    @classmethod
    def from_url(cls, url: str, options: dict[str, Any], retry: RetryPolicy | None
                 ) -> GCSBlobStore:
        if options.get("endpoint_url"):
            os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
        import gcsfs

        root = split_bucket_url(url, url.split("://", 1)[0])
        part_size = pop_part_size(options)
        check_options(options, gcsfs.GCSFileSystem, "gs")
        options.setdefault("requests_timeout", _silent_endpoint_timeout())
        fs = _filesystem_class()(skip_instance_cache=True, use_listings_cache=False, **options)
        return cls(fs, url, root, part_size=part_size, retry=retry or RetryPolicy(attempts=1),
                   endpoint=options.get("endpoint_url"))

    def _is_unsatisfiable_range(self, error: Exception) -> bool:
        return getattr(error, "code", None) == 416 or "416" in str(error)

    def _translate(self, error: Exception, what: str) -> DataplaneError:
        return translate_gcs_error(error, self._with_endpoint(what))


def _silent_endpoint_timeout() -> Any:
    """Per-request socket timeouts (no total, so large transfers are unaffected): an
    endpoint that accepts connections but never answers fails within ~25 s in all."""
    import aiohttp

    return aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=6)


@functools.cache
def _filesystem_class() -> Any:
    """``gcsfs.GCSFileSystem`` with its HTTP retry loop cut to ``GCSFS_TRIES`` tries.

    gcsfs fixes the count in a decorator (``retry_request(retries=6)``) on its request
    methods, so they are re-wrapped from the undecorated functions (``__wrapped__``).
    The download orchestrator gets one try: its requests are already retried, and gcsfs
    would otherwise multiply the two loops.
    """
    import logging

    import gcsfs
    from gcsfs.retry import retry_request

    # gcsfs logs every failed request with a traceback; without this, Python's last-resort
    # handler prints them all on stderr. Applications that configure logging still see them.
    logging.getLogger("gcsfs").addHandler(logging.NullHandler())

    base = gcsfs.GCSFileSystem
    tries = {"_request": GCSFS_TRIES, "_get_file_request": GCSFS_TRIES,
             "_get_file_concurrent": 1}
    methods = {
        name: retry_request(retries=count)(getattr(base, name).__wrapped__)
        for name, count in tries.items() if hasattr(getattr(base, name, None), "__wrapped__")
    }
    return type("BoundedRetryGCSFileSystem", (base,), methods)


def translate_gcs_error(error: Exception, what: str) -> DataplaneError:
    """Map gcsfs/aiohttp exceptions to dataplane's errors."""
    code = getattr(error, "code", None)
    if code in TRANSIENT_STATUS:
        return TransientError(f"{what}: HTTP {code}: {error}")
    # gcsfs raises a plain OSError("Forbidden: ...") for 403, with no status attribute
    forbidden = type(error) is OSError and str(error).startswith("Forbidden")
    if code in (401, 403) or forbidden:
        return PermissionDeniedError(f"{what}: permission denied: {error}")
    if type(error).__module__.startswith("aiohttp") or isinstance(
        error, ConnectionError | TimeoutError
    ):
        return TransientError(f"{what}: cannot reach the endpoint: {type(error).__name__}: {error}")
    return translate_os_error(error, what)
