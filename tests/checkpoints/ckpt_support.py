"""Helpers shared by the checkpoint tests: test sites with raw access, states, comparisons.

A :class:`CkptSite` is one backend a test plane saves checkpoints to (a local folder, a
bucket on the session's moto S3 server, or a bucket on the session's fake-gcs-server),
together with a way to reach the stored objects *without* dataplane (plain file I/O, a raw
s3fs or gcsfs client), so tests can list, corrupt or remove objects behind dataplane's back.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import shutil
import struct
import subprocess
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from dataplane_adapters.local import STAGING, LocalBlobStore

import dataplane
from dataplane.checkpoints import Checkpoint, CheckpointStore, IOSettings
from dataplane.checkpoints.archive import ARCHIVE, ROOT
from dataplane.facade import DataPlane

TENANT = "default"

#: Small chunks, so modest arrays span several chunks (and padded edge chunks), and a
#: small-array threshold low enough that most arrays take the one-task-per-chunk path
#: while the tiniest ones still go through the batched path.
SMALL_CHUNKS = IOSettings(chunk_bytes=512, workers=4, small_bytes=700, batch_bytes=4096)


@dataclass
class CkptSite:
    """A backend for one test: its config mapping and raw access to its objects."""

    backend: str  # "local", "s3" or "gcs"
    config: dict[str, Any]
    url: str  # the backend URL as configured
    root: str  # local: the blob folder; s3/gcs: "bucket/prefix"
    fs: Any = None  # s3/gcs: a raw fsspec client (no dataplane code in between)

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
        return json.dumps(self.config)

    # ---------------------------------------------------------------- raw access
    # A packed checkpoint is one archive: its entries are addressed as
    # ``<prefix>/checkpoint.zip!<name>`` and read or overwritten in place, found with the
    # standard library's zipfile (no dataplane code in between).
    def key_of(self, checkpoint: Checkpoint) -> str:
        """The key prefix (relative to the backend root) that holds ``checkpoint``."""
        base = self.url.rstrip("/") + "/"
        url = checkpoint.url.removeprefix(f"zip://{ROOT}::").removesuffix(f"/{ARCHIVE}")
        assert url.startswith(base), (checkpoint.url, base)
        return url[len(base):]

    def object_key(self, checkpoint: Checkpoint, name: str) -> str:
        """The key of ``name`` (``"w/c.0.0"``, ``"zarr.json"``) in the checkpoint's layout."""
        prefix = self.key_of(checkpoint)
        packed = checkpoint.url.startswith("zip://")
        return f"{prefix}/{ARCHIVE}!{ROOT}/{name}" if packed else f"{prefix}/{name}"

    def _entry(self, key: str) -> tuple[str, int, int]:
        """``(archive key, data offset, size)`` of an archive entry key."""
        archive, name = key.split("!", 1)
        raw = self.read(archive)
        with zipfile.ZipFile(io.BytesIO(raw)) as packed:
            info = packed.getinfo(name)
        name_len, extra_len = struct.unpack_from("<HH", raw, info.header_offset + 26)
        return archive, info.header_offset + 30 + name_len + extra_len, info.file_size

    def read(self, key: str) -> bytes:
        if "!" in key:
            archive, offset, size = self._entry(key)
            return self.read(archive)[offset:offset + size]
        if self.fs is None:
            return Path(self.root, key).read_bytes()
        return bytes(self.fs.cat_file(f"{self.root}/{key}"))

    def write(self, key: str, data: bytes) -> None:
        """Overwrite (or create) a stored object, as a disk fault or a rogue writer would;
        an archive entry is overwritten in place (same length only)."""
        if "!" in key:
            archive, offset, size = self._entry(key)
            assert len(data) == size, "an archive entry is rewritten in place, same length"
            if self.fs is None:
                with open(Path(self.root, archive), "r+b") as file:
                    file.seek(offset)
                    file.write(data)
                return
            whole = bytearray(self.read(archive))
            whole[offset:offset + size] = data
            key, data = archive, bytes(whole)
        if self.fs is None:
            path = Path(self.root, key)
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                os.chmod(path, 0o644)
            path.write_bytes(data)
        else:
            self.fs.pipe_file(f"{self.root}/{key}", data)

    def flip_byte(self, key: str, offset: int) -> bytes:
        """Invert one byte of a stored object; returns the original bytes."""
        original = self.read(key)
        data = bytearray(original)
        data[offset % len(data)] ^= 0xFF
        self.write(key, bytes(data))
        return original

    def keys(self, prefix: str = "") -> set[str]:
        """Every stored object key (relative to the backend root) starting with ``prefix``."""
        if self.fs is None:
            root = Path(self.root)
            if not root.exists():
                return set()
            found = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
            return {k for k in found if k.startswith(prefix) and not k.startswith(STAGING + "/")}
        self.fs.invalidate_cache()
        skip = len(self.root) + 1
        return {p[skip:] for p in self.fs.find(self.root) if p[skip:].startswith(prefix)}

    def chunk_keys(self, checkpoint: Checkpoint) -> dict[str, tuple[str, str]]:
        """Every chunk object (or archive entry) of ``checkpoint``: key -> (array key,
        chunk suffix "i.j")."""
        prefix = self.key_of(checkpoint) + "/"
        names = {key[len(prefix):]: key for key in self.keys(prefix)}
        if ARCHIVE in names:
            with zipfile.ZipFile(io.BytesIO(self.read(names[ARCHIVE]))) as packed:
                names = {n.removeprefix(f"{ROOT}/"): f"{prefix}{ARCHIVE}!{n}"
                         for n in packed.namelist()}
        out: dict[str, tuple[str, str]] = {}
        for rel, key in names.items():
            owners = [a for a in checkpoint.keys if rel == f"{a}/c" or rel.startswith(f"{a}/c.")]
            if not owners:
                continue  # zarr.json files and the manifest
            array = max(owners, key=len)
            out[key] = (array, rel[len(array) + 3:] or "0")
        return out

    def step_prefixes(self, run: str) -> set[str]:
        """The step folders (``<tenant>/checkpoints/<run>/step-...``) holding any object."""
        root = f"{TENANT}/checkpoints/{run}/"
        return {root + key[len(root):].split("/", 1)[0] for key in self.keys(root)}


