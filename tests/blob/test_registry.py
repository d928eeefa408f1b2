"""Finding the blob adapter for a URL: built-in schemes, errors, and custom adapters."""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Any, ClassVar

import pytest

from dataplane.blob import BlobStore, known_schemes, open_store, register_adapter
from dataplane.errors import ConfigError, MissingDependencyError, UnknownBackendError
from dataplane.retry import RetryPolicy
from dataplane.testing.servers import free_port, gcs_options, s3_options

CLOSED = f"http://127.0.0.1:{free_port()}"  # opening a store makes no request


def unique_scheme(stem: str) -> str:
    """A scheme no other test registers (the registry has no way to unregister)."""
    return f"{stem}-{uuid.uuid4().hex[:8]}"


# ----------------------------------------------------------------------- lookups
def test_builtin_schemes_are_known() -> None:
    assert {"file", "memory", "s3", "gs", "gcs"} <= set(known_schemes())
    assert known_schemes() == sorted(known_schemes())


@pytest.mark.parametrize(
    ("url", "options", "adapter"),
    [
        ("file:///tmp/dataplane-registry-test", {}, "dataplane_adapters.local.LocalBlobStore"),
        ("memory://registry-test", {}, "dataplane_adapters.memory.MemoryBlobStore"),
        ("s3://bucket/prefix", s3_options(CLOSED), "dataplane_adapters.s3.S3BlobStore"),
        ("gs://bucket/prefix", gcs_options(CLOSED), "dataplane_adapters.gcs.GCSBlobStore"),
        ("gcs://bucket/prefix", gcs_options(CLOSED), "dataplane_adapters.gcs.GCSBlobStore"),
    ],
    ids=lambda value: value.split(":")[0] if isinstance(value, str) else "",
)
def test_scheme_selects_its_adapter(url: str, options: dict[str, Any], adapter: str) -> None:
    store = open_store(url, options)
    assert f"{type(store).__module__}.{type(store).__name__}" == adapter
    assert isinstance(store, BlobStore)


def test_open_store_does_not_consume_the_callers_options() -> None:
    options = s3_options(CLOSED) | {"part_size": 8 * 2**20}
    before = dict(options)
    open_store("s3://bucket", options)
    assert options == before


# ------------------------------------------------------------------------ errors
def test_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(UnknownBackendError) as caught:
        open_store("ftp://host/path")
    message = str(caught.value)
    assert "ftp://" in message
    for scheme in ("file", "memory", "s3", "gs", "gcs"):
        assert scheme in message


def test_url_without_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no scheme"):
        open_store("just/a/path")


@pytest.mark.parametrize(
    ("url", "options", "bad"),
    [
        ("memory://x", {"colour": "blue"}, "colour"),
        ("file:///tmp/dataplane-registry-test", {"fsyncc": False}, "fsyncc"),
        ("s3://bucket", s3_options(CLOSED) | {"endpoint": CLOSED}, "endpoint"),
        ("gs://bucket", gcs_options(CLOSED) | {"tokn": "anon"}, "tokn"),
    ],
    ids=["memory", "file", "s3", "gs"],
)
def test_unknown_option_is_a_config_error_naming_it(
    url: str, options: dict[str, Any], bad: str
) -> None:
    with pytest.raises(ConfigError, match=bad):
        open_store(url, options)


@pytest.mark.parametrize("scheme", ["s3", "gs"])
def test_part_size_below_the_s3_minimum_is_refused(scheme: str) -> None:
    options = s3_options(CLOSED) if scheme == "s3" else gcs_options(CLOSED)
    with pytest.raises(ConfigError, match="part_size"):
        open_store(f"{scheme}://bucket", options | {"part_size": 2**20})


@pytest.mark.parametrize(("scheme", "module", "extra"),
                         [("s3", "s3fs", "s3"), ("gs", "gcsfs", "gcs")])
def test_missing_client_library_says_what_to_install(
    scheme: str, module: str, extra: str
) -> None:
    # The client libraries are installed here, so a real "not installed" needs another
    # process: sys.modules[name] = None is the standard library's way to make an import
    # of that name fail (and find_spec report it missing). Nothing of dataplane is patched.
    script = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "from dataplane.blob import open_store\n"
        "from dataplane.errors import MissingDependencyError\n"
        "try:\n"
        f"    open_store('{scheme}://bucket/prefix')\n"
        "except MissingDependencyError as error:\n"
        "    print('MissingDependencyError:', error)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("MissingDependencyError:"), result.stdout
    assert f"pip install 'dataplane[{extra}]'" in result.stdout
    assert module in result.stdout


def test_registered_adapter_with_a_missing_requirement() -> None:
    scheme = unique_scheme("needy")
    register_adapter(scheme, f"{__name__}:CustomStore", requires=("no_such_package_xyz",))
    with pytest.raises(MissingDependencyError, match="no_such_package_xyz"):
        open_store(f"{scheme}://x")


def test_registered_adapter_whose_module_does_not_import() -> None:
    scheme = unique_scheme("broken")
    register_adapter(scheme, "no_such_module_xyz.adapter:Store")
    with pytest.raises(MissingDependencyError, match="could not be imported"):
        open_store(f"{scheme}://x")


# ---------------------------------------------------------------- custom adapters
class CustomStore:
    """A custom adapter: any class with ``from_url``; it returns a memory store."""

    opened: ClassVar[list[tuple[str, dict[str, Any], RetryPolicy | None]]] = []

    @classmethod
    def from_url(cls, url: str, options: dict[str, Any], retry: RetryPolicy | None
                 ) -> BlobStore:
        cls.opened.append((url, options, retry))
        return open_store(f"memory://custom-{url.split('://', 1)[1]}")


def test_register_adapter_serves_a_custom_scheme() -> None:
    scheme = unique_scheme("custom")
    register_adapter(scheme, f"{__name__}:CustomStore")
    assert scheme in known_schemes()
    policy = RetryPolicy(attempts=2)
    store = open_store(f"{scheme}://team-a", {"flavour": "test"}, policy)
    assert CustomStore.opened[-1] == (f"{scheme}://team-a", {"flavour": "test"}, policy)
    store.put("k", b"v")
    assert store.get("k") == b"v"


def test_register_adapter_can_serve_an_existing_adapter_under_a_new_scheme() -> None:
    scheme = unique_scheme("mem")
    register_adapter(scheme, "dataplane_adapters.memory:MemoryBlobStore")
    assert type(open_store(f"{scheme}://x")).__name__ == "MemoryBlobStore"
