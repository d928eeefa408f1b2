"""The packed layout (local disk): one uncompressed zip per save, standard and verified.

Every other checkpoint test runs on it too (it is the local default); these pin what is
particular to it: the archive is the only data object, standard zip tools and zarr's own
ZipStore read it, a cut archive is an integrity error, the folder layout stays available
on local disk, and a killed writer's staged file does not outlive it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import zarr
import zarr.storage
from ckpt_support import CkptSite, assert_same, local_site, small_store
from dataplane_adapters.local import STAGING

import dataplane
from dataplane.checkpoints import IOSettings
from dataplane.checkpoints.archive import ARCHIVE, ROOT, ArchivePlan


def state() -> dict[str, object]:
    rng = np.random.default_rng(5)
    return {"w": rng.standard_normal((40, 9)), "b": np.arange(7, dtype=np.int16),
            "nested": {"s": np.array(3.5)}, "epoch": 4}


def test_a_local_save_is_one_archive_and_a_manifest(tmp_path: Path) -> None:
    site = local_site(tmp_path)
    with site.plane() as plane:
        saved = small_store(plane).save("p", 1, state())
        prefix = site.key_of(saved)
        assert site.keys(prefix + "/") == {f"{prefix}/{ARCHIVE}",
                                           f"{prefix}/dataplane-manifest.json"}
        archive = Path(site.root, prefix, ARCHIVE)
        with zipfile.ZipFile(archive) as packed:
            assert packed.testzip() is None  # every entry's CRC-32 is right
            names = set(packed.namelist())
            assert all(info.compress_type == zipfile.ZIP_STORED for info in packed.infolist())
        assert {f"{ROOT}/zarr.json", f"{ROOT}/w/zarr.json", f"{ROOT}/nested/zarr.json",
                f"{ROOT}/nested/s/c"} <= names
        group = zarr.open_group(store=zarr.storage.ZipStore(archive, mode="r"), path=ROOT,
                                mode="r", use_consolidated=False)
        np.testing.assert_array_equal(group["w"][:], state()["w"])  # type: ignore[index]
        assert site.keys(STAGING) == set()


def test_a_cut_archive_is_an_integrity_error_and_the_previous_step_loads(
    tmp_path: Path,
) -> None:
    site = local_site(tmp_path)
    with site.plane() as plane:
        store = small_store(plane)
        store.save("p", 1, state())
        cut = store.save("p", 2, state())
        archive = Path(site.root, site.key_of(cut), ARCHIVE)
        os.truncate(archive, archive.stat().st_size // 2)
        with pytest.raises(dataplane.IntegrityError, match=r"array '\w+' chunk"):
            store.load("p", 2)
        with pytest.raises(dataplane.IntegrityError):
            store.verify("p", 2)
        assert_same(store.load("p", 1), state())


def test_the_folder_layout_stays_available_on_local_disk(tmp_path: Path) -> None:
    site = local_site(tmp_path)
    with site.plane() as plane:
        store = small_store(plane, IOSettings(chunk_bytes=512, pack=False))
        saved = store.save("f", 1, state())
        assert not saved.url.startswith("zip")
        assert f"{site.key_of(saved)}/w/c.0.0" in site.keys(site.key_of(saved))
        assert_same(store.load("f"), state())
        key = site.object_key(saved, "w/c.1.0")
        site.flip_byte(key, 5)
        with pytest.raises(dataplane.IntegrityError, match=r"'w'.*chunk 1\.0"):
            store.load("f")


def test_a_killed_positional_writer_leaves_no_staged_file(tmp_path: Path) -> None:
    """The staged archive of a writer killed mid-save goes at the next store open."""
    site: CkptSite = local_site(tmp_path)
    child = textwrap.dedent(f"""
        import sys, time
        from dataplane.blob import open_store
        store = open_store({site.url!r})
        writer = store.open_positional("run/step/{ARCHIVE}", 1 << 20)
        writer.write_at(0, b"x" * 4096)
        print("ready", flush=True)
        time.sleep(60)
    """)
    process = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        staged = Path(site.root, STAGING)
        assert len(list(staged.iterdir())) == 1
        dataplane.blob.open_store(site.url).close()  # the writer lives: its file stays
        assert len(list(staged.iterdir())) == 1
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    dataplane.blob.open_store(site.url).close()
    assert list(Path(site.root, STAGING).iterdir()) == []
    assert site.keys() == set()


def test_zip64_offsets_past_4_gib_are_read_by_zipfile(tmp_path: Path) -> None:
    """An archive past 4 GiB (a sparse file here) gets zip64 sizes and offsets."""
    big = (1 << 32) + 10
    plan = ArchivePlan([(f"{ROOT}/big/c.0", big), (f"{ROOT}/small/c.0", 5)])
    path = tmp_path / ARCHIVE
    with open(path, "wb") as file:
        file.truncate(plan.total_size)
        crcs = {f"{ROOT}/big/c.0": 0, f"{ROOT}/small/c.0": zlib.crc32(b"hello")}
        for name, crc in crcs.items():
            file.seek(plan.entry(name).header_offset)
            file.write(plan.local_header(name, crc))
        file.seek(plan.entry(f"{ROOT}/small/c.0").data_offset)
        file.write(b"hello")
        file.seek(plan.directory_offset)
        file.write(plan.central_directory(crcs))
    with zipfile.ZipFile(path) as packed:
        assert packed.getinfo(f"{ROOT}/big/c.0").file_size == big
        assert packed.getinfo(f"{ROOT}/small/c.0").header_offset > 1 << 32
        assert packed.read(f"{ROOT}/small/c.0") == b"hello"