@dataclass
class RichSaved:
    """One rich state saved once per backend (small chunks) and shared by read-only tests."""

    site: CkptSite
    plane: DataPlane
    store: CheckpointStore
    state: dict[str, Any]  # a private copy: equal to what was saved
    checkpoint: Checkpoint
    run: str = "rich"
    step: int = 7


def local_site(tmp: Path, blobs: Path | None = None, url: str | None = None) -> CkptSite:
    blobs = blobs or tmp / "blobs"
    url = url or blobs.as_uri()
    config = {
        "catalog": {"url": f"sqlite:///{tmp / 'catalog.db'}"},
        "defaults": {"backend": "local"},
        "backends": {"local": {"url": url}},
        "cache": {"dir": str(tmp / "cache")},
    }
    return CkptSite("local", config, url, str(blobs))


def remote_site(backend: str, tmp: Path, url: str, options: dict[str, Any], root: str,
                fs: Any) -> CkptSite:
    config = {
        "catalog": {"url": f"sqlite:///{tmp / 'catalog.db'}"},
        "defaults": {"backend": backend},
        "backends": {backend: {"url": url, **options}},
        "cache": {"dir": str(tmp / "cache")},
    }
    return CkptSite(backend, config, url, root, fs)


def small_store(plane: DataPlane, settings: IOSettings = SMALL_CHUNKS) -> CheckpointStore:
    """A checkpoint store on ``plane`` with small chunks (closed with the test)."""
    return CheckpointStore(plane, settings=settings)


# ------------------------------------------------------------------------ states
def _numeric(rng: np.random.Generator, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return rng.random(shape) > 0.5
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
    if dt.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dt)
    values = (rng.standard_normal(shape) * 100).astype(dt)
    flat = values.reshape(-1)
    flat[:4] = [np.nan, np.inf, -np.inf, -0.0]  # special values survive bit for bit
    return values


NUMPY_DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                "uint64", "float16", "float32", "float64", "complex64", "complex128"]


