"""Flatten a training state into named arrays and plain values, and build it back.

A state is a nested mapping (string keys) and lists/tuples whose leaves are numpy arrays,
numpy scalars, torch tensors, :class:`~dataplane.checkpoints.shard.Shard` pieces of a
tensor split across ranks, or plain values (None, bool, int, float, str). Arrays are
named by their path, segments joined with ``/`` (``model/layers/0/weight``); plain values
and the shape of the tree travel in a JSON description (``spec``) stored with the
checkpoint. Anything else is refused with :class:`~dataplane.errors.InvalidSourceError`
naming the key, before a byte is written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import InvalidSourceError
from .shard import Shard

__all__ = ["Spec", "flatten", "is_array", "unflatten"]

Spec = dict[str, Any]
PLAIN = (type(None), bool, int, float, str)
_SEGMENT = re.compile(r"[^/\x00-\x1f\x7f]+")


def is_array(value: Any) -> bool:
    """Whether ``value`` is stored as an array (numpy array/scalar or torch tensor)."""
    if isinstance(value, np.ndarray | np.generic):
        return True
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def flatten(state: Any) -> tuple[dict[str, Any], Spec]:
    """``(arrays by key, spec)``; the spec rebuilds the tree with :func:`unflatten`."""
    names = _Names()
    spec = _flatten(state, "", names)
    return names.arrays, spec


class _Names:
    """The array keys taken so far, and every folder above them (zarr groups)."""

    def __init__(self) -> None:
        self.arrays: dict[str, Any] = {}
        self.groups: set[str] = set()

    def claim(self, key: str, value: Any) -> None:
        parents = ["/".join(key.split("/")[:i]) for i in range(1, key.count("/") + 1)]
        clash = key in self.arrays or key in self.groups or any(p in self.arrays for p in parents)
        if clash:
            raise InvalidSourceError(f"keys collide after joining: {key!r} names two things")
        self.arrays[key] = value
        self.groups.update(parents)


def _flatten(node: Any, key: str, names: _Names) -> Spec:
    if is_array(node) or isinstance(node, Shard):  # a Shard is stored as one global array
        if not key:
            raise InvalidSourceError("the state must be a mapping or list, not a bare array")
        names.claim(key, node)
        return {"array": key}
    if isinstance(node, Mapping):  # pairs keep int keys (optimizer state) as ints
        return {"dict": [[k, _flatten(v, _join(key, k), names)] for k, v in node.items()]}
    if isinstance(node, list | tuple):
        kind = "list" if isinstance(node, list) else "tuple"
        return {kind: [_flatten(v, _join(key, str(i)), names) for i, v in enumerate(node)]}
    if isinstance(node, float) and (node != node or node in (float("inf"), float("-inf"))):
        return {"float": repr(node)}  # JSON has no nan or infinity
    if isinstance(node, PLAIN):
        return {"value": node}
    raise InvalidSourceError(
        f"unsupported value at {key or '<root>'!r}: {type(node).__module__}."
        f"{type(node).__qualname__} (supported: numpy arrays, torch tensors, "
        "None, bool, int, float, str, and dicts/lists/tuples of them)"
    )


def _join(prefix: str, segment: Any) -> str:
    """``prefix/segment``; a ``/`` inside a mapping key nests, like a path."""
    if isinstance(segment, int) and not isinstance(segment, bool):
        segment = str(segment)
    if not isinstance(segment, str):
        raise InvalidSourceError(f"mapping keys must be strings or integers, got {segment!r} "
                                 f"under {prefix or '<root>'!r}")
    for part in segment.split("/"):
        if not _SEGMENT.fullmatch(part) or part in (".", ".."):
            raise InvalidSourceError(
                f"key {segment!r} under {prefix or '<root>'!r} cannot name an array: its "
                "parts must be non-empty, not '.' or '..', without control characters"
            )
    return f"{prefix}/{segment}" if prefix else segment


def unflatten(spec: Spec, load: Callable[[str], Any]) -> Any:
    """Rebuild the tree; ``load(key)`` returns the array stored under ``key`` (or raises
    ``KeyError`` for arrays that were not asked for, which are then left out of mappings
    and are ``None`` in lists and tuples, so the other items keep their positions)."""
    kind, body = next(iter(spec.items()))
    if kind == "array":
        return load(body)
    if kind == "dict":
        out = {}
        for k, child in body:
            try:
                out[k] = unflatten(child, load)
            except KeyError:
                continue
        return out
    if kind in ("list", "tuple"):
        items = [_unflatten_item(child, load) for child in body]
        return items if kind == "list" else tuple(items)
    if kind == "float":
        return float(body)
    return body


def _unflatten_item(spec: Spec, load: Callable[[str], Any]) -> Any:
    try:
        return unflatten(spec, load)
    except KeyError:  # an array not asked for: a hole, not the end of the whole list
        return None


def array_keys(spec: Spec) -> list[str]:
    """Every array key in the spec, in tree order."""
    kind, body = next(iter(spec.items()))
    if kind == "array":
        return [body]
    children = ([child for _, child in body] if kind == "dict"
                else body if kind in ("list", "tuple") else [])
    return [key for child in children for key in array_keys(child)]
