"""plane.models end to end, on the local backend and on S3 (moto's server over HTTP).

Publish, resolve by every kind of ref, fetch (cache, destination, a selection), ranged
verified reads, aliases, versions, list, delete and garbage collection.
"""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from models_support import (
    Site,
    assert_cache_sound,
    empty_cache,
    live_keys,
    object_key,
    sha256,
    tree_bytes,
    write_files,
)

from dataplane import NotFoundError
from dataplane.facade import DataPlane
from dataplane.identity import current_actor
from dataplane.models import ModelStore

TREE = {
    "config.json": b'{"layers": 2}',
    "weights/layer0.bin": os.urandom(50_000),
    "weights/deep/nested/layer1.bin": os.urandom(70_001),
    "empty.txt": b"",
    "tokenizer/vocabulário-ü.txt": "naïve\nüber\n".encode(),
}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_files(tmp_path / "src", TREE)


# ----------------------------------------------------------------- publish/resolve
def test_publish_a_folder_and_read_back_the_version(plane: DataPlane, source: Path) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    version = plane.models.publish("team/bert", source, metadata={"lr": 0.1, "run": "r7"})

    assert version.name == "team/bert"
    assert version.version == 1
    assert version.uri == "dp://default/models/team/bert@1"
    assert version.metadata == {"lr": 0.1, "run": "r7"}
    assert version.created_by == current_actor()
    assert before <= version.created_at <= datetime.now(UTC) + timedelta(seconds=5)
    assert version.digest.startswith("sha256:") and len(version.digest) == 71
    assert [f.path for f in version.files] == sorted(TREE)
    for info in version.files:
        assert info.size == len(TREE[info.path])
        assert info.digest == sha256(TREE[info.path])


def test_publish_a_single_file(plane: DataPlane, tmp_path: Path) -> None:
    data = os.urandom(1234)
    (tmp_path / "model.onnx").write_bytes(data)
    version = plane.models.publish("single", tmp_path / "model.onnx")
    assert [(f.path, f.size, f.digest) for f in version.files] == [
        ("model.onnx", 1234, sha256(data))]
    folder = plane.models.fetch("single")
    assert tree_bytes(folder) == {"model.onnx": data}


def test_every_kind_of_ref_resolves_to_the_same_version(plane: DataPlane, source: Path) -> None:
    first = plane.models.publish("bert", source)
    (source / "config.json").write_bytes(b'{"layers": 3}')
    second = plane.models.publish("bert", source, aliases=["prod"])
    assert (first.version, second.version) == (1, 2)
    assert first.digest != second.digest

    for ref in ["bert", "bert@2", "bert@latest", "bert@prod", f"bert@{second.digest}",
                "dp://default/models/bert@2", "dp://default/models/bert@prod",
                f"dp://default/models/bert@{second.digest}"]:
        resolved = plane.models.resolve(ref)
        assert (resolved.version, resolved.digest) == (2, second.digest), ref
    for ref in ["bert@1", f"bert@{first.digest}", "dp://default/models/bert@1"]:
        assert plane.models.resolve(ref).version == 1, ref


def test_the_same_tree_published_twice_has_the_same_digest(
        plane: DataPlane, source: Path, tmp_path: Path) -> None:
    first = plane.models.publish("twice", source)
    second = plane.models.publish("twice", source)
    elsewhere = plane.models.publish("other-name", write_files(tmp_path / "copy", TREE))
    assert second.version == 2
    assert first.digest == second.digest == elsewhere.digest
    assert first.files == second.files


# ------------------------------------------------------------------------ fetch
def test_fetch_into_the_cache_gives_the_exact_bytes(plane: DataPlane, source: Path) -> None:
    version = plane.models.publish("bert", source)
    folder = plane.models.fetch("bert@1")
    assert folder.is_relative_to(plane.cache.root)
    assert tree_bytes(folder) == TREE
    assert (folder / "empty.txt").is_file()
    assert plane.models.fetch(f"bert@{version.digest}") == folder
    assert_cache_sound(plane)


