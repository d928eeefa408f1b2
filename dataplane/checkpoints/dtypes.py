"""Arrays in and out of storage: numpy views of numpy and torch data, and the dtype record.

Zarr v3 stores numpy's numeric dtypes natively. Dtypes numpy lacks (torch's bfloat16 and
float8 variants) are stored bit for bit as the unsigned integer of the same width, with
the real dtype recorded in the array's attributes (``dataplane.dtype``), so they come back
as the same torch dtype and any zarr reader still sees every bit. torch is imported only
when a torch tensor is saved or a torch dtype is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidSourceError, MissingDependencyError

__all__ = ["StoredArray", "describe", "from_stored", "to_stored"]

_ZARR_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                "uint64", "float16", "float32", "float64", "complex64", "complex128"}
_TORCH_BITS = {"bfloat16": "uint16", "float8_e4m3fn": "uint8", "float8_e5m2": "uint8",
               "float8_e4m3fnuz": "uint8", "float8_e5m2fnuz": "uint8"}


@dataclass(frozen=True)
class StoredArray:
    """A host numpy array ready to write, and what to record about where it came from."""

    data: np.ndarray  # C-contiguous, in the stored dtype
    dtype: str  # the real dtype name (e.g. "bfloat16", "float32")
    framework: str  # "numpy", "numpy-scalar" or "torch"


def to_stored(key: str, value: Any, *, copy: bool = False) -> StoredArray:
    """A C-contiguous host view (or, with ``copy``, a private copy) of an array leaf."""
    if isinstance(value, np.ndarray | np.generic):
        array = np.asarray(value)  # a numpy scalar becomes a 0-d array
        _check_numpy_dtype(key, array.dtype)
        contiguous = array.flags.c_contiguous
        data = array.copy(order="C") if copy or not contiguous else array
        kind = "numpy-scalar" if isinstance(value, np.generic) else "numpy"
        return StoredArray(data, array.dtype.name, kind)
    return _torch_to_stored(key, value, copy)


def describe(key: str, value: Any) -> tuple[str, str, tuple[int, ...]]:
    """``(real dtype, framework, shape)`` of an array leaf, without copying it; refuses a
    dtype that checkpoints do not store, as :func:`to_stored` would."""
    if isinstance(value, np.ndarray | np.generic):
        array = np.asarray(value)
        _check_numpy_dtype(key, array.dtype)
        kind = "numpy-scalar" if isinstance(value, np.generic) else "numpy"
        return array.dtype.name, kind, array.shape
    name = str(value.dtype).removeprefix("torch.")
    if name not in _ZARR_DTYPES and name not in _TORCH_BITS:
        raise InvalidSourceError(f"tensor {key!r} has dtype torch.{name} which checkpoints "
                                 "do not store")
    return name, "torch", tuple(int(n) for n in value.shape)


def _check_numpy_dtype(key: str, dtype: np.dtype[Any]) -> None:
    if dtype.name not in _ZARR_DTYPES:
        raise InvalidSourceError(f"array {key!r} has dtype {dtype} which checkpoints do not "
                                 f"store (supported: {', '.join(sorted(_ZARR_DTYPES))})")


def _torch_to_stored(key: str, tensor: Any, copy: bool) -> StoredArray:
    import torch

    name = str(tensor.dtype).removeprefix("torch.")
    host = tensor.detach()
    if host.device.type != "cpu":
        host = host.to("cpu")  # the device-to-host transfer is a private copy
    elif not host.is_contiguous():
        host = host.contiguous()  # so is making it contiguous
    elif copy:
        # A snapshot: torch's clone uses every core and plain pages, where numpy's copy of
        # a large array runs on one core and asks for huge pages (slow right after I/O).
        host = host.clone()
    if name in _TORCH_BITS:
        bits = getattr(torch, {"uint16": "int16", "uint8": "uint8"}[_TORCH_BITS[name]])
        data = host.view(bits).numpy().view(_TORCH_BITS[name])
    elif name in _ZARR_DTYPES:
        data = host.numpy()
    else:
        raise InvalidSourceError(f"tensor {key!r} has dtype torch.{name} which checkpoints "
                                 "do not store")
    return StoredArray(data, name, "torch")


def stored_dtype(real: str) -> str:
    """The zarr ``data_type`` a real dtype is written as."""
    return _TORCH_BITS.get(real, real)


def from_stored(data: np.ndarray, dtype: str, framework: str) -> Any:
    """The user-facing array for stored ``data``: numpy, or torch with the real dtype."""
    if framework == "numpy-scalar":
        return data[()]
    if framework != "torch":
        return data
    try:
        import torch
    except ImportError as error:
        raise MissingDependencyError("this checkpoint holds torch tensors: "
                                     "pip install 'dataplane[torch]'") from error
    if dtype in _TORCH_BITS:
        signed = {"uint16": torch.int16, "uint8": torch.uint8}[_TORCH_BITS[dtype]]
        raw = data.view(np.int16) if _TORCH_BITS[dtype] == "uint16" else data
        return torch.from_numpy(_c_order(raw)).view(signed).view(getattr(torch, dtype))
    return torch.from_numpy(_c_order(data))


def _c_order(data: np.ndarray) -> np.ndarray:
    """``data`` as a C-contiguous array of the same shape (``np.ascontiguousarray`` would
    turn a 0-d array into shape ``(1,)``)."""
    return data if data.flags.c_contiguous else np.array(data, order="C")
