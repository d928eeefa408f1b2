"""connect(): config + catalog + lazily opened blob stores, end to end on real parts."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

import dataplane
from dataplane.errors import (
    BackendUnavailableError,
    ConfigError,
    InvalidNameError,
    MissingDependencyError,
    UnknownBackendError,
)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATAPLANE_CONFIG", raising=False)
    return tmp_path


def test_embedded_default_creates_catalog_and_blobs_under_dot_dataplane(workdir: Path) -> None:
    with dataplane.connect() as plane:
        store = plane.store(plane.route("models", "m"))
        store.put("default/models/m/blob", b"abc")
        digest = "sha256:" + hashlib.sha256(b"abc").hexdigest()
        version = plane.catalog.commit_version(
            plane.tenant, "models", "m", digest=digest, manifest={}, metadata={},
            created_by="test", locations=[("local", "default/models/m/blob")],
        )
    assert (workdir / ".dataplane/catalog.db").is_file()
    assert (workdir / ".dataplane/blobs/default/models/m/blob").read_bytes() == b"abc"
    with dataplane.connect() as again:  # a second connect sees the same catalog
        address = again.address("m@latest", "models")
        found = again.catalog.resolve(address.tenant, address.kind, address.name, address.ref)
        assert found.number == version.number == 1
        assert found.digest == digest


def test_routes_pick_the_backend(workdir: Path) -> None:
    config = {
        "backends": {"local": {"url": "file://blobs"}, "scratch": {"url": "memory://scratch"}},
        "routes": [{"match": "*/checkpoints/*", "backend": "scratch"}],
    }
    with dataplane.connect(config) as plane:
        assert plane.route("checkpoints", "run/1") == "scratch"
        assert plane.route("models", "m") == "local"
        assert plane.store("scratch").url == "memory://scratch"
        assert plane.store("local") is plane.store("local")  # opened once
        with pytest.raises(UnknownBackendError, match="no backend named 'ghost'"):
            plane.store("ghost")
        with pytest.raises(InvalidNameError):
            plane.route("models", "../escape")


def test_invalid_config_changes_nothing(workdir: Path) -> None:
    (workdir / "dataplane.toml").write_text("[backends.x]\nurl = 'ftp://nowhere'\n")
    with pytest.raises(ConfigError, match=r"backends\.x\.url"):
        dataplane.connect()
    assert not (workdir / ".dataplane").exists()


def test_unreachable_s3_endpoint_fails_fast_and_clearly(workdir: Path) -> None:
    config = {"backends": {
        "local": {"url": "file://b"},
        "lake": {"url": "s3://bucket/p", "endpoint_url": "http://127.0.0.1:9",
                 "key": "testing", "secret": "testing"},
    }}
    with dataplane.connect(config) as plane:
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError) as info:
            plane.store("lake").get("some/key")
        assert time.monotonic() - started < 30
    assert "http://127.0.0.1:9" in str(info.value)
    assert "attempt" in str(info.value)


def test_missing_extra_names_the_backend_and_the_install_line(workdir: Path) -> None:
    # Setting sys.modules['s3fs'] = None is the standard way to make an import fail; it
    # stands in for an environment without the s3 extra (this one has it installed).
    script = (
        "import sys; sys.modules['s3fs'] = None\n"
        "import dataplane\n"
        "plane = dataplane.connect({'backends': {'local': {'url': 'file://b'},"
        " 'lake': {'url': 's3://bucket/p'}}})\n"
        "try:\n"
        "    plane.store('lake')\n"
        "except dataplane.MissingDependencyError as e:\n"
        "    print('MISSING:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=workdir, check=True).stdout
    assert "MISSING: backends.lake: s3:// URLs need the 's3fs' package" in out
    assert "pip install 'dataplane[s3]'" in out
    assert issubclass(MissingDependencyError, ConfigError)
