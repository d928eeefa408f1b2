"""datasets.write: every accepted input round-trips; layout, metadata and temp files."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dataset_support import make_table, partial_entries, sorted_by_id, version_numbers

from dataplane import DataPlane, InvalidNameError
from dataplane.datasets import WriteOptions
from dataplane.datasets._schema import deserialize_schema
from dataplane.errors import InvalidSourceError


def batches_of(table: pa.Table, size: int) -> Iterator[pa.RecordBatch]:
    yield from table.to_batches(max_chunksize=size)


@pytest.mark.parametrize("kind", ["table", "reader", "generator", "list"])
def test_round_trip(plane: DataPlane, table: pa.Table, kind: str) -> None:
    data = {
        "table": table,
        "reader": pa.RecordBatchReader.from_batches(table.schema, batches_of(table, 333)),
        "generator": batches_of(table, 700),
        "list": table.to_batches(max_chunksize=1_000),
    }[kind]
    version = plane.datasets.write("events", data, metadata={"source": kind})
    assert version.version == 1 and version.metadata == {"source": kind}
    assert version.manifest.extra["rows"] == table.num_rows
    read = plane.datasets.read("events@1").to_table()
    assert read.schema == table.schema
    assert sorted_by_id(read).equals(table)


def test_round_trip_pandas(plane: DataPlane) -> None:
    frame = pd.DataFrame({"id": range(1_000), "name": [f"n{i}" for i in range(1_000)],
                          "score": [i / 7 for i in range(1_000)]})
    frame["kind"] = pd.Categorical(["x", "y"] * 500)
    plane.datasets.write("frame", frame)
    back = plane.datasets.read("frame").to_table().to_pandas()
    pd.testing.assert_frame_equal(back, frame)


def test_schema_and_layout_are_recorded(plane: DataPlane, table: pa.Table) -> None:
    version = plane.datasets.write("events", table, aliases=["prod"])
    extra = version.manifest.extra
    assert extra["format"] == "parquet" and extra["partition_by"] == []
    assert extra["rows"] == 5_000
    assert deserialize_schema(extra["schema"]) == table.schema
    assert plane.datasets.schema("events@prod") == table.schema
    assert [f.path for f in version.files] == ["part-00000.parquet"]
    assert plane.datasets.aliases("events") == {"prod": 1}


def test_partition_by_writes_hive_folders(plane: DataPlane, table: pa.Table) -> None:
    version = plane.datasets.write("events", table, partition_by=["group", "day"])
    paths = [f.path for f in version.files]
    assert "group=b%2Fc/day=1/part-00000.parquet" in paths  # values escaped like pyarrow's
    assert "group=__HIVE_DEFAULT_PARTITION__/day=0/part-00000.parquet" in paths  # nulls
    assert len(paths) == 12 and version.manifest.extra["partition_by"] == ["group", "day"]
    dataset = plane.datasets.read("events")
    assert dataset.schema == table.schema  # partition columns keep their type and place
    assert sorted_by_id(dataset.to_table()).equals(table)


def test_partition_by_other_types(plane: DataPlane) -> None:
    frame = pd.DataFrame({
        "id": range(8),
        "kind": pd.Categorical(["x", "y", "x", "z"] * 2),
        "day": [dt.date(2024, 1, 1 + i % 2) for i in range(8)],
        "at": [dt.datetime(2024, 1, 1, 12, 30 * (i % 2)) for i in range(8)],
        "flag": [True, False, None, True] * 2,
    })
    table = pa.Table.from_pandas(frame)
    version = plane.datasets.write("typed", table, partition_by=["kind", "day", "at", "flag"])
    assert "kind=x/day=2024-01-01/at=2024-01-01%2012%3A00%3A00.000000000/flag=true" \
        "/part-00000.parquet" in [f.path for f in version.files]
    back = plane.datasets.read("typed").to_table()
    assert back.schema == table.schema
    assert sorted_by_id(back).equals(table)
    pd.testing.assert_frame_equal(back.to_pandas().sort_values("id").reset_index(drop=True),
                                  frame)


def test_partition_files_hold_only_data_columns(plane: DataPlane, table: pa.Table) -> None:
    plane.datasets.write("events", table, partition_by="group")
    folder = plane.datasets.fetch("events")
    stored = pq.read_schema(folder / "group=a" / "part-00000.parquet")
    assert stored.names == ["id", "day", "x"]


def test_files_and_row_groups_roll_over(plane: DataPlane) -> None:
    table = make_table(10_000)
    options = WriteOptions(max_rows_per_group=1_000, max_rows_per_file=3_000)
    version = plane.datasets.write("events", table, options=options)
    assert [f.path for f in version.files] == [f"part-0000{i}.parquet" for i in range(4)]
    folder = plane.datasets.fetch("events")
    groups = [pq.ParquetFile(folder / f.path).metadata.num_row_groups for f in version.files]
    assert groups == [3, 3, 3, 1]
    assert sorted_by_id(plane.datasets.read("events").to_table()).equals(table)


def test_many_partitions_keep_few_files_open(plane: DataPlane) -> None:
    table = make_table(2_000)
    table = table.append_column("bucket", pa.array([i % 10 for i in range(2_000)]))
    options = WriteOptions(max_open_partitions=3, max_rows_per_group=50)
    batches = table.to_batches(max_chunksize=100)  # every batch touches every partition
    version = plane.datasets.write("events", batches, partition_by=["bucket"], options=options)
    assert len(version.files) > 10  # closed and reopened as new part files
    assert sorted_by_id(plane.datasets.read("events").to_table()).equals(table)


def test_too_many_partitions_are_refused(plane: DataPlane, table: pa.Table) -> None:
    with pytest.raises(InvalidSourceError, match="max_partitions"):
        plane.datasets.write("events", table, partition_by=["id"],
                             options=WriteOptions(max_partitions=100))
    assert version_numbers(plane, "events") == []
    assert partial_entries(plane) == []


def test_empty_input_gives_a_zero_row_version(plane: DataPlane, table: pa.Table) -> None:
    plane.datasets.write("empty", table.slice(0, 0), partition_by=["group"])
    assert plane.datasets.read("empty").to_table().num_rows == 0
    assert plane.datasets.schema("empty") == table.schema
    version = plane.datasets.write("none", iter(()), schema=table.schema)
    assert version.manifest.extra["rows"] == 0
    read = plane.datasets.read("none").to_table()
    assert read.num_rows == 0 and read.schema == table.schema
    assert list(plane.datasets.iter_batches("none", batch_size=10)) == []


def test_empty_iterable_needs_a_schema(plane: DataPlane) -> None:
    with pytest.raises(InvalidSourceError, match="schema="):
        plane.datasets.write("none", [])


@pytest.mark.parametrize("data", ["a string", {"a": [1]}, 42, [1, 2]])
def test_unusable_data_is_refused(plane: DataPlane, data: object) -> None:
    with pytest.raises(InvalidSourceError):
        plane.datasets.write("bad", data)
    assert version_numbers(plane, "bad") == []


@pytest.mark.parametrize("partition_by", [["nope"], ["id", "id"],
                                          ["id", "group", "day", "x"]])
def test_bad_partition_by_is_refused(plane: DataPlane, table: pa.Table,
                                     partition_by: list[str]) -> None:
    with pytest.raises(InvalidSourceError, match="partition_by"):
        plane.datasets.write("events", table, partition_by=partition_by)


def test_bad_name_is_refused_before_reading_data(plane: DataPlane) -> None:
    def never() -> Iterator[pa.RecordBatch]:
        raise AssertionError("data was read")
        yield  # pragma: no cover

    with pytest.raises(InvalidNameError):
        plane.datasets.write("../escape", never())
    with pytest.raises(InvalidNameError):
        plane.datasets.write("events", never(), aliases=["no/slash"])


def test_temp_files_are_removed(plane: DataPlane, table: pa.Table) -> None:
    plane.datasets.write("events", table, partition_by=["group"])
    assert partial_entries(plane) == []

    def failing() -> Iterator[pa.RecordBatch]:
        yield from table.to_batches(max_chunksize=1_000)
        raise RuntimeError("producer died")

    with pytest.raises(RuntimeError, match="producer died"):
        plane.datasets.write("events", failing())
    assert partial_entries(plane) == []
    assert version_numbers(plane, "events") == [1]


def test_same_data_twice_gives_same_digest(plane: DataPlane, table: pa.Table) -> None:
    first = plane.datasets.write("events", table)
    second = plane.datasets.write("events", table.to_batches(max_chunksize=100))
    assert second.version == 2 and second.digest == first.digest