def rich_state(seed: int = 0) -> dict[str, Any]:
    """A nested training state with every supported kind of leaf.

    With :data:`SMALL_CHUNKS` (512-byte chunks) every numeric array spans 3-4 chunks along
    its first dimension with a padded edge chunk; ``grid2d`` spans a 2-d chunk grid.
    """
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    numeric = {}
    for name in NUMPY_DTYPES:
        itemsize = np.dtype(name).itemsize
        rows = 1280 // (5 * itemsize) + 3  # ~2.5 chunks of 512 bytes, the last one partial
        numeric[name] = _numeric(rng, name, (rows, 5))
    base2d = rng.standard_normal((40, 7)).astype(np.float32)
    base1d = np.arange(600, dtype=np.int64) * 3 - 7
    fortran = np.asfortranarray(rng.standard_normal((9, 13)))
    return {
        "numpy": numeric,
        "views": {
            "transposed": base2d.T,  # non-contiguous
            "strided": base1d[::3],
            "sliced2d": base2d[::2, 1:5],
            "fortran": fortran,
            "negative_stride": base1d[::-1][:100],
        },
        "grid2d": rng.standard_normal((6, 197)),  # chunks (1, 50): a 6 x 4 grid, 47 at the edge
        "zero_d": {"f": np.array(3.5), "b": np.array(True), "u8": np.array(7, np.uint8),
                   "c": np.array(1 - 2j, np.complex64)},
        "empty": {"rows": np.zeros((0, 3), np.float32), "cols": np.zeros((4, 0), np.int16),
                  "flat": np.zeros((0,), np.bool_)},
        "scalars": [np.float32(2.5), np.int64(-3), np.bool_(True), np.complex64(1 + 2j),
                    np.uint16(65535)],
        "torch": {
            "f32": torch.randn(50, 9, generator=gen),
            "bf16": torch.randn(60, 11, generator=gen).to(torch.bfloat16),
            "f8e4m3": torch.randn(33, 40, generator=gen).to(torch.float8_e4m3fn),
            "f8e5m2": torch.randn(33, 40, generator=gen).to(torch.float8_e5m2),
            "f16": torch.randn(70, 8, generator=gen).half(),
            "i64": torch.randint(-2**62, 2**62, (90,), generator=gen),
            "bool": torch.rand(700, generator=gen) > 0.5,
            "u8": torch.randint(0, 256, (30, 30), dtype=torch.uint8, generator=gen),
            "c64": torch.randn(40, 4, dtype=torch.complex64, generator=gen),
            "noncontig": torch.randn(10, 20, generator=gen).t(),
            "scalar_bf16": torch.tensor(1.5, dtype=torch.bfloat16),
            "empty": torch.zeros(0, 5),
            "grad": torch.randn(5, generator=gen).requires_grad_(),
        },
        "model": {"layer1.0.conv.weight": torch.randn(4, 3, 3, 3, generator=gen),
                  "layer1.0.bn.running_mean": torch.zeros(4)},
        "layers": [np.arange(3.0), {"w": torch.ones(2, 2), "name": "second"}, 4],
        "plain": {
            "none": None, "true": True, "false": False, "int": 42, "neg": -7,
            "big": 2**64 + 1, "float": 0.1, "negzero": -0.0, "nan": math.nan,
            "inf": math.inf, "ninf": -math.inf, "huge": 1e308, "str": "héllo ✓", "empty": "",
            "nested": [1, [2.5, "x", None], (True, (3,)), [], (), {}],
        },
        "step": 7,
    }


def mutate_in_place(state: Any) -> None:
    """Change every array and tensor of ``state`` in place (and a few containers)."""
    if isinstance(state, dict):
        for value in state.values():
            mutate_in_place(value)
    elif isinstance(state, list | tuple):
        for value in state:
            mutate_in_place(value)
    elif isinstance(state, np.ndarray) and state.size:
        if state.dtype == np.bool_:
            np.logical_not(state, out=state)
        else:
            state[...] = 1
    elif isinstance(state, torch.Tensor) and state.numel():
        with torch.no_grad():
            if state.dtype == torch.bool:
                state.logical_not_()
            else:
                state.view(torch.uint8 if state.element_size() == 1 else torch.int16
                           if state.element_size() == 2 else torch.int32
                           if state.element_size() == 4 else torch.int64).bitwise_not_()


