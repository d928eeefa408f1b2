"""Definitions, config, the CLI, and lazy imports of the feature interface."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from feature_support import plane_config

import dataplane
from dataplane.cli.main import cli
from dataplane.errors import ConfigError, InvalidDefinitionError
from dataplane.features import (
    Definitions,
    Entity,
    Feature,
    FeatureService,
    FeatureView,
    load_definitions,
)
from dataplane.testing.features import scenario

DEFINITIONS_TOML = """
[[entities]]
name = "driver"
join_key = "driver_id"
dtype = "int64"

[[views]]
name = "driver_stats"
entities = ["driver"]
source = "datasets/conf/driver_stats@prod"
created_timestamp_field = "created"
ttl = "1d"
[views.features]
trips = "int64"
city = "string"

[[services]]
name = "driver_model"
features = ["driver_stats:trips"]
"""


def test_definitions_round_trip_through_toml(tmp_path: Path) -> None:
    path = tmp_path / "features.toml"
    path.write_text(DEFINITIONS_TOML)
    loaded = load_definitions(path)
    assert loaded.view("driver_stats").ttl == timedelta(days=1)  # type: ignore[union-attr]
    assert Definitions.from_mapping(loaded.to_dict()) == loaded


@pytest.mark.parametrize(("objects", "message"), [
    ([FeatureView("v", ("ghost",), (Feature("f", "int64"),), "x.parquet")], "'ghost'"),
    ([Entity("e"), FeatureService("s", ("v:f",))], "'v:f'"),
    ([Entity("e"), Entity("e")], "'e' is defined twice"),
])
def test_inconsistent_definitions_are_named(objects: list[object], message: str) -> None:
    with pytest.raises(InvalidDefinitionError, match=message):
        Definitions.of(objects)  # type: ignore[arg-type]


@pytest.mark.parametrize(("build", "message"), [
    (lambda: Feature("f", "int128"), "int128"),
    (lambda: Feature("bad name", "int64"), "bad name"),
    (lambda: Entity("e", dtype="float64"), "float64"),
    (lambda: FeatureView("v", ("e",), (Feature("f", "int64"),), "x", ttl="soon"), "soon"),
])
def test_bad_definition_values_are_named(build: object, message: str) -> None:
    with pytest.raises(InvalidDefinitionError, match=message):
        build()  # type: ignore[operator]


def test_features_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"features\.adapter"):
        dataplane.connect(plane_config(tmp_path, adapter="tecton"))
    with pytest.raises(ConfigError, match=r"features\.online_url"):
        dataplane.connect(plane_config(tmp_path, online_url="memcached://x"))


def test_native_use_never_imports_feast(tmp_path: Path) -> None:
    code = f"""
import sys, json, dataplane
from datetime import UTC, datetime, timedelta
from dataplane.testing.features import scenario, scenario_definitions
plane = dataplane.connect(json.loads({json.dumps(json.dumps(plane_config(tmp_path)))}))
t = datetime.now(UTC)
plane.datasets.write("conf/driver_stats", scenario(t), aliases=["prod"])
plane.features.apply(scenario_definitions())
plane.features.materialize(t - timedelta(days=7), t)
print(plane.features.get_online(["driver_stats:trips"], [{{"driver_id": 1}}]))
assert "feast" not in sys.modules, "feast was imported"
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "[3]" in result.stdout


def test_cli_plan_apply_materialize_get(tmp_path: Path) -> None:
    config = tmp_path / "dataplane.toml"
    config.write_text(f"""
[catalog]
url = "sqlite:///{tmp_path / 'catalog.db'}"
[backends.local]
url = "file://{tmp_path / 'blobs'}"
[cache]
dir = "{tmp_path / 'cache'}"
[features]
dir = "{tmp_path / 'features'}"
""")
    t = datetime.now(UTC).replace(microsecond=0)
    with dataplane.connect(config) as plane:
        plane.datasets.write("conf/driver_stats", scenario(t), aliases=["prod"])
    definitions = tmp_path / "features.toml"
    definitions.write_text(DEFINITIONS_TOML)
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, ["--config", str(config), "features", *args])
        assert result.exit_code == 0, result.output
        return result.output

    assert "+ view driver_stats" in run("plan", str(definitions))
    assert "applied: 3 to add" in run("apply", str(definitions))
    assert "no changes" in run("apply", str(definitions))
    start = (t - timedelta(days=7)).isoformat()
    assert "materialized" in run("materialize", "--start", start, "--end", t.isoformat())
    out = json.loads(run("get", "driver_model", "--row", "driver_id=1", "--row",
                         "driver_id=99", "--json"))
    assert out == {"driver_id": [1, 99], "trips": [3, None]}
    bad = runner.invoke(cli, ["--config", str(config), "features", "get", "driver_stats:nope",
                              "--row", "driver_id=1"])
    assert bad.exit_code == 3 and "driver_stats:nope" in bad.output


def test_unreachable_redis_is_retried_then_named(tmp_path: Path) -> None:
    from dataplane.errors import BackendUnavailableError
    from dataplane.testing.features import scenario_definitions

    plane = dataplane.connect(plane_config(tmp_path, online_url="redis://127.0.0.1:1/0"))
    t = datetime.now(UTC)
    plane.datasets.write("conf/driver_stats", scenario(t), aliases=["prod"])
    plane.features.apply(scenario_definitions())
    with pytest.raises(BackendUnavailableError, match=r"127\.0\.0\.1:1.*attempt"):
        plane.features.get_online(["driver_stats:trips"], [{"driver_id": 1}])
    plane.close()
