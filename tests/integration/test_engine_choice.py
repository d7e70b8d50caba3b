"""Which engine evaluates: `engine:` in auditor.yaml (its default on Config, documented in the schema), `--engine`
on run, plan and test winning over it, `auditor test --engine duckdb` over the shipped rules, and Spark's
one-line error where PySpark is not installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


# The CLI in a process of its own where PySpark cannot be imported, whether or not it is installed here (this
# process may be starting Spark in the background for tests/spark).
_NO_PYSPARK = ("import sys; sys.modules['pyspark'] = sys.modules['pyspark.sql'] = None; "
               "from auditor.cli import main; sys.exit(main(sys.argv[1:]))")


def _without_pyspark(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _NO_PYSPARK, *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


def test_spark_without_pyspark_is_a_one_line_error_saying_how_to_install_it():
    for args in (["run", *SAMPLE, "--engine", "spark"], ["test", "rules", "--engine", "spark"]):
        result = _without_pyspark(*args)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines()[-1] == (
            "error: --engine spark needs PySpark (and Java 17 or later): pip install 'auditor[spark]'")


def test_the_config_engine_is_used_and_engine_wins_over_it(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    config = _config(tmp_path / "auditor.yaml", "spark")
    assert "pip install 'auditor[spark]'" in _without_pyspark("run", "--config", str(config), *SAMPLE, "-q").stderr
    assert "pip install 'auditor[spark]'" in _without_pyspark("test", "--config", str(config)).stderr
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
