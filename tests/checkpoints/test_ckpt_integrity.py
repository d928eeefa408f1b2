"""Acceptance: one flipped byte in any chunk object makes ``load`` raise the integrity
error naming the key and the chunk, and ``verify`` names the chunk too.

The byte is flipped behind dataplane's back: in the file under the local blob folder, or
by rewriting the object with a raw s3fs / gcsfs client.
"""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
import torch
from ckpt_support import CkptSite, assert_same, small_store

import dataplane
from dataplane.facade import DataPlane


def integrity_state() -> dict[str, object]:
    rng = np.random.default_rng(11)
    return {
        "big": rng.standard_normal((40, 10)),  # 3200 bytes: 7 chunks, a padded edge one
        "grid": rng.standard_normal((3, 100)).astype(np.float32),  # a 3 x 1 grid
        "tiny": {"a": np.arange(5, dtype=np.int8), "b": np.ones(3, np.bool_)},  # batched
        "bf16": torch.randn(40, 13).to(torch.bfloat16),
        "scalar": np.array(2.0),  # 0-d: one chunk, key ".../c"
        "step": 1,
    }


def check_detected(store: object, site: CkptSite, key: str, array: str, suffix: str,
                   offset: int) -> None:
    original = site.flip_byte(key, offset)
    try:
        chunk = re.compile(rf"\bchunk {re.escape(suffix)}\b")
        with pytest.raises(dataplane.IntegrityError) as loaded:
            store.load("integ")  # type: ignore[attr-defined]
        message = str(loaded.value)
        assert repr(array) in message and chunk.search(message), message
        with pytest.raises(dataplane.IntegrityError) as verified:
            store.verify("integ")  # type: ignore[attr-defined]
        message = str(verified.value)
        assert repr(array) in message and chunk.search(message), message
        with pytest.raises(dataplane.IntegrityError):  # the array on its own, too
            store.load("integ", keys=[array])  # type: ignore[attr-defined]
    finally:
        site.write(key, original)


def test_a_flipped_byte_in_any_chunk_is_detected(ckpt_plane: DataPlane,
                                                 ckpt_site: CkptSite) -> None:
    state = integrity_state()
    store = small_store(ckpt_plane)
    saved = store.save("integ", 1, state)
    chunks = ckpt_site.chunk_keys(saved)
    assert {array for array, _ in chunks.values()} == set(saved.keys)
    rng = random.Random(1234)
    picked = sorted(chunks)
    if ckpt_site.backend != "local":  # every chunk on local disk; a sample over HTTP
        picked = rng.sample(picked, 6) + [k for k in picked if chunks[k][0] == "scalar"]
    for key in picked:
        array, suffix = chunks[key]
        size = len(ckpt_site.read(key))
        check_detected(store, ckpt_site, key, array, suffix, rng.randrange(size))
    # restored: everything loads and verifies again
    assert_same(store.load("integ"), state)
    assert store.verify("integ").step == 1


def test_a_flip_in_the_padding_of_an_edge_chunk_is_detected(ckpt_plane: DataPlane,
                                                            ckpt_site: CkptSite) -> None:
    """The padding is never part of the array, but it is part of the stored chunk."""
    store = small_store(ckpt_plane)
    saved = store.save("integ", 1, integrity_state())
    edge = ckpt_site.object_key(saved, "big/c.6.0")  # rows 36-39, padded to 6 rows
    check_detected(store, ckpt_site, edge, "big", "6.0", -1)


def test_a_truncated_or_replaced_chunk_is_detected(ckpt_plane: DataPlane,
                                                   ckpt_site: CkptSite) -> None:
    store = small_store(ckpt_plane)
    saved = store.save("integ", 1, integrity_state())
    key = ckpt_site.object_key(saved, "big/c.2.0")
    original = ckpt_site.read(key)
    damages = [original[:-8], original + b"\0", bytes(len(original))]
    if "!" in key:  # an archive entry keeps its length (a cut archive: test_ckpt_packed)
        damages = damages[2:]
    for damaged in damages:
        ckpt_site.write(key, damaged)
        with pytest.raises(dataplane.IntegrityError, match=r"'big'.*chunk 2\.0"):
            store.load("integ")
        with pytest.raises(dataplane.IntegrityError, match=r"chunk 2\.0"):
            store.read("integ", 1, "big", (slice(15, 17),))
    ckpt_site.write(key, original)
    assert store.verify("integ").step == 1


def test_a_tampered_manifest_is_detected_by_verify(ckpt_plane: DataPlane,
                                                   ckpt_site: CkptSite) -> None:
    store = small_store(ckpt_plane)
    saved = store.save("integ", 1, integrity_state())
    key = f"{ckpt_site.key_of(saved)}/dataplane-manifest.json"
    ckpt_site.write(key, ckpt_site.read(key).replace(b'"step":1', b'"step":2'))
    with pytest.raises(dataplane.IntegrityError, match="manifest"):
        store.verify("integ")
