"""Selectors and route overrides on their own; a handle resolved before the flip."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import zarr

from dataplane.catalog import RouteOverride
from dataplane.config import load_config
from dataplane.errors import ConfigError, InvalidNameError
from dataplane.facade import DataPlane
from dataplane.migrate import Selector, parse_selectors
from dataplane.routing import Router


def test_selectors_parse_every_form() -> None:
    selector = parse_selectors(["tenant=acme", "models", "kind=datasets", "nlp/*",
                                "name=vision/*", "@prod", "alias=canary", "versions=3..7"])
    assert selector == Selector("acme", ("models", "datasets"), ("nlp/*", "vision/*"),
                                ("prod", "canary"), 3, 7)
    assert Selector.from_json(selector.to_json()) == selector
    assert parse_selectors(["versions=4"]).first == parse_selectors(["versions=4"]).last == 4
    assert parse_selectors(["versions=..2"]) == Selector(last=2)
    assert parse_selectors([]).describe() == "everything"
    assert selector.matches_name("models", "nlp/bert/base")  # * crosses '/'
    assert not selector.matches_name("checkpoints", "nlp/bert")
    assert selector.matches_number(3) and not selector.matches_number(8)


@pytest.mark.parametrize(("words", "error"), [
    (["versions=7..3"], ConfigError), (["versions=a.."], ConfigError),
    (["tenant=a", "tenant=b"], ConfigError), (["kind=features"], ConfigError),
    (["kind=nope"], InvalidNameError), (["@Bad Alias"], InvalidNameError),
])
def test_bad_selectors_are_refused(words: list[str], error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_selectors(words)


def _override(number: int, pattern: str, source: str | None, target: str) -> RouteOverride:
    return RouteOverride(number, pattern, source, target, "m", datetime.now(UTC))


def test_route_overrides_apply_after_the_configured_routes() -> None:
    config = load_config({"backends": {"local": {"url": "memory://a"},
                                       "lake": {"url": "memory://b"},
                                       "gcs": {"url": "memory://c"}},
                          "routes": [{"match": "*/checkpoints/*", "backend": "lake"}]})
    router = Router(config)
    assert router.backend_for("t", "checkpoints", "run") == "lake"
    moved = [_override(2, "t/models/*", "local", "lake")]
    assert router.backend_for("t", "models", "nlp/bert", moved) == "lake"
    assert router.backend_for("u", "models", "nlp/bert", moved) == "local"  # other tenant
    chained = [_override(3, "t/*", "lake", "gcs"), *moved]  # newest first
    assert router.backend_for("t", "models", "x", chained) == "gcs"
    assert router.backend_for("t", "checkpoints", "run", chained) == "gcs"
    looping = [_override(4, "t/*", "gcs", "local"), *chained]
    assert router.backend_for("t", "models", "x", looping) == "local"  # each applies once


def test_a_checkpoint_location_resolved_before_the_flip_works_until_cleanup(
        make_site: Callable[..., Any], plane_of: Callable[..., DataPlane]) -> None:
    site = make_site("local", "s3")
    plane = plane_of(site)
    weights = np.arange(50_000, dtype=np.float32).reshape(250, 200)
    plane.checkpoints.save("held", 1, {"w": weights})
    url, _ = plane.checkpoints.latest("held").location  # type: ignore[union-attr]
    assert url.startswith("zip://checkpoint::file://")  # packed on local disk
    plan_id = plane.migrate.plan("s3", "checkpoints", grace_period_s=0).plan_id
    assert plane.migrate.run(plan_id).complete
    assert "::s3://" in plane.checkpoints.latest("held").url  # type: ignore[union-attr]
    held = zarr.open_group(url, mode="r")  # the old handle still reads, bit for bit
    np.testing.assert_array_equal(held["w"][...], weights)
    plane.migrate.cleanup(plan_id)
    with pytest.raises(FileNotFoundError):
        zarr.open_group(url, mode="r")
    np.testing.assert_array_equal(plane.checkpoints.load("held")["w"], weights)


def test_s3_etag_is_what_s3_computes(make_site: Callable[..., Any],
                                     plane_of: Callable[..., DataPlane]) -> None:
    """The in-transit proof relies on this: one PUT's ETag is the MD5 of the bytes, a
    multipart upload's the MD5 of its parts' MD5s (checked against moto's real server).
    Puts from memory up to 128 MiB are one request; larger ones go in parts."""
    from dataplane_adapters._fsspec import SINGLE_PUT_BYTES

    plane = plane_of(make_site("s3"))
    store = plane.store("s3")
    part_size = store.part_size  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    for size in (0, 1000, 2 * part_size + 12345, SINGLE_PUT_BYTES + 1):
        data = rng.bytes(size)
        answered = store.put(f"etag/{size}", data).etag
        expected = store.put_etag(data)  # type: ignore[attr-defined]
        assert store.stat(f"etag/{size}").etag == expected
        assert answered in (None, expected)
        assert expected.endswith(f"-{-(-size // part_size)}") == (size > SINGLE_PUT_BYTES)


def test_s3_to_s3_on_one_endpoint_copies_server_side(
        make_site: Callable[..., Any], plane_of: Callable[..., DataPlane],
        new_backend: Callable[[str], dict[str, Any]]) -> None:
    from migrate_support import populate, read_back

    from dataplane.migrate.copier import ByteBudget, Copier, same_service, spool_dir

    site = make_site("s3", extra={"s3b": new_backend("s3")})
    plane = plane_of(site)
    catalog = populate(plane, site.work)
    source, target = plane.store("s3"), plane.store("s3b")
    assert same_service(source, target)
    key = plane.models.resolve("vision/resnet@1").manifest.files[0].key
    with spool_dir() as spool:  # CopyObject across the two buckets, no bytes through here
        copier = Copier(source, target, spool, inline_bytes=2**20, budget=ByteBudget(2**20))
        assert copier._server_side_copy(key)
    assert target.get(key) == source.get(key)
    plan_id = plane.migrate.plan("s3b").plan_id
    assert plane.migrate.run(plan_id).complete
    assert plane.migrate.verify(plan_id).clean
    for ref, expected in catalog.expected.items():
        assert read_back(plane, ref, expected) == [], ref
