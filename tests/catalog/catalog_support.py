"""Helpers shared by the catalog tests, importable by spawned worker processes too."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dataplane.catalog import Catalog, VersionRecord, open_catalog

TENANT = "acme"
KIND = "models"
_seeds = itertools.count()


def digest(seed: object) -> str:
    """A well-formed ``sha256:<64 hex>`` digest derived from ``seed``."""
    return "sha256:" + hashlib.sha256(str(seed).encode()).hexdigest()


def publish(
    catalog: Catalog,
    name: str = "bert",
    *,
    seed: object = None,
    kind: str = KIND,
    locations: Sequence[tuple[str, str]] | None = None,
    aliases: Sequence[str] = (),
    metadata: dict[str, Any] | None = None,
    created_by: str = "alice",
) -> VersionRecord:
    """Commit one version of ``acme/<kind>/<name>`` with sensible defaults."""
    seed = seed if seed is not None else next(_seeds)
    return catalog.commit_version(
        TENANT,
        kind,
        name,
        digest=digest(seed),
        manifest={"files": [{"path": "model.bin", "digest": digest(seed)}]},
        metadata=metadata if metadata is not None else {"seed": str(seed)},
        created_by=created_by,
        locations=locations if locations is not None else [("local", f"file:///{name}")],
        aliases=aliases,
    )


def publish_many(
    url: str, name: str, worker: int, commits: int, threads: int, start: Any = None
) -> list[int]:
    """Open a catalog on ``url`` and commit ``commits`` versions from ``threads`` threads.

    When ``start`` (a barrier) is given, wait on it after opening, so that every worker
    process publishes at the same time. Returns the version numbers this worker got.
    """
    with open_catalog(url) as catalog:

        def one(index: int) -> int:
            record = catalog.commit_version(
                TENANT,
                KIND,
                name,
                digest=digest((worker, index)),
                manifest={"worker": worker, "index": index},
                metadata={},
                created_by=f"worker-{worker}",
                locations=[("local", f"file:///{worker}/{index}")],
            )
            return record.number

        if start is not None:
            start.wait(timeout=60)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(one, range(commits)))


def publisher_process(results: Any, *args: Any) -> None:
    """Process target: run :func:`publish_many` and put ``(numbers, error)`` on ``results``."""
    try:
        results.put((publish_many(*args), None))
    except BaseException as error:  # reported to the parent, which fails the test
        results.put(([], f"{type(error).__name__}: {error}"))
