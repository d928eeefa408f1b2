"""Fixtures: every test that takes ``plane`` runs once per backend: a local folder, and S3
over HTTP (moto's server, the session's ``s3_endpoint``). Each test gets a fresh working
directory, catalog and node cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from dataset_support import make_table, plane_config

import dataplane
from dataplane import DataPlane


@pytest.fixture(params=["local", "s3"])
def plane(request: pytest.FixtureRequest, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[DataPlane]:
    monkeypatch.chdir(tmp_path)
    s3 = request.getfixturevalue("s3_endpoint") if request.param == "s3" else None
    with dataplane.connect(plane_config(tmp_path, request.param, s3)) as connected:
        yield connected


@pytest.fixture
def table() -> pa.Table:
    return make_table(5_000)
