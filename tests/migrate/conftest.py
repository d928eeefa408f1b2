"""Fixtures for the migration tests: one plane over local disk, S3 (moto) and GCS
(fake-gcs-server), with an SQLite catalog; its config also as a TOML file for the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import dataplane
from dataplane.facade import DataPlane
from dataplane.testing.servers import (
    Endpoint,
    create_gcs_bucket,
    create_s3_bucket,
    gcs_options,
    s3_options,
)


@dataclass
class Site:
    """A test plane's config (mapping and TOML file) and its working folder."""

    config: dict[str, Any]
    path: Path
    work: Path

    def connect(self) -> DataPlane:
        return dataplane.connect(self.config)


def toml(config: dict[str, Any]) -> str:
    """The config mapping as TOML (tables of strings, numbers and nested tables)."""
    lines = [f"[catalog]\nurl = {json.dumps(config['catalog']['url'])}",
             f"[defaults]\nbackend = {json.dumps(config['defaults']['backend'])}",
             f"[cache]\ndir = {json.dumps(config['cache']['dir'])}"]
    for name, spec in config["backends"].items():
        plain = {k: v for k, v in spec.items() if not isinstance(v, dict)}
        lines.append(f"[backends.{name}]\n" + "\n".join(
            f"{k} = {json.dumps(v)}" for k, v in plain.items()))
        for key, table in spec.items():
            if isinstance(table, dict):
                lines.append(f"[backends.{name}.{key}]\n" + "\n".join(
                    f"{k} = {json.dumps(v)}" for k, v in table.items()))
    return "\n\n".join(lines) + "\n"


def backend_spec(kind: str, request: pytest.FixtureRequest, tmp: Path) -> dict[str, Any]:
    fast = {"attempts": 3, "deadline_s": 5.0, "initial_wait_s": 0.05, "max_wait_s": 0.5}
    if kind == "local":
        return {"url": (tmp / "blobs").as_uri()}
    if kind == "s3":
        endpoint: Endpoint = request.getfixturevalue("s3_endpoint")
        bucket = create_s3_bucket(endpoint.endpoint_url)
        return {"url": f"s3://{bucket}/lake", **s3_options(endpoint.endpoint_url),
                "retry": fast}
    endpoint = request.getfixturevalue("gcs_endpoint")
    bucket = create_gcs_bucket(endpoint.endpoint_url)
    return {"url": f"gs://{bucket}/lake", **gcs_options(endpoint.endpoint_url), "retry": fast}


@pytest.fixture
def new_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], dict[str, Any]]:
    """``new_backend(kind)``: the config of one more fresh backend (a new bucket)."""
    return lambda kind: backend_spec(kind, request, tmp_path / kind)


@pytest.fixture
def make_site(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Site]:
    """``make_site(default, *others, extra=None)``: backends named like their kind."""

    def make(default: str, *others: str, extra: dict[str, Any] | None = None) -> Site:
        backends = {kind: backend_spec(kind, request, tmp_path) for kind in (default, *others)}
        backends.update(extra or {})
        config = {"catalog": {"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
                  "defaults": {"backend": default}, "backends": backends,
                  "cache": {"dir": str(tmp_path / "cache")}}
        path = tmp_path / "dataplane.toml"
        path.write_text(toml(config))
        work = tmp_path / "work"
        work.mkdir(exist_ok=True)
        return Site(config, path, work)

    return make


@pytest.fixture
def plane_of() -> Iterator[Callable[[Site], DataPlane]]:
    """Connect to a site; every plane opened is closed after the test."""
    opened: list[DataPlane] = []

    def connect(site: Site) -> DataPlane:
        plane = site.connect()
        opened.append(plane)
        return plane

    yield connect
    for plane in opened:
        plane.close()