def test_a_cache_hit_needs_no_blob_storage(site: Site, plane: DataPlane, source: Path,
                                           tmp_path: Path) -> None:
    plane.models.publish("bert", source)
    first = plane.models.fetch("bert")
    site.make_unreachable()  # every stored object (and, on S3, the bucket) is gone

    assert plane.models.fetch("bert") == first
    assert tree_bytes(first) == TREE
    assert tree_bytes(plane.models.fetch("bert", tmp_path / "out")) == TREE
    with site.plane() as other_process_view:  # a fresh plane on the same node cache
        assert tree_bytes(other_process_view.models.fetch("bert@latest")) == TREE


def test_fetch_to_a_destination(plane: DataPlane, source: Path, tmp_path: Path) -> None:
    plane.models.publish("bert", source)
    dest = tmp_path / "deploy" / "bert"
    assert plane.models.fetch("bert", dest) == dest
    assert tree_bytes(dest) == TREE
    assert not [p for p in dest.rglob("*") if p.name.endswith(".partial")]


def test_fetch_only_some_files(plane: DataPlane, source: Path, tmp_path: Path) -> None:
    plane.models.publish("bert", source)
    wanted = ["config.json", "weights/deep/nested/layer1.bin"]
    dest = plane.models.fetch("bert", tmp_path / "some", files=wanted)
    assert tree_bytes(dest) == {path: TREE[path] for path in wanted}

    view = plane.models.fetch("bert", files=wanted)
    assert tree_bytes(view) == {path: TREE[path] for path in wanted}
    blobs = {p.name for p in (plane.cache.root / "blobs").iterdir()}
    assert blobs == {sha256(TREE[path])[7:] for path in wanted}  # nothing else downloaded
    assert tree_bytes(plane.models.fetch("bert")) == TREE  # the whole version: a new view


def test_fetch_of_an_unknown_file_is_not_found(plane: DataPlane, source: Path,
                                               tmp_path: Path) -> None:
    plane.models.publish("bert", source)
    with pytest.raises(NotFoundError, match=r"no-such\.bin"):
        plane.models.fetch("bert", tmp_path / "out", files=["config.json", "no-such.bin"])
    with pytest.raises(NotFoundError, match=r"no-such\.bin"):
        plane.models.fetch("bert", files=["no-such.bin"])
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------- open
def test_open_reads_whole_files(plane: DataPlane, source: Path) -> None:
    plane.models.publish("bert", source)
    for path, data in TREE.items():
        with plane.models.open("bert", path) as reader:
            assert reader.read() == data, path
    with pytest.raises(NotFoundError, match=r"missing\.bin"):
        plane.models.open("bert", "missing.bin")


def test_open_supports_ranged_reads_across_chunks(plane: DataPlane, tmp_path: Path) -> None:
    chunk = 64 * 1024
    data = os.urandom(3 * chunk + 777)
    write_files(tmp_path / "ranged", {"big.bin": data})
    small_chunks = ModelStore(plane, "models", plane.cache, chunk_size=chunk)
    version = small_chunks.publish("ranged", tmp_path / "ranged")
    assert len(version.manifest.file("big.bin").chunks) == 4

    with plane.models.open("ranged", "big.bin") as reader:
        assert reader.seekable()
        assert reader.read(100) == data[:100]  # the start
        reader.seek(chunk - 50)  # the middle, across a chunk boundary
        assert reader.read(100) == data[chunk - 50:chunk + 50]
        reader.seek(2 * chunk - 10)
        assert reader.read(chunk + 20) == data[2 * chunk - 10:3 * chunk + 10]  # 3 chunks
        reader.seek(-30, io.SEEK_END)  # the end
        assert reader.read() == data[-30:]
        assert reader.read(10) == b""
        reader.seek(len(data) + 5)
        assert reader.read() == b""
        reader.seek(0)
        assert reader.read() == data
    empty_cache(plane)
    assert tree_bytes(plane.models.fetch("ranged")) == {"big.bin": data}


# ---------------------------------------------------------------------- aliases
def test_aliases_and_their_history(plane: DataPlane, source: Path) -> None:
    for _ in range(3):
        plane.models.publish("bert", source)
    plane.models.set_alias("bert", "prod", 1)
    plane.models.set_alias("bert", "staging", 3)
    plane.models.set_alias("bert", "prod", 2)
    assert plane.models.aliases("bert") == {"prod": 2, "staging": 3}
    assert plane.models.resolve("bert@prod").version == 2
    assert [(c.alias, c.from_version, c.to_version) for c in plane.models.alias_history("bert")
            ] == [("prod", None, 1), ("staging", None, 3), ("prod", 1, 2)]
    assert [(c.from_version, c.to_version) for c in plane.models.alias_history("bert", "prod")
            ] == [(None, 1), (1, 2)]


