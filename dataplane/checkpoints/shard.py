""":class:`Shard`: one rank's piece of a tensor that is split across ranks.

A leaf of a training state, like an array: ``Shard(local, global_shape, offsets)`` says
that ``local`` (a numpy array or torch tensor) is the block of a ``global_shape`` tensor
that starts at ``offsets``. Saving a state with shards writes one global array per key
(see :mod:`dataplane.checkpoints.distributed`); loading into a template with shards reads
only each shard's region. It lives in its own module because the tree walker
(:mod:`~dataplane.checkpoints.tree`) must recognise it as a leaf.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidSourceError

__all__ = ["Shard"]


@dataclass(frozen=True, eq=False)
class Shard:
    """This rank's ``local`` block of a ``global_shape`` tensor, starting at ``offsets``.

    ``local`` is a numpy array or a torch tensor (on any device). The constructor checks
    that the block lies inside the global shape; whether the shards of all ranks tile the
    tensor is checked when they are saved together.
    """

    local: Any
    global_shape: tuple[int, ...]
    offsets: tuple[int, ...]

    def __init__(self, local: Any, global_shape: Sequence[int], offsets: Sequence[int]):
        object.__setattr__(self, "local", local)
        object.__setattr__(self, "global_shape", _ints("global_shape", global_shape))
        object.__setattr__(self, "offsets", _ints("offsets", offsets))
        self._check()

    @property
    def shape(self) -> tuple[int, ...]:
        """The local block's shape."""
        return tuple(int(n) for n in self.local.shape)

    @property
    def region(self) -> tuple[slice, ...]:
        """Where the block lies in the global tensor."""
        return tuple(slice(o, o + n) for o, n in zip(self.offsets, self.shape, strict=True))

    def _check(self) -> None:
        local = self.local
        torch_like = type(local).__module__.startswith("torch") and hasattr(local, "detach")
        if not (isinstance(local, np.ndarray) or torch_like):
            raise InvalidSourceError(f"Shard.local must be a numpy array or a torch tensor, "
                                     f"got {type(local).__qualname__}")
        shape, dims = self.shape, len(self.global_shape)
        if len(shape) != dims or len(self.offsets) != dims:
            raise InvalidSourceError(
                f"Shard: local shape {shape}, global_shape {self.global_shape} and offsets "
                f"{self.offsets} must have the same number of dimensions")
        outside = [d for d in range(dims) if self.offsets[d] + shape[d] > self.global_shape[d]]
        if outside:
            raise InvalidSourceError(
                f"Shard: a block of shape {shape} at offsets {self.offsets} reaches outside "
                f"the global shape {self.global_shape} (dimension {outside[0]})")

    def __repr__(self) -> str:
        dtype = getattr(self.local, "dtype", "?")
        return (f"Shard(local=<{type(self.local).__name__} {self.shape} {dtype}>, "
                f"global_shape={self.global_shape}, offsets={self.offsets})")


def _ints(name: str, values: Sequence[int]) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in values)
    except (TypeError, ValueError) as error:
        raise InvalidSourceError(f"Shard: {name} must be a sequence of integers, "
                                 f"got {values!r}") from error
    if any(v < 0 for v in out) or any(isinstance(v, bool | float) for v in values):
        raise InvalidSourceError(f"Shard: {name} must be non-negative integers, got {values!r}")
    return out
