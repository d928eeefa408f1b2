"""The blob conformance suite: the behaviour every :class:`~dataplane.blob.BlobStore` keeps.

A backend is "done" when it passes this suite. Subclass :class:`BlobStoreConformance`
in a test module, give it a ``store`` fixture that returns a fresh, empty store, and
every ``test_*`` method is inherited. An adapter written outside this repository does
the same (it needs ``pytest``)::

    import uuid, pytest
    from dataplane.testing.blob import BlobStoreConformance
    from my_adapter import AzureBlobStore

    class TestAzure(BlobStoreConformance):
        large_object_size = 16 * 2**20       # optional: smaller objects on a slow CI

        @pytest.fixture
        def store(self, azurite_url):        # any fixtures the adapter needs
            url = f"az://test-{uuid.uuid4().hex}"    # a fresh container per test
            with AzureBlobStore.from_url(url, {"endpoint": azurite_url}, None) as store:
                yield store

The tests use only the public ``BlobStore`` API, so they hold for any implementation.
Class attributes tune the sizes (``large_object_size``, ``many_keys``, ...) and declare
what a backend cannot do (``key_can_be_prefix_of_other_keys`` is false on local disk,
where ``a`` and ``a/b`` cannot both be objects).
"""

from __future__ import annotations

import hashlib
import random
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ..blob import BlobStore, ByteRequest, OffsetRequest, RangeRequest, SuffixRequest
from ..checksums import CACHED_PIECE
from ..errors import (
    AlreadyExistsError,
    ConflictError,
    DataplaneError,
    IntegrityError,
    InvalidNameError,
    NotFoundError,
)

__all__ = ["INVALID_KEYS", "UNICODE_KEYS", "BlobStoreConformance"]

T = TypeVar("T")
R = TypeVar("R")

#: Keys every store must refuse with ``InvalidNameError`` before touching storage.
INVALID_KEYS = ["", "/a", "a/../b", "a//b", "a\x00b", "a/", "./a", "a/.", "a\\b", "k" * 1025]

#: Keys outside ASCII, with spaces and URL-special characters; they must round-trip exactly.
UNICODE_KEYS = ["données/模型/ß ü.bin", "emoji/🙂 smile.txt", "url/a+b%20c?d#e&f=g.bin"]

_SMALL = bytes(i % 251 for i in range(1000))  # 1,000 bytes, no repeating 256-byte period


def _ranges() -> list[tuple[ByteRequest, bytes]]:
    """Each range request with the bytes it must select from ``_SMALL`` (1,000 bytes)."""
    d = _SMALL
    return [
        (RangeRequest(0, 10), d[:10]),
        (RangeRequest(10, 20), d[10:20]),
        (RangeRequest(990, 1000), d[990:]),
        (RangeRequest(0, 1000), d),
        (RangeRequest(5, 5), b""),
        (RangeRequest(500, 5000), d[500:]),  # clipped at the end
        (RangeRequest(1000, 1010), b""),  # starts at the end
        (RangeRequest(2000, 3000), b""),  # starts past the end
        (OffsetRequest(0), d),
        (OffsetRequest(999), d[999:]),
        (OffsetRequest(1000), b""),
        (OffsetRequest(5000), b""),
        (SuffixRequest(1), d[-1:]),
        (SuffixRequest(10), d[-10:]),
        (SuffixRequest(1000), d),
        (SuffixRequest(5000), d),  # longer than the object: the whole object
        (SuffixRequest(0), b""),
    ]


_RANGES = _ranges()
_RANGE_IDS = [repr(request) for request, _ in _RANGES]
_EMPTY_WINDOWS: list[ByteRequest] = [RangeRequest(0, 10), OffsetRequest(0), SuffixRequest(5)]


@lru_cache(maxsize=2)
def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic, incompressible bytes (cached: the large tests share one buffer)."""
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def parallel(fn: Callable[[T], R], items: Iterable[T], threads: int) -> list[R]:
    """``fn`` over ``items`` on a thread pool; re-raises the first failure."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(fn, items))


def keys_of(store: BlobStore, prefix: str = "") -> list[str]:
    return [info.key for info in store.list(prefix)]


