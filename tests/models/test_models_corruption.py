"""Acceptance: a flipped byte or a truncation in any stored object is caught on every read.

For each stored object and each kind of damage, ``fetch`` (into the cache),
``fetch(dest)`` and ``open().read()`` raise :class:`dataplane.IntegrityError` whose
message names the file's path in the version and the object's key, and nothing corrupt
lands in the node cache or the destination. Objects are damaged behind dataplane's back:
plain file writes on the local backend, the raw s3fs client on S3.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from models_support import Site, assert_cache_sound, empty_cache, tree_bytes, write_files

from dataplane import IntegrityError
from dataplane.artifacts import Version
from dataplane.facade import DataPlane
from dataplane.models import ModelStore

CHUNK = 64 * 1024
TREE = {
    "config.json": b'{"hidden": 768, "layers": 12}',
    "weights/big.bin": os.urandom(3 * CHUNK + 1000),  # four chunks
    "tokenizer/vocab-ü.txt": "naïve\nüber\n".encode() * 100,
    "empty": b"",
}


def flip(position: Callable[[int], int]) -> Callable[[bytes], bytes]:
    def damage(data: bytes) -> bytes:
        index = position(len(data))
        return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]
    return damage


DAMAGE = {
    "flip-first-byte": flip(lambda size: 0),
    "flip-middle-byte": flip(lambda size: size // 2),
    "flip-last-byte": flip(lambda size: size - 1),
    "truncate-half": lambda data: data[:len(data) // 2],
    "truncate-last-byte": lambda data: data[:-1],
    "truncate-to-empty": lambda data: b"",
}


@pytest.fixture(params=["ranged", "streamed"])
def models(request: pytest.FixtureRequest, plane: DataPlane) -> ModelStore:
    """The store that reads: ``plane.models`` downloads files of several chunks as ranged
    chunk reads when there are fewer files than workers ("ranged"); with fewer workers
    than files it streams each file with one read and verifies it after ("streamed")."""
    if request.param == "ranged":
        return plane.models
    return ModelStore(plane, "models", plane.cache, workers=2)


@pytest.fixture
def version(plane: DataPlane, tmp_path: Path) -> Version:
    store = ModelStore(plane, "models", plane.cache, chunk_size=CHUNK)
    return store.publish("bert", write_files(tmp_path / "src", TREE))


def check_names_object(error: pytest.ExceptionInfo[IntegrityError], path: str,
                       key: str) -> None:
    message = str(error.value)
    assert path in message and key in message, message


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_objects_are_caught_on_every_read(site: Site, plane: DataPlane,
                                                  models: ModelStore, version: Version,
                                                  tmp_path: Path, damage: str) -> None:
    targets = [entry for entry in version.manifest.files if entry.size > 0]
    assert len(targets) == 3
    for entry in targets:
        original = site.read(entry.key)
        site.write(entry.key, DAMAGE[damage](original))
        empty_cache(plane)

        with pytest.raises(IntegrityError) as caught:
            models.fetch("bert@1")
        check_names_object(caught, entry.path, entry.key)
        assert not plane.cache.view_path(version.digest).exists()
        assert not plane.cache.has_blob(entry.digest)
        assert_cache_sound(plane)

        dest = tmp_path / f"dest-{entry.digest[7:15]}"
        with pytest.raises(IntegrityError) as caught:
            models.fetch("bert@1", dest)
        check_names_object(caught, entry.path, entry.key)
        assert not dest.exists()
        assert_cache_sound(plane)

        with pytest.raises(IntegrityError) as caught:  # noqa: SIM117 (the error is in read)
            with models.open("bert@1", entry.path) as reader:
                reader.read()
        check_names_object(caught, entry.path, entry.key)

        site.write(entry.key, original)
    empty_cache(plane)
    assert tree_bytes(models.fetch("bert@1", tmp_path / "good")) == TREE
    assert_cache_sound(plane)


def test_a_damaged_file_does_not_spoil_an_existing_destination(
        site: Site, plane: DataPlane, version: Version, tmp_path: Path) -> None:
    dest = write_files(tmp_path / "deploy", {"weights/big.bin": b"the previous model",
                                             "unrelated.txt": b"keep me"})
    entry = version.manifest.file("weights/big.bin")
    site.write(entry.key, DAMAGE["flip-middle-byte"](site.read(entry.key)))
    with pytest.raises(IntegrityError):
        plane.models.fetch("bert@1", dest)
    assert tree_bytes(dest) == {"weights/big.bin": b"the previous model",
                                "unrelated.txt": b"keep me"}


def test_a_damaged_selection_is_caught_and_an_intact_one_is_not(
        site: Site, plane: DataPlane, version: Version, tmp_path: Path) -> None:
    entry = version.manifest.file("config.json")
    site.write(entry.key, b'{"hidden": 999, "layers": 12}')  # same size, other bytes
    with pytest.raises(IntegrityError) as caught:
        plane.models.fetch("bert@1", files=["config.json"])
    check_names_object(caught, entry.path, entry.key)
    intact = ["weights/big.bin", "empty"]
    assert tree_bytes(plane.models.fetch("bert@1", files=intact)) == {
        path: TREE[path] for path in intact}
    assert_cache_sound(plane)


def test_ranged_reads_verify_the_chunks_they_touch(site: Site, plane: DataPlane,
                                                   version: Version) -> None:
    entry = version.manifest.file("weights/big.bin")
    data = TREE[entry.path]
    site.write(entry.key, DAMAGE["flip-middle-byte"](data))  # damages chunk 1 of 0..3
    with plane.models.open("bert@1", entry.path) as reader:
        assert reader.read(100) == data[:100]  # chunk 0 is intact
        reader.seek(3 * CHUNK)
        assert reader.read() == data[3 * CHUNK:]  # so is chunk 3
        reader.seek(CHUNK + 10)
        with pytest.raises(IntegrityError, match="chunk 1"):
            reader.read(10)
