"""Concurrent publishers across processes get distinct, gap-free version numbers."""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Callable
from typing import Any

import pytest
from catalog_support import KIND, TENANT, publisher_process

from dataplane.catalog import SCHEMA_VERSION, Catalog

PROCESSES = 4
COMMITS_PER_PROCESS = 25
THREADS_PER_PROCESS = 5


def run_publishers(url: str, names: list[str], commits: int, threads: int) -> list[list[int]]:
    """One spawned process per name in ``names``, all released at once by a barrier."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(len(names)), context.Queue()
    processes = [
        context.Process(
            target=publisher_process, args=(results, url, name, worker, commits, threads, start)
        )
        for worker, name in enumerate(names)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = collect(results, processes, deadline=time.monotonic() + 100)
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    errors = [error for _numbers, error in outcomes if error]
    assert not errors, errors
    return [numbers for numbers, _error in outcomes]


def collect(results: Any, processes: list[Any], deadline: float) -> list[tuple[list[int], str]]:
    """One outcome per process; fails fast if a process dies without reporting."""
    outcomes: list[tuple[list[int], str]] = []
    while len(outcomes) < len(processes):
        try:
            outcomes.append(results.get(timeout=0.5))
        except queue.Empty:
            dead = [p.exitcode for p in processes if not p.is_alive()]
            if len(dead) == len(processes) and results.empty():
                pytest.fail(f"publisher processes exited without reporting: {dead}")
            if time.monotonic() > deadline:
                pytest.fail("publisher processes did not finish in time")
    return outcomes


@pytest.mark.timeout(150)
def test_100_concurrent_publishers_get_versions_1_to_100(
    catalog_url: str, open_catalogs: Callable[[str], Catalog]
) -> None:
    names = ["shared"] * PROCESSES
    got = run_publishers(catalog_url, names, COMMITS_PER_PROCESS, THREADS_PER_PROCESS)

    total = PROCESSES * COMMITS_PER_PROCESS
    assert sorted(number for numbers in got for number in numbers) == list(range(1, total + 1))
    catalog = open_catalogs(catalog_url)
    listed = catalog.versions(TENANT, KIND, "shared")
    assert [v.number for v in listed] == list(range(1, total + 1))
    assert len({v.digest for v in listed}) == total
    assert all(len(v.locations) == 1 for v in listed)
    assert len(catalog.audit(name="shared")) == total
    assert catalog.names(TENANT)[0].latest_version == total


@pytest.mark.timeout(150)
def test_concurrent_first_open_creates_the_schema_once(
    catalog_url: str, open_catalogs: Callable[[str], Catalog]
) -> None:
    names = [f"name-{worker}" for worker in range(PROCESSES)]
    assert run_publishers(catalog_url, names, 2, 1) == [[1, 2]] * PROCESSES
    assert open_catalogs(catalog_url).schema_version == SCHEMA_VERSION
