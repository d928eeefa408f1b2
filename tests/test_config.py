"""Configuration: discovery order, the documented schema, and one clear error per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataplane.config import load_config
from dataplane.errors import ConfigError, UnknownBackendError
from dataplane.retry import RetryPolicy
from dataplane.routing import Router

FULL = """
[catalog]
url = "sqlite:///.dataplane/catalog.db"

[defaults]
tenant = "acme"
backend = "local"

[backends.local]
url = "file://.dataplane/blobs"

[backends.lake]
url = "s3://ml-lake/prod"
endpoint_url = "http://127.0.0.1:9000"
key = "${LAKE_KEY}"
secret = "${LAKE_SECRET}"

[backends.lake.retry]
attempts = 6
deadline_s = 10.0

[[routes]]
match = "*/checkpoints/*"
backend = "lake"

[[routes]]
match = "acme/models/nlp/*"
backend = "lake"
"""


def write(tmp_path: Path, text: str, name: str = "dataplane.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def lake_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKE_KEY", "AKIA-not-printed")
    monkeypatch.setenv("LAKE_SECRET", "s3cr3t-not-printed")


def test_full_schema_is_read_and_paths_are_relative_to_the_file(
    tmp_path: Path, lake_env: None
) -> None:
    config = load_config(write(tmp_path, FULL))
    assert config.tenant == "acme"
    assert config.catalog_url == f"sqlite:///{tmp_path.resolve()}/.dataplane/catalog.db"
    assert config.backends["local"].url == (tmp_path / ".dataplane/blobs").resolve().as_uri()
    lake = config.backends["lake"]
    assert lake.url == "s3://ml-lake/prod"
    assert lake.options == {"endpoint_url": "http://127.0.0.1:9000",
                            "key": "AKIA-not-printed", "secret": "s3cr3t-not-printed"}
    assert lake.retry == RetryPolicy(attempts=6, deadline_s=10.0)
    assert [r.backend for r in config.routes] == ["lake", "lake"]


def test_secrets_never_appear_in_repr(tmp_path: Path, lake_env: None) -> None:
    config = load_config(write(tmp_path, FULL))
    text = repr(config) + str(config) + repr(config.backends["lake"])
    assert "not-printed" not in text
    assert "http://127.0.0.1:9000" in text  # the endpoint is not a secret


def test_routes_first_match_then_default(tmp_path: Path, lake_env: None) -> None:
    router = Router(load_config(write(tmp_path, FULL)))
    assert router.backend_for("acme", "checkpoints", "run-1") == "lake"
    assert router.backend_for("other", "checkpoints", "team/run-1") == "lake"
    assert router.backend_for("acme", "models", "nlp/bert") == "lake"
    assert router.backend_for("acme", "models", "vision/resnet") == "local"
    assert router.backend_for("acme", "datasets", "x") == "local"


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATAPLANE_CONFIG", raising=False)
    default = load_config()
    assert default.source is None
    assert default.catalog_url == f"sqlite:///{tmp_path.resolve()}/.dataplane/catalog.db"
    assert default.backends["local"].url == (tmp_path / ".dataplane/blobs").resolve().as_uri()

    in_cwd = write(tmp_path, '[defaults]\ntenant = "cwd"\n')
    assert load_config().tenant == "cwd"
    assert load_config().source == in_cwd.resolve()

    from_env = write(tmp_path, '[defaults]\ntenant = "env"\n', "other.toml")
    monkeypatch.setenv("DATAPLANE_CONFIG", str(from_env))
    assert load_config().tenant == "env"

    explicit = write(tmp_path, '[defaults]\ntenant = "arg"\n', "explicit.toml")
    assert load_config(explicit).tenant == "arg"
    assert load_config({"defaults": {"tenant": "mapping"}}).tenant == "mapping"


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[catalogue]\nurl='x'", "catalogue", "unknown key"),
        ("[catalog]\nurl = 'mysql://x'", "catalog.url", "unsupported catalog URL"),
        ("[catalog]\nuri = 'sqlite://'", "catalog.uri", "unknown key"),
        ("[defaults]\ntenant = 'Bad Tenant'", "defaults.tenant", "tenant must be"),
        ("[defaults]\nbackend = 'nowhere'", "defaults.backend", "no backend named 'nowhere'"),
        ("[backends.x]\nendpoint_url = 'y'", "backends.x.url", "missing"),
        ("[backends.x]\nurl = 'ftp://host/p'", "backends.x.url", "no blob adapter serves ftp://"),
        ("[backends.x]\nurl = 'no-scheme'", "backends.x.url", "has no scheme"),
        ("[backends.x]\nurl = 's3://b/p'\nkey = '${DP_UNSET_VAR}'", "backends.x.key",
         "DP_UNSET_VAR is not set"),
        ("[backends.x]\nurl = 's3://b/p'\nretry = {tries = 3}", "backends.x.retry", "keys among"),
        ("[backends.x]\nurl = 's3://b/p'\nretry = {attempts = 0}", "backends.x.retry",
         "at least 1"),
        ("[[routes]]\nmatch = '*/models/*'\nbackend = 'ghost'", "routes[0].backend",
         "no backend named 'ghost'"),
        ("[[routes]]\nmatch = 'models'\nbackend = 'local'", "routes[0].match",
         "tenant/kind/name glob"),
        ("[[routes]]\nmatch = '*/*/*'", "routes[0]", "exactly 'match' and 'backend'"),
        ("routes = 3", "routes", "array of tables"),
        ("[defaults\n", None, "not valid TOML"),
    ],
)
def test_invalid_config_names_file_key_and_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, key: str | None, reason: str
) -> None:
    monkeypatch.delenv("DP_UNSET_VAR", raising=False)
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path.resolve()) in message
    assert reason in message
    if key is not None:
        assert info.value.key == key
        assert key in message


def test_unknown_backend_errors_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(UnknownBackendError):
        load_config(write(tmp_path, "[defaults]\nbackend = 'nowhere'"))


def test_missing_config_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")
    monkeypatch.setenv("DATAPLANE_CONFIG", str(tmp_path / "gone.toml"))
    with pytest.raises(ConfigError, match="DATAPLANE_CONFIG"):
        load_config()


def test_postgres_password_is_masked_in_repr() -> None:
    config = load_config({"catalog": {"url": "postgresql+psycopg://dp:hunter2@db/cat"}})
    assert "hunter2" not in repr(config)
    assert "dp:***@db" in repr(config)
