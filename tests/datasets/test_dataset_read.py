"""datasets.read and iter_batches: projections, filters, sharding, the cache, integrity."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from dataset_support import make_table, plane_config, sorted_by_id

import dataplane
from dataplane import DataPlane, IntegrityError, NotFoundError
from dataplane.datasets import WriteOptions
from dataplane.errors import InvalidSourceError

SMALL_GROUPS = WriteOptions(max_rows_per_group=250, max_rows_per_file=1_000)


@pytest.fixture
def events(plane: DataPlane) -> pa.Table:
    """7,000 rows written partitioned by group into 4 x 2 files of 250-row row groups."""
    table = make_table(7_000)
    plane.datasets.write("events", table, partition_by=["group"], options=SMALL_GROUPS)
    return table


def test_read_with_columns_and_filter(plane: DataPlane, events: pa.Table) -> None:
    dataset = plane.datasets.read("events", columns=["id", "x"], filter=pc.field("x") > 0.5)
    assert dataset.schema.names == ["id", "x"]
    expected = events.filter(pc.field("x") > 0.5).select(["id", "x"])
    assert sorted_by_id(dataset.to_table()).equals(expected)
    by_partition = plane.datasets.read("events", filter=pc.field("group") == "b/c")
    assert by_partition.count_rows() == 7_000 // 4


def test_read_rejects_unknown_columns_and_unbound_filters(plane: DataPlane,
                                                          events: pa.Table) -> None:
    with pytest.raises(ValueError, match=r"unknown columns \['nope'\]"):
        plane.datasets.read("events", columns=["nope"])
    with pytest.raises(ValueError, match="cannot apply filter"):
        plane.datasets.read("events", columns=["id"], filter=pc.field("x") > 0.5)


def test_warm_read_needs_no_blob_io(plane: DataPlane, events: pa.Table) -> None:
    version = plane.datasets.resolve("events")
    plane.datasets.read("events")
    store = plane.store(plane.config.default_backend)
    for entry in version.manifest.files:  # the backend loses every object...
        store.delete(entry.key)
    again = plane.datasets.read("events").to_table()  # ...and the cached copy still serves
    assert sorted_by_id(again).equals(events)
    assert next(plane.datasets.iter_batches("events", batch_size=10)).num_rows == 10


@pytest.mark.parametrize("num_shards", [1, 2, 3, 4])
def test_shards_are_disjoint_complete_and_deterministic(plane: DataPlane, events: pa.Table,
                                                        num_shards: int) -> None:
    seen: list[int] = []
    for shard in range(num_shards):
        batches = list(plane.datasets.iter_batches("events", batch_size=64, shard=shard,
                                                   num_shards=num_shards))
        assert batches, f"shard {shard} of {num_shards} is empty"
        assert all(b.num_rows == 64 for b in batches[:-1]) and batches[-1].num_rows <= 64
        assert all(b.schema == events.schema for b in batches)
        again = plane.datasets.iter_batches("events", batch_size=64, shard=shard,
                                            num_shards=num_shards)
        assert [b.to_pydict() for b in again] == [b.to_pydict() for b in batches]
        seen.extend(i for b in batches for i in b["id"].to_pylist())
    assert len(seen) == len(set(seen))  # disjoint
    assert sorted(seen) == events["id"].to_pylist()  # complete


def test_more_shards_than_row_groups(plane: DataPlane) -> None:
    table = make_table(600)
    plane.datasets.write("few", table, options=WriteOptions(max_rows_per_group=250))
    shards = [[i for b in plane.datasets.iter_batches("few", batch_size=1_000, shard=s,
                                                      num_shards=5) for i in b["id"].to_pylist()]
              for s in range(5)]
    assert [len(ids) for ids in shards] == [250, 250, 100, 0, 0]
    assert sorted(i for ids in shards for i in ids) == list(range(600))


def test_shards_apply_columns_and_filter(plane: DataPlane, events: pa.Table) -> None:
    where = (pc.field("day") == 1) & (pc.field("group") != "a")
    ids: list[int] = []
    for shard in range(3):
        for batch in plane.datasets.iter_batches("events", batch_size=100, columns=["id"],
                                                 filter=where, shard=shard, num_shards=3):
            assert batch.schema.names == ["id"]
            ids.extend(batch["id"].to_pylist())
    expected = events.filter(where)["id"].to_pylist()
    assert sorted(ids) == sorted(expected) and len(ids) == len(expected)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"shard": 2, "num_shards": 2}, r"shard must be in \[0, 2\)"),
    ({"shard": -1, "num_shards": 2}, "shard must be in"),
    ({"num_shards": 0}, "num_shards must be at least 1"),
    ({"batch_size": 0}, "batch_size must be at least 1"),
    ({"shard": 1.0, "num_shards": 2}, "shard must be an int"),
    ({"columns": ["nope"]}, "unknown columns"),
])
def test_iter_batches_checks_its_arguments(plane: DataPlane, events: pa.Table,
                                           kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"batch_size": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        plane.datasets.iter_batches("events", **arguments)  # type: ignore[arg-type]


def test_unknown_ref_is_not_found(plane: DataPlane, events: pa.Table) -> None:
    with pytest.raises(NotFoundError):
        plane.datasets.read("events@9")
    with pytest.raises(NotFoundError):
        plane.datasets.iter_batches("ghost", batch_size=10)


def test_models_are_not_datasets(plane: DataPlane, tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"w")
    plane.models.publish("m", tmp_path / "weights.bin")
    with pytest.raises(NotFoundError):
        plane.datasets.read("m")
    plane.datasets.commit_files("raw", [("weights.bin", tmp_path / "weights.bin")])
    with pytest.raises(InvalidSourceError, match="records no schema"):
        plane.datasets.read("raw")


def test_corrupt_object_is_caught_and_never_cached(plane: DataPlane) -> None:
    table = make_table(3_000)
    version = plane.datasets.write("events", table, options=SMALL_GROUPS)
    entry = version.manifest.files[1]
    store = plane.store(plane.config.default_backend)
    data = bytearray(store.get(entry.key))
    data[len(data) // 2] ^= 0x01
    store.put(entry.key, bytes(data))  # tampered behind dataplane's back
    with pytest.raises(IntegrityError) as info:
        plane.datasets.read("events")
    assert entry.key in str(info.value) and entry.path in str(info.value)
    assert not plane.cache.blob_path(entry.digest).exists()
    assert not plane.cache.view_path(version.digest).exists()
    with pytest.raises(IntegrityError):
        plane.datasets.iter_batches("events", batch_size=10)


def test_flipped_byte_on_local_disk_is_caught(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with dataplane.connect(plane_config(tmp_path, "local", None)) as plane:
        version = plane.datasets.write("events", make_table(1_000))
        entry = version.manifest.files[0]
        stored = tmp_path / "blobs" / entry.key
        data = bytearray(stored.read_bytes())
        data[100] ^= 0xFF
        stored.chmod(0o644)
        stored.write_bytes(bytes(data))
        with pytest.raises(IntegrityError, match=entry.key):
            plane.datasets.read("events")
        assert list((plane.cache.root / "blobs").iterdir()) == []
