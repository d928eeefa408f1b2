"""Fixtures for the checkpoint tests: a fresh site per test on local disk, S3 and GCS.

``ckpt_site`` is parametrized over ``local`` (a blob folder under ``tmp_path``), ``s3`` (a
fresh bucket on the session's moto server) and ``gcs`` (a fresh bucket on the session's
fake-gcs-server), each under a ``prefix/``, with an SQLite catalog under ``tmp_path``.
``ckpt_plane`` is a connected plane on that site, closed after the test. ``rich_saved``
saves :func:`ckpt_support.rich_state` once per backend for the tests that only read it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ckpt_support import (
    CkptSite,
    RichSaved,
    assert_same,
    local_site,
    remote_site,
    rich_state,
    small_store,
)

from dataplane.facade import DataPlane
from dataplane.testing.servers import (
    Endpoint,
    create_gcs_bucket,
    create_s3_bucket,
    disable_gcsfs_hns_probe,
    gcs_options,
    s3_options,
)

BACKENDS = ["local", "s3", "gcs"]


@pytest.fixture(scope="session")
def ckpt_raw_s3(s3_endpoint: Endpoint) -> Any:
    """A plain s3fs client on the session's moto server (no dataplane code involved)."""
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False,
                             **s3_options(s3_endpoint.endpoint_url))


@pytest.fixture(scope="session")
def ckpt_raw_gcs(gcs_endpoint: Endpoint) -> Any:
    """A plain gcsfs client on the session's fake-gcs-server."""
    disable_gcsfs_hns_probe()
    import gcsfs

    return gcsfs.GCSFileSystem(skip_instance_cache=True, use_listings_cache=False,
                               **gcs_options(gcs_endpoint.endpoint_url))


def make_site(backend: str, tmp: Path, request: pytest.FixtureRequest) -> CkptSite:
    tmp.mkdir(parents=True, exist_ok=True)
    if backend == "local":
        return local_site(tmp)
    if backend == "s3":
        endpoint: Endpoint = request.getfixturevalue("s3_endpoint")
        bucket = create_s3_bucket(endpoint.endpoint_url)
        return remote_site("s3", tmp, f"s3://{bucket}/prefix",
                           s3_options(endpoint.endpoint_url), f"{bucket}/prefix",
                           request.getfixturevalue("ckpt_raw_s3"))
    endpoint = request.getfixturevalue("gcs_endpoint")
    bucket = create_gcs_bucket(endpoint.endpoint_url)
    return remote_site("gcs", tmp, f"gs://{bucket}/prefix",
                       gcs_options(endpoint.endpoint_url), f"{bucket}/prefix",
                       request.getfixturevalue("ckpt_raw_gcs"))


@pytest.fixture
def ckpt_site_factory(request: pytest.FixtureRequest) -> Callable[[str, Path], CkptSite]:
    """``ckpt_site_factory(backend, folder)``: for tests that pick their backends."""
    return lambda backend, tmp: make_site(backend, tmp, request)


@pytest.fixture(params=BACKENDS)
def ckpt_site(request: pytest.FixtureRequest, tmp_path: Path) -> CkptSite:
    return make_site(request.param, tmp_path / "site", request)


@pytest.fixture
def ckpt_plane(ckpt_site: CkptSite) -> Iterator[DataPlane]:
    with ckpt_site.plane() as plane:
        yield plane


@pytest.fixture(scope="session", params=BACKENDS)
def rich_saved(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[RichSaved]:
    site = make_site(request.param, tmp_path_factory.mktemp(f"rich-{request.param}"), request)
    state = rich_state()
    expected = copy.deepcopy(state)
    with site.plane() as plane:
        store = small_store(plane)
        checkpoint = store.save("rich", 7, state, metadata={"loss": 0.25, "tag": "a"})
        assert_same(state, expected)  # saving leaves the caller's state untouched
        yield RichSaved(site, plane, store, expected, checkpoint)
        store.close()
