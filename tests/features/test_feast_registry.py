"""The Feast adapter on an SQL registry: SQLite by URL, and the real PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from feature_support import factory

from dataplane.testing.features import _now, scenario, scenario_definitions
from dataplane.testing.servers import service_missing

POSTGRES_URL = os.environ.get("DATAPLANE_TEST_FEAST_REGISTRY_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_or_skip() -> str:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
    except sqlalchemy.exc.OperationalError as error:
        reason = f"PostgreSQL at {POSTGRES_URL} is unreachable: {error}"
        service_missing(reason)
    return POSTGRES_URL


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_feast_adapter_on_an_sql_registry(tmp_path: Path, kind: str) -> None:
    registry = (f"sqlite:///{tmp_path / 'registry.db'}" if kind == "sqlite"
                else _postgres_or_skip())
    project = f"conf_{uuid.uuid4().hex[:10]}"
    plane = factory(tmp_path, adapter="feast", registry=registry)(project)
    try:
        t = _now()
        plane.datasets.write("conf/driver_stats", scenario(t), aliases=["prod"])
        assert plane.features.apply(scenario_definitions())
        assert not plane.features.apply(scenario_definitions())
        plane.features.materialize(t - timedelta(days=7), t)
        got = plane.features.get_online("driver_model", {"driver_id": [1, 3, 99]})
        assert got == {"driver_id": [1, 3, 99], "trips": [3, 7, None],
                       "city": ["c", "late-created", None]}
        store = plane.features.backend.store  # type: ignore[attr-defined]
        assert store.config.registry.registry_type == "sql"
        plane.features.apply([])  # leaves nothing of this project in the shared registry
        assert store.list_feature_views() == []
    finally:
        plane.close()
