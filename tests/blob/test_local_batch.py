"""The local adapter's write batch: files in place, one barrier, staging names refused."""

from __future__ import annotations

import os
from pathlib import Path

import dataplane_adapters.local as local
import pytest
from dataplane_adapters.local import STAGING, LocalBlobStore

from dataplane.errors import InvalidNameError


def test_batch_writes_in_place_without_staging_files(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    batch = store.write_batch()
    batch.put("ckpt/w/c.0.0", b"abc")
    batch.put("ckpt/w/zarr.json", b"{}")
    assert os.listdir(tmp_path / STAGING) == []
    batch.commit()
    assert (tmp_path / "ckpt/w/c.0.0").read_bytes() == b"abc"
    assert [i.key for i in store.list("ckpt/")] == ["ckpt/w/c.0.0", "ckpt/w/zarr.json"]


def test_batch_refuses_staging_keys(tmp_path: Path) -> None:
    with pytest.raises(InvalidNameError, match="staging"):
        LocalBlobStore(tmp_path).write_batch().put(f"{STAGING}/x", b"x")


def test_commit_falls_back_to_fsync_of_every_file_and_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A test double for a platform without syncfs(2) (a real Linux always has it): the
    # fallback must fsync every file and every folder the batch created.
    monkeypatch.setattr(local, "_LIBC", None)
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(local.os, "fsync", recording_fsync)
    batch = LocalBlobStore(tmp_path).write_batch()
    batch.put("a/b/c.0", b"1")
    batch.put("a/d/c.0", b"2")
    batch.commit()
    expected = {str(tmp_path / p) for p in ("a/b/c.0", "a/d/c.0", "a", "a/b", "a/d")}
    assert expected <= set(synced)


def test_commit_without_fsync_option_syncs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(local.os, "fsync", calls.append)
    monkeypatch.setattr(local, "_LIBC", None)
    batch = LocalBlobStore(tmp_path, fsync=False).write_batch()
    batch.put("k/c.0", b"x")
    batch.commit()
    assert calls == [] and (tmp_path / "k/c.0").read_bytes() == b"x"


def test_a_local_reader_keeps_reading_the_file_it_opened(tmp_path: Path) -> None:
    """An archive replaced (or removed) under a reader does not tear the reader's view."""
    from dataplane.blob import open_store

    store = open_store(tmp_path.as_uri(), {})
    store.put("a/archive", b"old bytes")
    with store.open_reader("a/archive") as reader:
        store.put("a/archive", b"new bytes")
        out = bytearray(9)
        assert reader.read_at(0, memoryview(out)) == 9 and bytes(out) == b"old bytes"
        store.delete("a/archive")
        assert reader.read_at(4, memoryview(out)) == 5 and bytes(out[:5]) == b"bytes"
