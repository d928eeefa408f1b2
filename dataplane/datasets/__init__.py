"""Tabular datasets in Arrow/Parquet: ``plane.datasets`` is a :class:`DatasetStore`.

>>> version = plane.datasets.write("clicks", table, partition_by=["day"])
>>> plane.datasets.read("clicks@latest").to_table()
>>> for batch in plane.datasets.iter_batches("clicks", batch_size=1024,
...                                          shard=rank, num_shards=world_size): ...
"""

from ._store import DatasetStore
from ._writer import WriteOptions

__all__ = ["DatasetStore", "WriteOptions"]
