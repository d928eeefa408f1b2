"""``dataplane catalog migrate --to postgresql+psycopg://...``: every row copied, counts
and digests verified, the config switched, and the plane works on the new catalog.

Needs PostgreSQL at 127.0.0.1:5432 (or ``DATAPLANE_TEST_POSTGRES_URL``): skipped with the
reason when it is unreachable, failed instead when ``CI`` is set.
"""

from __future__ import annotations

import os
import tomllib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from migrate_support import locations, populate, read_back

import dataplane
from dataplane.cli.main import cli
from dataplane.facade import DataPlane
from dataplane.testing.servers import service_missing

SERVER = os.environ.get("DATAPLANE_TEST_POSTGRES_URL",
                        "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (SQLAlchemy URL), dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(SERVER, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        reason = f"PostgreSQL at {SERVER} is unreachable: {error}"
        service_missing(reason)
    name = f"dp_move_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(SERVER)
    try:
        yield (f"postgresql+psycopg://{info.get('user') or 'postgres'}@"
               f"{info.get('host') or '127.0.0.1'}:{info.get('port') or 5432}/{name}")
    finally:
        with psycopg.connect(SERVER, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_sqlite_catalog_moves_to_postgresql(make_site: Callable[..., Any],
                                            plane_of: Callable[..., DataPlane],
                                            postgres_url: str) -> None:
    site = make_site("local", "s3")
    plane = plane_of(site)
    catalog = populate(plane, site.work)
    plan_id = plane.migrate.plan("s3", "datasets").plan_id  # the journal moves too
    assert plane.migrate.run(plan_id).complete
    before = locations(plane)
    audit = len(plane.catalog.audit(limit=100_000))
    plane.close()

    result = CliRunner().invoke(cli, ["--config", str(site.path), "catalog", "migrate",
                                      "--to", postgres_url, "--json"])
    assert result.exit_code == 0, result.output
    import json

    report = json.loads(result.output)
    assert report["rows"]["versions"] == 8 and report["rows"]["migration_objects"] > 0
    assert report["config_file"] == str(site.path)
    config = tomllib.loads(site.path.read_text())
    assert config["catalog"]["url"] == postgres_url
    assert (site.path.parent / "dataplane.toml.bak").read_text().count("sqlite:///") == 1

    with dataplane.connect(site.path) as moved:
        assert moved.catalog.url.startswith("postgresql+psycopg://")
        assert locations(moved) == before
        assert len(moved.catalog.audit(limit=100_000)) == audit
        assert moved.migrate.status(plan_id).plan.state == "flipped"
        for ref, expected in catalog.expected.items():
            assert read_back(moved, ref, expected) == [], ref
        new = moved.models.publish("nlp/bert", site.work / "bert-1")  # ids continue
        assert new.version == 4

    again = CliRunner().invoke(cli, ["--config", str(site.path), "catalog", "migrate",
                                     "--to", postgres_url])
    assert again.exit_code == 1 and "is not empty" in again.output