# ------------------------------------------------------------------- comparison
def tensor_bits(tensor: torch.Tensor) -> bytes:
    return tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def assert_same(actual: Any, expected: Any, path: str = "<root>") -> None:
    """``actual`` is ``expected`` bit for bit: same containers, types, dtypes, shapes, bytes."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor), f"{path}: {type(actual)} is not a tensor"
        assert actual.dtype == expected.dtype, f"{path}: {actual.dtype} != {expected.dtype}"
        assert tuple(actual.shape) == tuple(expected.shape), f"{path}: shape differs"
        assert tensor_bits(actual) == tensor_bits(expected), f"{path}: bits differ"
    elif isinstance(expected, np.ndarray):
        assert type(actual) is np.ndarray, f"{path}: {type(actual)} is not an ndarray"
        assert actual.dtype == expected.dtype, f"{path}: {actual.dtype} != {expected.dtype}"
        assert actual.shape == expected.shape, f"{path}: {actual.shape} != {expected.shape}"
        assert np.ascontiguousarray(actual).tobytes() == np.ascontiguousarray(
            expected).tobytes(), f"{path}: bytes differ"
    elif isinstance(expected, np.generic):
        assert type(actual) is type(expected), f"{path}: {type(actual)} != {type(expected)}"
        assert actual.tobytes() == expected.tobytes(), f"{path}: {actual!r} != {expected!r}"
    elif isinstance(expected, dict):
        assert type(actual) is dict, f"{path}: {type(actual)} is not a dict"
        assert list(actual) == list(expected), f"{path}: keys {list(actual)} != {list(expected)}"
        for key in expected:
            assert_same(actual[key], expected[key], f"{path}/{key}")
    elif isinstance(expected, list | tuple):
        assert type(actual) is type(expected), f"{path}: {type(actual)} != {type(expected)}"
        assert len(actual) == len(expected), f"{path}: length differs"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{path}/{i}")
    elif isinstance(expected, float):
        assert type(actual) is float and repr(actual) == repr(expected), \
            f"{path}: {actual!r} != {expected!r}"
    else:
        assert type(actual) is type(expected) and actual == expected, \
            f"{path}: {actual!r} != {expected!r}"


def host_view(value: Any) -> np.ndarray:
    """The stored bits of an array leaf as numpy (torch's 16/8-bit floats as uints)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().contiguous()
        if value.dtype == torch.bfloat16:
            return value.view(torch.int16).numpy().view(np.uint16)
        if value.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
            return value.view(torch.uint8).numpy()
        return value.numpy()
    return np.asarray(value)


def leaves(state: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(key, array)`` for every array leaf, keyed as checkpoints name them."""
    if isinstance(state, dict):
        for key, value in state.items():
            yield from leaves(value, f"{prefix}/{key}" if prefix else key)
    elif isinstance(state, list | tuple):
        for i, value in enumerate(state):
            yield from leaves(value, f"{prefix}/{i}" if prefix else str(i))
    elif isinstance(state, np.ndarray | np.generic | torch.Tensor):
        yield prefix, state


# ------------------------------------------------------------------ full disk
class QuotaBlobStore(LocalBlobStore):
    """A local blob store on a "disk" of ``quota_bytes``: a write that would take the bytes
    stored under the root past the quota fails with ``OSError(ENOSPC)``, exactly where the
    real file system would fail (inside the adapter's write), so every layer above sees
    what it sees on a full disk.

    Only used where a real small tmpfs cannot be mounted (no root, no ``mount``): see
    ``test_ckpt_bad_input.py::test_full_disk_fails_cleanly_and_keeps_the_previous_step``.
    """

    def __init__(self, root: str | os.PathLike[str], *, quota_bytes: int, **kwargs: Any):
        super().__init__(root, **kwargs)
        self.quota_bytes = quota_bytes

    @classmethod
    def from_url(cls, url: str, options: dict[str, Any], retry: Any) -> QuotaBlobStore:
        options = dict(options)
        quota = int(options.pop("quota_bytes"))
        return cls(url.split("://", 1)[1], quota_bytes=quota, retry=retry)

    def _used(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def _put(self, key: str, data: bytes | bytearray | memoryview) -> Any:
        self._check_room(key, memoryview(data).nbytes)
        return super()._put(key, data)

    def _open_positional(self, key: str, size: int) -> Any:
        self._check_room(key, size)  # where the real adapter's space reservation fails
        return super()._open_positional(key, size)

    def _check_room(self, key: str, size: int) -> None:
        if self._used() + size > self.quota_bytes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self._path(key)))


def mount_tmpfs(folder: Path, size: str) -> bool:
    """Mount a tmpfs of ``size`` (e.g. ``"8m"``) at ``folder``; False where this sandbox
    does not allow it (not root, no ``mount``), or when ``CKPT_NO_TMPFS=1`` asks the tests
    to take their fallbacks."""
    if os.environ.get("CKPT_NO_TMPFS") == "1" or shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, check=False)
    return done.returncode == 0


def unmount(folder: Path) -> None:
    if subprocess.run(["umount", str(folder)], capture_output=True, check=False).returncode:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)