def test_an_alias_on_a_missing_version_changes_nothing(plane: DataPlane, source: Path) -> None:
    plane.models.publish("bert", source, aliases=["prod"])
    history = plane.models.alias_history("bert")
    with pytest.raises(NotFoundError, match="bert@7"):
        plane.models.set_alias("bert", "prod", 7)
    with pytest.raises(NotFoundError):
        plane.models.set_alias("bert", "canary", 7)
    with pytest.raises(NotFoundError):
        plane.models.set_alias("no-such-model", "prod", 1)
    assert plane.models.aliases("bert") == {"prod": 1}
    assert plane.models.alias_history("bert") == history
    assert plane.models.resolve("bert@prod").version == 1


def test_versions_and_list(plane: DataPlane, source: Path) -> None:
    plane.models.publish("nlp/bert", source)
    plane.models.publish("nlp/bert", source, metadata={"n": 2})
    plane.models.publish("nlp/gpt", source)
    plane.models.publish("vision/resnet", source)
    assert [v.version for v in plane.models.versions("nlp/bert")] == [1, 2]
    assert [(v.name, v.version) for v in plane.models.list()] == [
        ("nlp/bert", 2), ("nlp/gpt", 1), ("vision/resnet", 1)]
    assert [v.name for v in plane.models.list("nlp/")] == ["nlp/bert", "nlp/gpt"]
    assert plane.models.list("audio") == []


# ---------------------------------------------------------------- delete and gc
def test_delete_tombstones_then_gc_removes_only_unreferenced_objects(
        site: Site, plane: DataPlane, tmp_path: Path) -> None:
    shared, only_v1, only_v2 = os.urandom(3000), os.urandom(4000), os.urandom(5000)
    v1 = plane.models.publish("bert", write_files(tmp_path / "v1", {
        "shared.bin": shared, "a.bin": only_v1}))
    v2 = plane.models.publish("bert", write_files(tmp_path / "v2", {
        "shared.bin": shared, "b.bin": only_v2}), aliases=["prod"])
    all_keys = {object_key("bert", d) for d in (shared, only_v1, only_v2)}
    assert site.keys("default/models/bert/") == all_keys

    deleted = plane.models.delete("bert@prod")
    assert deleted.version == v2.version
    with pytest.raises(NotFoundError, match="bert@2"):
        plane.models.resolve("bert@2")
    with pytest.raises(NotFoundError):
        plane.models.resolve(f"bert@{v2.digest}")
    assert plane.models.resolve("bert").version == v1.version  # latest moved back
    assert [v.version for v in plane.models.versions("bert")] == [1]
    assert [v.version for v in plane.models.versions("bert", include_deleted=True)] == [1, 2]
    assert site.keys("default/models/bert/") == all_keys  # bytes stay until gc

    assert plane.gc().objects == []  # inside the default grace period
    report = plane.gc(grace_period_s=0, dry_run=True)
    assert report.dry_run
    assert [info.key for _, info in report.objects] == [object_key("bert", only_v2)]
    assert report.bytes == 5000
    assert site.keys("default/models/bert/") == all_keys  # a dry run deletes nothing

    report = plane.gc(grace_period_s=0)
    assert [info.key for _, info in report.objects] == [object_key("bert", only_v2)]
    assert site.keys("default/models/bert/") == live_keys(plane, "bert") == {
        object_key("bert", shared), object_key("bert", only_v1)}
    assert plane.gc(grace_period_s=0).objects == []

    empty_cache(plane)  # the live version still reads back whole, from storage
    assert tree_bytes(plane.models.fetch("bert")) == {"shared.bin": shared, "a.bin": only_v1}


def test_gc_after_deleting_every_version_of_a_name(site: Site, plane: DataPlane,
                                                   source: Path) -> None:
    plane.models.publish("keep", source)
    plane.models.publish("drop", source)
    plane.models.delete("drop@1")
    plane.gc(grace_period_s=0)
    assert site.keys("default/models/drop/") == set()
    assert site.keys("default/models/keep/") == live_keys(plane, "keep")
    assert plane.models.list() == [plane.models.resolve("keep")]