class BlobStoreConformance:
    """Inherit this and provide a ``store`` fixture; every ``test_*`` runs on that store."""

    #: Bytes in the object that takes the multipart path (adapters use 16 MiB parts).
    large_object_size: int = 64 * 2**20
    #: A part boundary inside the large object, where a ranged read must not stumble.
    part_size: int = 16 * 2**20
    #: Keys written for the listing test; more than one S3 page (1,000).
    many_keys: int = 1100
    #: Threads used to write many keys and by the concurrency tests.
    threads: int = 16
    #: Concurrent writers of one key, and the size of each one's payload (by default just
    #: over one part, so object stores take the multipart path).
    concurrent_writers: int = 4
    concurrent_payload_size: int = 17 * 2**20
    #: Whether ``a`` and ``a/b`` may both be objects (not on a file system).
    key_can_be_prefix_of_other_keys: bool = True

    @pytest.fixture
    def store(self) -> Iterator[BlobStore]:
        """A fresh, empty store. Subclasses must override this fixture."""
        raise NotImplementedError(f"{type(self).__name__} must provide a 'store' fixture")
        yield  # pragma: no cover

    # ---------------------------------------------------------------- missing keys
    def test_get_missing_key_raises_not_found(self, store: BlobStore) -> None:
        with pytest.raises(NotFoundError):
            store.get("missing")

    def test_stat_missing_key_raises_not_found(self, store: BlobStore) -> None:
        with pytest.raises(NotFoundError):
            store.stat("missing/nested/key")

    def test_exists_is_false_for_missing_key(self, store: BlobStore) -> None:
        assert store.exists("missing") is False

    def test_get_file_of_missing_key_raises_and_writes_nothing(
        self, store: BlobStore, tmp_path: Path
    ) -> None:
        target = tmp_path / "out" / "file.bin"
        with pytest.raises(NotFoundError):
            store.get_file("missing", target)
        assert not target.exists()
        assert not target.parent.exists() or list(target.parent.iterdir()) == []

    def test_put_file_of_missing_local_file_raises_not_found(
        self, store: BlobStore, tmp_path: Path
    ) -> None:
        with pytest.raises(NotFoundError):
            store.put_file("k", tmp_path / "no-such-file")
        assert not store.exists("k")

    def test_prefix_of_existing_keys_is_not_an_object(self, store: BlobStore) -> None:
        store.put("dir/file", b"x")
        assert store.exists("dir") is False
        for operation in (lambda: store.stat("dir"), lambda: store.get("dir"),
                          lambda: store.get("dir", RangeRequest(0, 1)),
                          lambda: store.copy("dir", "elsewhere")):
            with pytest.raises(NotFoundError):
                operation()
        store.delete("dir")  # deleting a "folder" is deleting a missing key: a no-op
        assert store.get("dir/file") == b"x"

    # ------------------------------------------------------------ put, get, stat
    def test_round_trip(self, store: BlobStore) -> None:
        info = store.put("a/b/c.bin", _SMALL)
        assert (info.key, info.size) == ("a/b/c.bin", len(_SMALL))
        assert store.get("a/b/c.bin") == _SMALL
        assert store.stat("a/b/c.bin").size == len(_SMALL)
        assert store.exists("a/b/c.bin") is True

    def test_empty_object(self, store: BlobStore) -> None:
        assert store.put("empty", b"").size == 0
        assert store.get("empty") == b""
        assert store.stat("empty").size == 0
        assert [(i.key, i.size) for i in store.list()] == [("empty", 0)]

    @pytest.mark.parametrize("request_", _EMPTY_WINDOWS, ids=repr)
    def test_ranged_read_of_empty_object(self, store: BlobStore, request_: ByteRequest) -> None:
        store.put("empty", b"")
        assert store.get("empty", request_) == b""

    def test_put_accepts_bytearray_and_memoryview(self, store: BlobStore) -> None:
        store.put("ba", bytearray(b"bytearray"))
        store.put("mv", memoryview(b"xxmemoryview")[2:])
        assert (store.get("ba"), store.get("mv")) == (b"bytearray", b"memoryview")

    def test_overwrite_last_write_wins(self, store: BlobStore) -> None:
        for data in (b"first version", b"the second, longer version", b"3"):
            store.put("k", data)
        assert store.get("k") == b"3"
        assert store.stat("k").size == 1
        assert keys_of(store) == ["k"]

    # ------------------------------------------------------------- put_if_absent
    def test_put_if_absent_writes_a_new_key(self, store: BlobStore) -> None:
        info = store.put_if_absent("new", b"payload")
        assert (info.key, info.size) == ("new", 7)
        assert store.get("new") == b"payload"

    def test_put_if_absent_keeps_the_existing_object(self, store: BlobStore) -> None:
        store.put("k", b"original")
        with pytest.raises(AlreadyExistsError):
            store.put_if_absent("k", b"replacement")
        assert store.get("k") == b"original"

    def test_put_if_absent_after_delete_writes_again(self, store: BlobStore) -> None:
        store.put_if_absent("k", b"one")
        store.delete("k")
        store.put_if_absent("k", b"two")
        assert store.get("k") == b"two"

    def test_concurrent_put_if_absent_has_one_winner(self, store: BlobStore) -> None:
        if not store.capabilities.atomic_put_if_absent:
            pytest.skip("put_if_absent is not atomic on this backend")
        barrier = threading.Barrier(self.concurrent_writers)

        def attempt(i: int) -> int | None:
            barrier.wait()
            try:
                store.put_if_absent("race", f"writer {i}".encode())
            except AlreadyExistsError:
                return None
            return i

        winners = [i for i in parallel(attempt, range(self.concurrent_writers),
                                       self.concurrent_writers) if i is not None]
        assert len(winners) == 1
        assert store.get("race") == f"writer {winners[0]}".encode()

    # --------------------------------------------------------------- ranged reads
    @pytest.mark.parametrize(("request_", "expected"), _RANGES, ids=_RANGE_IDS)
    def test_ranged_read(self, store: BlobStore, request_: ByteRequest, expected: bytes
                         ) -> None:
        store.put("obj", _SMALL)
        assert store.get("obj", request_) == expected

    @pytest.mark.parametrize(
        "request_",
        [RangeRequest(0, 10), RangeRequest(3, 3), OffsetRequest(0), SuffixRequest(5),
         SuffixRequest(0)],
        ids=repr,
    )
    def test_ranged_read_of_missing_key_raises_not_found(
        self, store: BlobStore, request_: ByteRequest
    ) -> None:
        with pytest.raises(NotFoundError):
            store.get("missing", request_)

    # ------------------------------------------------------------------- listing
    def test_list_of_empty_store(self, store: BlobStore) -> None:
        assert list(store.list()) == []
        page = store.list_page()
        assert (page.items, page.next_start_after) == ([], None)

    def test_list_prefix_is_a_plain_string_prefix(self, store: BlobStore) -> None:
        for key in ("a/1", "a/2", "a-z", "ab", "abc/x", "b"):
            store.put(key, key.encode())
        assert keys_of(store, "a/") == ["a/1", "a/2"]
        assert keys_of(store, "a") == ["a-z", "a/1", "a/2", "ab", "abc/x"]
        assert keys_of(store, "ab") == ["ab", "abc/x"]
        assert keys_of(store, "abc/") == ["abc/x"]
        assert keys_of(store, "a/1") == ["a/1"]
        assert keys_of(store, "ab/") == []
        assert keys_of(store, "c") == []
        assert keys_of(store) == ["a-z", "a/1", "a/2", "ab", "abc/x", "b"]

    def test_list_reports_sizes(self, store: BlobStore) -> None:
        store.put("s/one", b"1")
        store.put("s/three", b"333")
        assert [(i.key, i.size) for i in store.list("s/")] == [("s/one", 1), ("s/three", 3)]

    def test_list_is_sorted_by_key_not_by_folder(self, store: BlobStore) -> None:
        keys = ["m/0", "m/1/deep/k", "m/10", "m/2", "m/B", "m/a", "m/a-b/c", "m/a0"]
        for key in random.Random(7).sample(keys, len(keys)):
            store.put(key, b"")
        assert keys_of(store, "m/") == sorted(keys)

    def test_list_page_limit_and_start_after(self, store: BlobStore) -> None:
        keys = [f"k{i:02d}" for i in range(10)]
        parallel(lambda key: store.put(key, b"v"), keys, self.threads)
        first = store.list_page(limit=4)
        assert ([i.key for i in first.items], first.next_start_after) == (keys[:4], "k03")
        second = store.list_page(start_after="k03", limit=4)
        assert [i.key for i in second.items] == keys[4:8]
        last = store.list_page(start_after="k07", limit=4)
        assert ([i.key for i in last.items], last.next_start_after) == (keys[8:], None)

    def test_list_page_start_after_need_not_be_a_key(self, store: BlobStore) -> None:
        for key in ("k1", "k2", "k3", "x1"):
            store.put(key, b"v")
        assert [i.key for i in store.list_page(start_after="k15").items] == ["k2", "k3", "x1"]
        assert [i.key for i in store.list_page("k", start_after="k2").items] == ["k3"]
        assert store.list_page(start_after="z").items == []

    def test_list_pages_that_end_exactly_at_the_limit(self, store: BlobStore) -> None:
        keys = [f"p/{i}" for i in range(8)]
        parallel(lambda key: store.put(key, b"v"), keys, self.threads)
        page = store.list_page("p/", start_after="p/3", limit=4)
        assert page.next_start_after == "p/7"
        assert store.list_page("p/", start_after="p/7", limit=4).items == []
        assert [i.key for i in store.list("p/", page_size=4)] == keys

    def test_list_more_than_a_thousand_keys(self, store: BlobStore) -> None:
        keys = [f"many/{i:05d}" for i in range(self.many_keys)]
        parallel(lambda key: store.put(key, b""), [*keys, "manx", "man"], self.threads)
        listed = keys_of(store, "many/")
        assert len(listed) == len(set(listed)) == self.many_keys
        assert listed == keys
        big_page = store.list_page("many/", limit=self.many_keys - 50)
        assert [i.key for i in big_page.items] == keys[: self.many_keys - 50]
        assert len(keys_of(store)) == self.many_keys + 2

    # ------------------------------------------------------------- large objects
    def test_large_object_put_and_get(self, store: BlobStore) -> None:
        data = payload(self.large_object_size)
        assert store.put("large/object", data).size == len(data)
        assert store.stat("large/object").size == len(data)
        assert sha256(store.get("large/object")) == sha256(data)
        edge = RangeRequest(self.part_size - 100, self.part_size + 100)
        assert store.get("large/object", edge) == data[edge.start:edge.end]
        assert store.get("large/object", SuffixRequest(10)) == data[-10:]

    def test_large_object_put_file_and_get_file(self, store: BlobStore, tmp_path: Path
                                                ) -> None:
        source, target = tmp_path / "source.bin", tmp_path / "copy" / "target.bin"
        source.write_bytes(payload(self.large_object_size))
        assert store.put_file("large/file", source).size == self.large_object_size
        assert store.stat("large/file").size == self.large_object_size
        assert store.get_file("large/file", target).size == self.large_object_size
        assert file_sha256(target) == file_sha256(source)

    def test_get_file_replaces_an_existing_file(self, store: BlobStore, tmp_path: Path
                                                ) -> None:
        target = tmp_path / "target.bin"
        target.write_bytes(b"old contents, longer than the new ones")
        store.put("k", b"new")
        store.get_file("k", target)
        assert target.read_bytes() == b"new"

    # --------------------------------------------------------------- concurrency
    def test_concurrent_writers_to_different_keys_all_land(self, store: BlobStore) -> None:
        items = {f"w/{i:03d}": f"writer {i}".encode() * 100 for i in range(48)}
        parallel(lambda key: store.put(key, items[key]), items, self.threads)
        assert keys_of(store, "w/") == sorted(items)
        assert parallel(store.get, sorted(items), self.threads) == [items[k] for k in
                                                                      sorted(items)]

    def test_concurrent_writers_to_one_key_never_mix(self, store: BlobStore) -> None:
        size, writers = self.concurrent_payload_size, self.concurrent_writers
        payloads = {bytes([i + 1]) * size for i in range(writers)}
        done = threading.Event()
        seen: list[bytes | None] = []

        def read_until_done() -> None:
            while not done.is_set():
                seen.append(self._get_or_none(store, "contested"))

        reader = threading.Thread(target=read_until_done)
        reader.start()
        try:
            parallel(lambda data: store.put("contested", data), sorted(payloads), writers)
        finally:
            done.set()
            reader.join()
        assert store.get("contested") in payloads
        assert all(data is None or data in payloads for data in seen)

    @staticmethod
    def _get_or_none(store: BlobStore, key: str) -> bytes | None:
        try:
            return store.get(key)
        except NotFoundError:
            return None

    # --------------------------------------------------------------- unicode keys
    @pytest.mark.parametrize("key", UNICODE_KEYS)
    def test_unicode_key_round_trip(self, store: BlobStore, key: str) -> None:
        store.put(key, key.encode())
        assert store.get(key) == key.encode()
        assert store.stat(key).key == key
        assert keys_of(store) == [key]
        assert keys_of(store, key.split("/")[0] + "/") == [key]

    def test_unicode_keys_list_exactly_and_in_order(self, store: BlobStore) -> None:
        for key in UNICODE_KEYS:
            store.put(key, b"x")
        assert keys_of(store) == sorted(UNICODE_KEYS)

    # -------------------------------------------------------------------- delete
    def test_delete_of_missing_key_is_a_no_op(self, store: BlobStore) -> None:
        store.delete("missing")
        store.delete("missing/nested/key")
        assert list(store.list()) == []

    def test_delete_then_get_raises_not_found(self, store: BlobStore) -> None:
        store.put("d/1", b"one")
        store.delete("d/1")
        with pytest.raises(NotFoundError):
            store.get("d/1")
        assert store.exists("d/1") is False
        assert keys_of(store) == []

    def test_delete_touches_only_its_key(self, store: BlobStore) -> None:
        for key in ("d/1", "d/10", "d/1x", "d/2/1"):
            store.put(key, key.encode())
        store.delete("d/1")
        assert keys_of(store) == ["d/10", "d/1x", "d/2/1"]
        store.delete("d/2/1")
        store.put("d/2/1", b"again")  # a prefix emptied by delete can be written again
        assert store.get("d/2/1") == b"again"

    # ---------------------------------------------------------------------- copy
    def test_copy_leaves_both_readable(self, store: BlobStore) -> None:
        store.put("src", _SMALL)
        info = store.copy("src", "nested/dst")
        assert (info.key, info.size) == ("nested/dst", len(_SMALL))
        assert store.get("src") == store.get("nested/dst") == _SMALL
        assert keys_of(store) == ["nested/dst", "src"]

    def test_copy_replaces_an_existing_target(self, store: BlobStore) -> None:
        store.put("src", b"new")
        store.put("dst", b"old and longer")
        store.copy("src", "dst")
        assert store.get("dst") == b"new"

    def test_copy_of_missing_key_raises_not_found(self, store: BlobStore) -> None:
        with pytest.raises(NotFoundError):
            store.copy("missing", "dst")
        assert store.exists("dst") is False

    # ------------------------------------------------------- keys that nest
    def test_key_that_is_a_prefix_of_another(self, store: BlobStore) -> None:
        store.put("p", b"short")
        if self.key_can_be_prefix_of_other_keys:
            store.put("p/q", b"long")
            assert (store.get("p"), store.get("p/q")) == (b"short", b"long")
            assert keys_of(store, "p") == ["p", "p/q"]
        else:
            with pytest.raises(ConflictError):
                store.put("p/q", b"long")
            assert keys_of(store) == ["p"]
            assert store.get("p") == b"short"

    # ----------------------------------------------------- get_into, write batches
    def test_get_into_fills_the_buffer_and_returns_the_size(self, store: BlobStore) -> None:
        store.put("k", _SMALL)
        buffer = bytearray(len(_SMALL) + 7)
        assert store.get_into("k", memoryview(buffer)) == len(_SMALL)
        assert bytes(buffer[: len(_SMALL)]) == _SMALL

    def test_get_into_an_exact_numpy_buffer(self, store: BlobStore) -> None:
        import numpy as np

        values = np.arange(1000, dtype=np.float64)
        store.put("array", values.tobytes())
        out = np.zeros(1000, dtype=np.float64)
        assert store.get_into("array", out.view(np.uint8).data) == values.nbytes
        assert np.array_equal(out, values)

    def test_get_into_a_buffer_too_small_raises(self, store: BlobStore) -> None:
        store.put("k", _SMALL)
        with pytest.raises(IntegrityError):
            store.get_into("k", memoryview(bytearray(len(_SMALL) - 1)))

    def test_get_into_of_missing_key_raises_not_found(self, store: BlobStore) -> None:
        with pytest.raises(NotFoundError):
            store.get_into("missing", memoryview(bytearray(8)))

    def test_write_batch_objects_are_readable_after_commit(self, store: BlobStore) -> None:
        batch = store.write_batch()
        payloads = {f"batch/{i:03d}/c.0": bytes([i % 251]) * (i * 37) for i in range(60)}
        parallel(lambda item: batch.put(*item), list(payloads.items()), self.threads)
        batch.put("batch/zarr.json", memoryview(b'{"zarr_format": 3}'))
        batch.commit()
        assert keys_of(store, "batch/") == sorted([*payloads, "batch/zarr.json"])
        for key, payload in payloads.items():
            assert store.get(key) == payload
        assert store.get("batch/zarr.json") == b'{"zarr_format": 3}'

    def test_empty_write_batch_commits(self, store: BlobStore) -> None:
        store.write_batch().commit()
        assert keys_of(store) == []

    # ------------------------------------------------- read_at, positional writers
    def test_read_at_reads_a_window_and_stops_at_the_end(self, store: BlobStore) -> None:
        store.put("k", _SMALL)
        out = bytearray(10)
        assert store.read_at("k", 3, memoryview(out)) == 10
        assert bytes(out) == _SMALL[3:13]
        tail = bytearray(len(_SMALL))
        assert store.read_at("k", len(_SMALL) - 4, memoryview(tail)) == 4
        assert bytes(tail[:4]) == _SMALL[-4:]
        assert store.read_at("k", len(_SMALL) + 5, memoryview(bytearray(3))) == 0
        with pytest.raises(NotFoundError):
            store.read_at("missing", 0, memoryview(bytearray(3)))

    def test_a_reader_reads_windows_from_many_threads(self, store: BlobStore) -> None:
        data = payload(3 * 2**20 + 17)
        store.put("big", data)
        windows = [(offset, 65_536) for offset in range(0, len(data), 65_536)]
        with store.open_reader("big") as reader:
            def read(window: tuple[int, int]) -> bytes:
                out = bytearray(window[1])
                got = reader.read_at(window[0], memoryview(out))
                return bytes(out[:got])

            with ThreadPoolExecutor(8) as pool:
                assert b"".join(pool.map(read, windows)) == data
            assert reader.read_at(len(data) + 5, memoryview(bytearray(3))) == 0
            with pytest.raises(ValueError):
                reader.read_at(-1, memoryview(bytearray(3)))
        reader.close()  # twice is fine

    def test_a_reader_checksums_what_it_reads(self, store: BlobStore) -> None:
        data = payload(2 * CACHED_PIECE + 1001)  # windows across pieces and past the end
        store.put("big", data)
        with store.open_reader("big") as reader:
            for offset, length in [(0, len(data)), (7, CACHED_PIECE + 3), (CACHED_PIECE, 10),
                                   (len(data) - 100, CACHED_PIECE), (len(data) + 1, 8)]:
                out = bytearray(length)
                got, checksum = reader.read_checksummed_at(offset, memoryview(out))
                expected = data[offset:offset + length]
                assert (got, bytes(out[:got])) == (len(expected), expected)
                assert checksum == zlib.crc32(expected)

    def test_a_positional_writer_checksums_what_it_writes(self, store: BlobStore) -> None:
        data = payload(2 * CACHED_PIECE + 1001)
        writer = store.open_positional("packed", len(data) + 5)
        try:
            assert writer.write_checksummed_at(5, memoryview(data)) == zlib.crc32(data)
            assert writer.write_checksummed_at(0, b"") == 0
            with pytest.raises(ValueError, match="outside"):
                writer.write_checksummed_at(6, data)
            writer.commit()
        finally:
            writer.abort()
        assert store.get("packed") == bytes(5) + data

    def test_a_reader_of_a_missing_object_raises_not_found(self, store: BlobStore) -> None:
        with pytest.raises(NotFoundError), store.open_reader("missing") as reader:
            reader.read_at(0, memoryview(bytearray(3)))
        with pytest.raises(InvalidNameError):
            store.open_reader("../escape")

    def test_positional_writes_in_any_order_appear_whole_at_commit(
        self, store: BlobStore
    ) -> None:
        pieces = [(offset, bytes([offset % 251]) * 1000) for offset in range(0, 64_000, 1000)]
        store.put("packed", b"old")
        writer = store.open_positional("packed", 64_000 + 10)
        parallel(lambda piece: writer.write_at(*piece), list(reversed(pieces)), self.threads)
        assert store.get("packed") == b"old"  # nothing visible before commit
        assert writer.commit().size == 64_010
        data = store.get("packed")
        assert data == b"".join(piece for _, piece in pieces) + bytes(10)  # unwritten: zeros
        assert keys_of(store) == ["packed"]

    def test_aborted_positional_writer_leaves_nothing(self, store: BlobStore) -> None:
        writer = store.open_positional("dir/packed", 100)
        writer.write_at(0, b"x" * 100)
        writer.abort()
        writer.abort()  # twice is harmless
        assert keys_of(store) == []
        assert not store.exists("dir/packed")

    def test_positional_write_outside_the_size_is_refused(self, store: BlobStore) -> None:
        writer = store.open_positional("packed", 10)
        try:
            with pytest.raises(ValueError, match="outside"):
                writer.write_at(8, b"abc")
        finally:
            writer.abort()
        with pytest.raises(InvalidNameError):
            store.open_positional("../escape", 10)

    # -------------------------------------------------------------- invalid keys
    @pytest.mark.parametrize("key", INVALID_KEYS, ids=lambda key: repr(key)[:12])
    def test_invalid_key_is_refused_before_storage(
        self, store: BlobStore, key: str, tmp_path: Path
    ) -> None:
        source, target = tmp_path / "source", tmp_path / "target"
        source.write_bytes(b"data")
        store.put("valid", b"data")
        for operation in self._key_operations(store, key, source, target):
            with pytest.raises(InvalidNameError):
                operation()
        assert keys_of(store) == ["valid"]
        assert not target.exists()

    @staticmethod
    def _key_operations(store: BlobStore, key: str, source: Path, target: Path
                        ) -> list[Callable[[], Any]]:
        return [
            lambda: store.get(key), lambda: store.get(key, RangeRequest(0, 1)),
            lambda: store.put(key, b"x"), lambda: store.put_if_absent(key, b"x"),
            lambda: store.put_file(key, source), lambda: store.get_file(key, target),
            lambda: store.stat(key), lambda: store.exists(key), lambda: store.delete(key),
            lambda: store.copy(key, "valid-copy"), lambda: store.copy("valid", key),
            lambda: store.get_into(key, memoryview(bytearray(8))),
            lambda: store.write_batch().put(key, b"x"),
        ]

    # ------------------------------------------------------------------- errors
    def test_every_error_is_a_dataplane_error(self, store: BlobStore, tmp_path: Path
                                              ) -> None:
        store.put("exists", b"x")
        expected: list[tuple[type[DataplaneError], Callable[[], Any]]] = [
            (NotFoundError, lambda: store.get("missing")),
            (NotFoundError, lambda: store.get("missing", SuffixRequest(3))),
            (NotFoundError, lambda: store.stat("missing")),
            (NotFoundError, lambda: store.copy("missing", "target")),
            (NotFoundError, lambda: store.get_file("missing", tmp_path / "out")),
            (NotFoundError, lambda: store.put_file("k", tmp_path / "missing")),
            (AlreadyExistsError, lambda: store.put_if_absent("exists", b"y")),
            (InvalidNameError, lambda: store.get("../escape")),
            (NotFoundError, lambda: store.get_into("missing", memoryview(bytearray(1)))),
            (IntegrityError, lambda: store.get_into("exists", memoryview(bytearray(0)))),
        ]
        for error_class, operation in expected:
            with pytest.raises(DataplaneError) as caught:
                operation()
            assert isinstance(caught.value, error_class), caught.value

