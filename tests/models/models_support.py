"""Helpers shared by the model tests: where a test plane keeps its bytes, with raw access.

A :class:`Site` is one backend a test plane publishes to, together with a way to reach the
stored objects *without* dataplane (plain file I/O for the local backend, a raw s3fs client
for S3), so tests can corrupt, list or remove objects behind dataplane's back.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dataplane
from dataplane.facade import DataPlane

TENANT = "default"
KIND = "models"


@dataclass
class Site:
    """A backend for one test: its config mapping and raw access to its objects."""

    backend: str  # "local" or "s3"
    config: dict[str, Any]
    root: str  # local: the blob folder; s3: "bucket/prefix"
    fs: Any = None  # s3: a raw s3fs client (no dataplane code in between)

    def connect(self) -> DataPlane:
        return dataplane.connect(self.config)

    @contextmanager
    def plane(self) -> Iterator[DataPlane]:
        plane = self.connect()
        try:
            yield plane
        finally:
            plane.close()

    def config_json(self) -> str:
        """The config for a subprocess (``dataplane.connect(json.loads(...))``)."""
        return json.dumps(self.config)

    # ---------------------------------------------------------------- raw access
    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def read(self, key: str) -> bytes:
        if self.fs is None:
            return Path(self._path(key)).read_bytes()
        return bytes(self.fs.cat_file(self._path(key)))

    def write(self, key: str, data: bytes) -> None:
        """Overwrite a stored object in place, as a disk fault or a rogue writer would."""
        if self.fs is None:
            path = Path(self._path(key))
            os.chmod(path, 0o644)
            path.write_bytes(data)
        else:
            self.fs.pipe_file(self._path(key), data)

    def keys(self, prefix: str = "") -> set[str]:
        """Every stored object key (relative to the backend root) starting with ``prefix``."""
        if self.fs is None:
            root = Path(self.root)
            found = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
            return {k for k in found if k.startswith(prefix)
                    and not k.startswith(".dataplane-staging/")}
        self.fs.invalidate_cache()
        skip = len(self.root) + 1
        return {p[skip:] for p in self.fs.find(self.root) if p[skip:].startswith(prefix)}

    def make_unreachable(self) -> None:
        """Take every stored byte away: rename the blob folder / delete the bucket."""
        if self.fs is None:
            os.rename(self.root, self.root + ".gone")
        else:
            bucket = self.root.split("/", 1)[0]
            self.fs.rm(bucket, recursive=True)
            self.fs.invalidate_cache()
            assert not self.fs.exists(bucket)


def local_site(tmp: Path) -> Site:
    blobs = tmp / "blobs"
    config = {
        "catalog": {"url": f"sqlite:///{tmp / 'catalog.db'}"},
        "defaults": {"backend": "local"},
        "backends": {"local": {"url": blobs.as_uri()}},
        "cache": {"dir": str(tmp / "cache")},
    }
    return Site("local", config, str(blobs))


def s3_site(tmp: Path, endpoint_url: str, bucket: str, fs: Any) -> Site:
    config = {
        "catalog": {"url": f"sqlite:///{tmp / 'catalog.db'}"},
        "defaults": {"backend": "s3"},
        "backends": {"s3": {"url": f"s3://{bucket}/prefix", "key": "testing",
                            "secret": "testing", "endpoint_url": endpoint_url}},
        "cache": {"dir": str(tmp / "cache")},
    }
    return Site("s3", config, f"{bucket}/prefix", fs)


# ------------------------------------------------------------------- source trees
def write_files(root: Path, files: Mapping[str, bytes]) -> Path:
    """Create ``root`` holding ``files`` (relative POSIX path -> bytes); returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` by relative POSIX path."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def object_key(name: str, data: bytes) -> str:
    """The content-addressed key a model file with these bytes is stored under."""
    return f"{TENANT}/{KIND}/{name}/objects/{hashlib.sha256(data).hexdigest()}"


def live_keys(plane: DataPlane, name: str) -> set[str]:
    """The object keys that the live versions of model ``name`` reference."""
    keys: set[str] = set()
    for version in plane.models.versions(name):
        keys.update(entry.key for entry in version.manifest.files)
    return keys


def cache_state(plane: DataPlane) -> tuple[dict[str, str], list[str]]:
    """(blob name -> sha256 of its content, leftover partial entries) of the node cache."""
    root = plane.cache.root
    blobs = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
             for p in (root / "blobs").iterdir()}
    return blobs, sorted(p.name for p in (root / "partial").iterdir())


def assert_cache_sound(plane: DataPlane) -> None:
    """Every cached blob holds exactly the bytes its name promises; nothing is half-done."""
    blobs, partial = cache_state(plane)
    bad = {name: actual for name, actual in blobs.items() if name != actual}
    assert not bad, f"corrupt blobs in the cache: {bad}"
    assert partial == [], f"leftovers in the cache's partial/: {partial}"


def empty_cache(plane: DataPlane) -> None:
    """Forget everything cached (the folders stay, empty)."""
    root = plane.cache.root
    for folder in ("blobs", "views", "partial"):
        path = root / folder
        for entry in path.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
