"""Acceptance: bad input gives a clear error and changes nothing.

"Changes nothing" is checked as: the name's versions (deleted ones included), the list of
models, the aliases and their history are as before, and after ``gc(grace_period_s=0)``
the stored objects under the models prefix are exactly those live versions reference.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from models_support import Site, live_keys, write_files

from dataplane.errors import (
    ConflictError,
    InvalidNameError,
    InvalidSourceError,
    NotFoundError,
)
from dataplane.facade import DataPlane


@pytest.fixture
def published(plane: DataPlane, tmp_path: Path) -> DataPlane:
    """A plane where ``bert`` has one version (aliased ``prod``)."""
    plane.models.publish("bert", write_files(tmp_path / "v1", {"w.bin": b"weights v1"}),
                         aliases=["prod"])
    return plane


def snapshot(plane: DataPlane, site: Site) -> dict[str, Any]:
    return {
        "versions": [(v.version, v.digest) for v in
                     plane.models.versions("bert", include_deleted=True)],
        "list": [(v.name, v.version) for v in plane.models.list()],
        "aliases": plane.models.aliases("bert"),
        "history": plane.models.alias_history("bert"),
        "objects": site.keys("default/models/"),
    }


@pytest.fixture
def unchanged(site: Site, published: DataPlane) -> Iterator[None]:
    """Assert, after the test body, that the catalog and the stored objects are as before."""
    before = snapshot(published, site)
    yield
    after = snapshot(published, site)
    assert after == before


def test_missing_source_path(published: DataPlane, unchanged: None, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "folder"
    with pytest.raises(NotFoundError, match=str(missing)):
        published.models.publish("bert", missing)
    with pytest.raises(NotFoundError):
        published.models.publish("new-model", missing)


def test_empty_directory(published: DataPlane, unchanged: None, tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub" / "deeper").mkdir(parents=True)
    with pytest.raises(InvalidSourceError, match="no files"):
        published.models.publish("bert", tmp_path / "empty")


def test_symlink_pointing_outside_the_source(published: DataPlane, unchanged: None,
                                             tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_bytes(b"not part of the model")
    source = write_files(tmp_path / "src", {"w.bin": b"weights", "sub/a.txt": b"a"})
    (source / "sub" / "leak.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(InvalidSourceError, match=r"leak\.txt"):
        published.models.publish("bert", source)


def test_symlink_to_a_folder_outside_the_source(published: DataPlane, unchanged: None,
                                                tmp_path: Path) -> None:
    write_files(tmp_path / "outside", {"x.bin": b"x"})
    source = write_files(tmp_path / "src", {"w.bin": b"weights"})
    (source / "linked").symlink_to(tmp_path / "outside", target_is_directory=True)
    with pytest.raises(InvalidSourceError, match="linked"):
        published.models.publish("bert", source)


def test_a_symlink_inside_the_source_is_published_as_a_file(plane: DataPlane,
                                                            tmp_path: Path) -> None:
    source = write_files(tmp_path / "src", {"w.bin": b"weights"})
    (source / "alias.bin").symlink_to(source / "w.bin")
    version = plane.models.publish("linked", source)
    assert {f.path: f.size for f in version.files} == {"alias.bin": 7, "w.bin": 7}


def test_unknown_refs_name_the_address(published: DataPlane, unchanged: None,
                                       tmp_path: Path) -> None:
    for ref, address in [("nobody", "dp://default/models/nobody"),
                         ("bert@9", "dp://default/models/bert@9"),
                         ("bert@canary", "dp://default/models/bert@canary"),
                         ("bert@sha256:" + "0" * 64, "dp://default/models/bert@sha256:"),
                         ("dp://default/models/nobody@latest", "dp://default/models/nobody")]:
        with pytest.raises(NotFoundError) as caught:
            published.models.resolve(ref)
        assert address in str(caught.value), (ref, str(caught.value))
        with pytest.raises(NotFoundError, match="dp://default/models/"):
            published.models.fetch(ref)
        with pytest.raises(NotFoundError, match="dp://default/models/"):
            published.models.fetch(ref, tmp_path / "out")
        with pytest.raises(NotFoundError, match="dp://default/models/"):
            published.models.open(ref, "w.bin")
    with pytest.raises(NotFoundError):
        published.models.delete("bert@9")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["../escape", "a//b", "/abs", "bad name", "x" * 300,
                                  "bert@1@2", "", "trailing/"])
def test_invalid_names(published: DataPlane, unchanged: None, tmp_path: Path,
                       name: str) -> None:
    source = write_files(tmp_path / "src", {"w.bin": b"weights"})
    with pytest.raises(InvalidNameError):
        published.models.publish(name, source)


def test_invalid_refs_and_aliases(published: DataPlane, unchanged: None,
                                  tmp_path: Path) -> None:
    source = write_files(tmp_path / "src", {"w.bin": b"weights"})
    for ref in ["../bert", "bert@", "bert@sha256:xyz", "dp://default/datasets/bert@1"]:
        with pytest.raises(InvalidNameError):
            published.models.resolve(ref)
    with pytest.raises(InvalidNameError):
        published.models.publish("bert", source, aliases=["bad alias"])
    with pytest.raises(InvalidNameError):
        published.models.set_alias("bert", "../prod", 1)


def test_alias_on_a_missing_version(published: DataPlane, unchanged: None) -> None:
    with pytest.raises(NotFoundError, match="bert@2"):
        published.models.set_alias("bert", "prod", 2)
    with pytest.raises(NotFoundError):
        published.models.set_alias("bert", "canary", 0)


def test_alias_on_a_deleted_version(published: DataPlane, site: Site, tmp_path: Path) -> None:
    published.models.publish("bert", write_files(tmp_path / "v2", {"w.bin": b"weights v2"}))
    published.models.delete("bert@2")
    before = snapshot(published, site)
    with pytest.raises(NotFoundError, match="bert@2"):
        published.models.set_alias("bert", "prod", 2)
    assert snapshot(published, site) == before


# ------------------------------------------------------- a file removed mid-publish
def removal_race(plane: DataPlane, name: str, source: Path, victim: Path, delay_s: float
                 ) -> Exception | None:
    """Publish ``source`` as ``name`` while another thread removes ``victim`` after
    ``delay_s``; returns what publish raised (``None`` when it succeeded)."""
    def remove() -> None:
        time.sleep(delay_s)
        victim.unlink()

    thread = threading.Thread(target=remove)
    thread.start()
    try:
        plane.models.publish(name, source)
    except Exception as error:  # the point of the test: which error, and nothing changed
        return error
    finally:
        thread.join()
    return None


def test_a_file_removed_during_publish(site: Site, plane: DataPlane, tmp_path: Path) -> None:
    """Large files take a while to hash and upload; a small one is removed meanwhile.

    Depending on the moment, publish sees the removal while hashing, uploading or in its
    final check: each time it must raise ConflictError or NotFoundError naming the file,
    and commit nothing. Moments that let publish finish first (or remove the file before
    it was even listed) publish a complete version instead; the sweep goes on.
    """
    shards = {f"shard-{i}.bin": os.urandom(4 * 2**20) for i in range(6)}
    source = write_files(tmp_path / "src", shards)
    started = time.perf_counter()
    plane.models.publish("calibrate", source)
    duration = time.perf_counter() - started
    failures = []
    for attempt, fraction in enumerate([0.0, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.75, 0.9, 1.1]):
        name = f"racy-{attempt}"
        victim = source / "z-victim.bin"
        victim.write_bytes(os.urandom(1000 + attempt))
        error = removal_race(plane, name, source, victim, duration * fraction)
        if error is None:
            assert plane.models.resolve(name).version == 1  # the race was lost: a whole version
            continue
        failures.append(error)
        assert isinstance(error, ConflictError | NotFoundError), repr(error)
        assert str(victim) in str(error), str(error)
        assert plane.models.list(name) == []
        with pytest.raises(NotFoundError):
            plane.models.resolve(name)
        if len(failures) == 3:
            break
    assert failures, "the removal never overlapped a publish"
    plane.gc(grace_period_s=0)
    published = {v.name for v in plane.models.list()}
    referenced = set().union(*(live_keys(plane, name) for name in published))
    assert site.keys("default/models/") == referenced
