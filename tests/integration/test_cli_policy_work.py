"""Issue 17 through the CLI: partial rule sets and their waivers, selection by framework, outputs, variables."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from tests.helpers import access, scim, write
from tests.integration.test_cli import AT, CONFIG, RULES, cli, data, run

WAIVERS = yaml.safe_dump({"waivers": [
    {"rule": "scim-heartbeat", "justification": "IdP migration", "owner": "iam@x.com", "ticket": "IAM-1",
     "expires": "2026-12-01"},
    {"rule": "ghost-rule", "justification": "left over", "owner": "iam@x.com", "ticket": "IAM-2",
     "expires": "2026-12-01"},
]}, sort_keys=False)


@pytest.fixture
def policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """test_cli.py's policy repo (three rules, passing data) as the current directory."""
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("AUDITOR_VAR_")]:
        monkeypatch.delenv(key)
    for name, text in RULES.items():
        write(tmp_path / name, text)
    write(tmp_path / "auditor.yaml", CONFIG)
    data(tmp_path, [access(country="US")], [scim()])
    return tmp_path


def _with_waivers(root) -> None:
    write(root / "waivers.yaml", WAIVERS)
    config = (root / "auditor.yaml").read_text()
    write(root / "auditor.yaml", config + "waivers: waivers.yaml\nmax_waiver_days: 100000\n")


# --- 1. waivers of rules not loaded -----------------------------------------------------------------------------


def test_some_rule_files_ignore_waivers_of_rules_not_loaded(policy):
    _with_waivers(policy)
    for command in (["validate", "rules/access.yaml"], ["test", "rules/access.yaml"]):
        result = cli(*command)
        assert result.exit_code == 0, result.stderr
        assert "waiver" not in result.stderr
    assert run("rules/access.yaml").exit_code == 0


def test_whole_rule_set_names_a_waiver_of_a_rule_that_exists_nowhere(policy):
    _with_waivers(policy)
    for command in (["validate"], ["test"], ["validate", "rules"], ["run", "--data", "data", "--at", AT]):
        result = cli(*command)
        assert result.exit_code == 2
        assert "waivers.yaml:7:9: error: waiver names unknown rule 'ghost-rule'" in result.stderr


# --- 5. selection for compliance work ---------------------------------------------------------------------------


def _planned(*args: str) -> list[str]:
    result = cli("plan", "--at", AT, "--json", *args)
    assert result.exit_code == 0, result.stderr
    return [r["id"] for r in json.loads(result.stdout)["rules"]]


def test_tag_prefix_and_globs_select_by_framework(policy):
    assert _planned("--tag", "soc2") == ["denied-burst", "scim-heartbeat"]
    assert _planned("--tag", "soc2:*") == ["denied-burst", "scim-heartbeat"]
    assert _planned("--tag", "soc2:CC6.2") == ["scim-heartbeat"]
    assert _planned("--tag", "iso*") == ["foreign-login"]
    assert cli("plan", "--at", AT, "--tag", "soc").exit_code == 2  # a prefix is a whole framework name


def test_skip_rule_and_skip_tag_remove_from_the_selection(policy):
    assert _planned("--skip-tag", "soc2") == ["foreign-login"]
    assert _planned("--tag", "soc2", "--skip-rule", "scim-*") == ["denied-burst"]
    assert _planned("--skip-rule", "denied-burst", "--skip-rule", "foreign-login") == ["scim-heartbeat"]
    result = cli("run", "--data", "data", "--at", AT, "--skip-tag", "soc2", "--report", "json")
    assert result.exit_code == 0
    assert [r["id"] for r in json.loads(result.stdout)["results"]] == ["foreign-login"]
    tested = cli("test", "--skip-rule", "denied-*")
    assert tested.exit_code == 0, tested.stderr


def test_selection_mistakes_are_one_line_errors(policy):
    typo = cli("plan", "--at", AT, "--skip-rule", "denied-brust")
    assert typo.exit_code == 2
    assert typo.stderr == "error: --skip-rule 'denied-brust': no such rule; did you mean 'denied-burst'?\n"
    glob = cli("plan", "--at", AT, "--rule", "nothing-*")
    assert glob.stderr == "error: --rule 'nothing-*' matches no rule id\n"
    none = cli("plan", "--at", AT, "--tag", "pci")
    assert none.exit_code == 2
    assert none.stderr == "error: --tag selected no rules (tags in use: iso27001:A.8.5, soc2:CC6.1, soc2:CC6.2)\n"
    everything = cli("plan", "--at", AT, "--skip-tag", "*")
    assert everything.stderr.startswith("error: --skip-rule/--skip-tag left no rules")
