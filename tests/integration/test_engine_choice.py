"""Which engine evaluates: `engine:` in auditor.yaml (its default on Config, documented in the schema), `--engine`
on run, plan and test winning over it, `auditor test --engine duckdb` over the shipped rules, and Spark's
one-line error where PySpark is not installed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import app
from auditor.core.model import ENGINES, Config
from auditor.load.config import load_config
from tests.helpers import SAMPLE_COVERS

REPO = Path(__file__).resolve().parents[2]
SAMPLE = ["--data", str(REPO / "examples/data"), "--data-covers", SAMPLE_COVERS, "--at", "2026-11-15T00:00:00Z",
          "--rule", "denied-login-burst-per-user"]


def _cli(*args: str):
    return CliRunner().invoke(app.cli, list(args))


def _config(path: Path, engine: str) -> Path:
    """The repository's auditor.yaml (its variables, rules and waivers) with `engine: ENGINE`."""
    text = (REPO / "auditor.yaml").read_text(encoding="utf-8")
    text = text.replace("rules: [rules]", f"rules: [{REPO / 'rules'}]").replace(
        "waivers: waivers.yaml", f"waivers: {REPO / 'waivers.yaml'}")
    path.write_text(f"{text}\nengine: {engine}\n", encoding="utf-8")
    return path


def test_the_engine_key_is_documented_with_the_configs_default_and_loads(tmp_path):
    schema = json.loads((REPO / "schemas" / "config.schema.json").read_text(encoding="utf-8"))["properties"]
    assert schema["engine"]["enum"] == list(ENGINES)
    assert schema["engine"]["default"] == Config.engine == "auto"
    path = tmp_path / "auditor.yaml"
    path.write_text("engine: duckdb\n", encoding="utf-8")
    assert load_config(path) == (Config(path=str(path), engine="duckdb"), [])
    path.write_text("engine: postgres\n", encoding="utf-8")
    _, problems = load_config(path)
    assert [p.location.line for p in problems] == [1]


@pytest.fixture
def no_pyspark(monkeypatch):
    """PySpark not importable, whether or not it is installed here."""
    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)


def test_spark_without_pyspark_is_a_one_line_error_saying_how_to_install_it(no_pyspark, monkeypatch):
    monkeypatch.chdir(REPO)
    for args in (["run", *SAMPLE, "--engine", "spark"], ["test", "rules", "--engine", "spark"]):
        result = _cli(*args)
        assert result.exit_code == 2
        assert result.output.strip().splitlines()[-1] == (
            "error: --engine spark needs PySpark (and Java 17 or later): pip install 'auditor[spark]'")


def test_the_config_engine_is_used_and_engine_wins_over_it(no_pyspark, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    config = _config(tmp_path / "auditor.yaml", "spark")
    assert "pip install 'auditor[spark]'" in _cli("run", "--config", str(config), *SAMPLE, "-q").output
    assert "pip install 'auditor[spark]'" in _cli("test", "--config", str(config)).output
    assert _cli("run", "--config", str(config), *SAMPLE, "-q", "--engine", "python").exit_code == 0
    assert _cli("test", "--config", str(config), "--engine", "duckdb").exit_code == 0
    _config(config, "duckdb")
    rule = ("--rule", "denied-login-burst-per-user")
    shown = _cli("plan", "--config", str(config), *rule)
    assert shown.exit_code == 0 and "FROM records_access_requests" in shown.output
    python = _cli("plan", "--config", str(config), *rule, "--engine", "python")
    assert "FROM records_access_requests" not in python.output


def test_an_engine_named_in_the_config_does_not_stop_runs_over_the_api(tmp_path, monkeypatch, emulator):
    monkeypatch.chdir(tmp_path)
    _config(tmp_path / "auditor.yaml", "duckdb")
    emu = emulator({})
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "t" * 40)
    result = _cli("run", "--api-base", emu.base_url, "--account-id", "a" * 32, "--rule", "denied-login-burst-per-user",
                  "--at", "2026-11-15T00:00:00Z", "-q", "--no-progress")
    assert result.exit_code in (0, 1, 2) and "error:" not in result.output, result.output
    assert "--engine duckdb reads --data" in _cli("run", "--engine", "duckdb", "--api-base", emu.base_url,
                                                  "--account-id", "a" * 32, "-q").output


def test_the_shipped_rules_tests_hold_on_duckdb(monkeypatch):
    monkeypatch.chdir(REPO)
    result = _cli("test", "rules", "--engine", "duckdb")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].endswith(" held, 0 did not")
