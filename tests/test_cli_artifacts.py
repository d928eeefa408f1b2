"""CLI over models: publish, show (with lineage), fetch, alias, rm, gc, ls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dataplane.cli.main import cli


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATAPLANE_CONFIG", raising=False)
    monkeypatch.delenv("DATAPLANE_CACHE_DIR", raising=False)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(b"w" * 5000)
    (tmp_path / "model" / "config.json").write_text('{"layers": 2}')
    return CliRunner()


def invoke(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_publish_show_fetch_alias_rm_gc(runner: CliRunner, tmp_path: Path) -> None:
    out = invoke(runner, "publish", "nlp/tiny", "model", "--alias", "prod", "--meta", "lr=0.1",
                 "--checkpoint", "dp://default/checkpoints/run-1@7")
    assert "published dp://default/models/nlp/tiny@1" in out

    shown = json.loads(invoke(runner, "show", "nlp/tiny@prod", "--json"))
    assert shown["version"] == 1 and shown["aliases"] == ["prod"]
    assert shown["metadata"] == {"lr": "0.1", "checkpoint": "dp://default/checkpoints/run-1@7"}
    assert sorted(f["path"] for f in shown["files"]) == ["config.json", "weights.bin"]
    text = invoke(runner, "show", "dp://default/models/nlp/tiny@1")
    assert "lineage:    checkpoint = dp://default/checkpoints/run-1@7" in text

    dest = tmp_path / "out"
    assert invoke(runner, "fetch", "nlp/tiny@1", "--dest", str(dest)).strip() == str(dest)
    assert (dest / "weights.bin").read_bytes() == b"w" * 5000
    only = tmp_path / "only"
    invoke(runner, "fetch", "nlp/tiny", "--dest", str(only), "--file", "config.json")
    assert [p.name for p in only.iterdir()] == ["config.json"]
    cached = Path(invoke(runner, "fetch", "nlp/tiny").strip())
    assert (cached / "config.json").read_text() == '{"layers": 2}'

    invoke(runner, "publish", "nlp/tiny", "model")
    assert "nlp/tiny@prod: 1 -> 2" in invoke(runner, "alias", "set", "nlp/tiny", "prod", "2")
    assert "prod" in invoke(runner, "alias", "list", "nlp/tiny")
    history = invoke(runner, "alias", "history", "nlp/tiny")
    assert history.count("prod") == 2

    assert "nlp/tiny" in invoke(runner, "ls")
    assert "deleted dp://default/models/nlp/tiny@1" in invoke(runner, "rm", "nlp/tiny@1")
    invoke(runner, "show", "nlp/tiny@1", code=3)
    # both versions hold the same bytes, so nothing is garbage yet
    assert "0 object(s)" in invoke(runner, "gc", "--grace", "0", "--dry-run")
    invoke(runner, "rm", "nlp/tiny@2")
    dry = invoke(runner, "gc", "--grace", "0", "--dry-run")
    assert "2 object(s), would free" in dry
    assert "2 object(s), freed" in invoke(runner, "gc", "--grace", "0")
    assert "0 object(s)" in invoke(runner, "gc", "--grace", "0")


def test_cli_errors_have_meaningful_exit_codes(runner: CliRunner) -> None:
    invoke(runner, "publish", "m", "no-such-dir", code=3)
    invoke(runner, "show", "ghost@1", code=3)
    invoke(runner, "show", "bad name", code=2)
    invoke(runner, "publish", "m", "model")
    out = invoke(runner, "alias", "set", "m", "prod", "9", code=3)
    assert "error:" in out
