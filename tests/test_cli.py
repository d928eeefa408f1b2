"""The dataplane command: thin commands, masked secrets, meaningful exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from dataplane.cli.main import cli


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATAPLANE_CONFIG", raising=False)
    return CliRunner()


def test_config_show_masks_secrets(runner: CliRunner, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKE_SECRET", "very-secret-value")
    (tmp_path / "dataplane.toml").write_text(
        "[backends.local]\nurl = 'file://b'\n"
        "[backends.lake]\nurl = 's3://bucket/p'\nsecret = '${LAKE_SECRET}'\n"
        "endpoint_url = 'http://127.0.0.1:9000'\n"
        "[[routes]]\nmatch = '*/checkpoints/*'\nbackend = 'lake'\n"
    )
    result = runner.invoke(cli, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "very-secret-value" not in result.output
    assert "***" in result.output and "s3://bucket/p" in result.output
    assert "*/checkpoints/* -> lake" in result.output


def test_config_check_and_ls_on_embedded_default(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["config", "check"])
    assert result.exit_code == 0, result.output
    assert "catalog schema v" in result.output
    result = runner.invoke(cli, ["ls"])
    assert result.exit_code == 0, result.output


def test_route_command(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["route", "models", "nlp/bert"])
    assert result.exit_code == 0, result.output
    assert "default/models/nlp/bert -> local" in result.output


def test_errors_become_one_line_and_exit_codes(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[defaults]\nbackend = 'nowhere'\n")
    result = runner.invoke(cli, ["--config", str(tmp_path / "bad.toml"), "config", "check"])
    assert result.exit_code == 2
    assert "defaults.backend" in result.output
    result = runner.invoke(cli, ["route", "models", "../x"])
    assert result.exit_code == 2
    assert "invalid name" in result.output
