"""Saved plans: `plan -o` records its inputs; `run --plan` runs exactly that plan or refuses a stale one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from auditor.cli import app
from tests.helpers import access, scim, write, write_ndjson

AT = "2026-11-15T12:00:00Z"
RULES = {"id": "denied-burst", "title": "No user denied more than twice", "source": "access_requests",
         "window": "1h", "filter": {"allowed": False}, "group_by": "user_email",
         "expect": {"count": {"max": "${var.max_denied}"}}}
SCIM = {"id": "scim-heartbeat", "title": "SCIM ran", "source": "scim_updates", "window": "1d",
        "expect": {"count": {"min": 1}}}
CONFIG = "scim_idp_ids: [idp-1]\nwaivers: waivers.yaml\nvariables:\n  max_denied: {default: 2}\n"
WAIVERS = "waivers: []\n"


@pytest.fixture(autouse=True)
def repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("CLOUDFLARE_ACCOUNT_ID", raising=False)
    write(tmp_path / "rules" / "access.yaml", yaml.safe_dump({"rules": [RULES]}, sort_keys=False))
    write(tmp_path / "rules" / "scim.yaml", yaml.safe_dump({"rules": [SCIM]}, sort_keys=False))
    write(tmp_path / "auditor.yaml", CONFIG)
    write(tmp_path / "waivers.yaml", WAIVERS)
    denied = [access(allowed=False, user_email="eve@x.com", created_at=f"2026-11-15T11:1{i}:00Z") for i in range(3)]
    write_ndjson(tmp_path / "data" / "access_requests.ndjson", denied)
    write_ndjson(tmp_path / "data" / "scim_updates.ndjson", [scim(logged_at="2026-11-15T10:00:00Z")])
    return tmp_path


def cli(*args: str):
    return CliRunner().invoke(app.cli, list(args))


def save(*extra: str) -> dict:
    result = cli("plan", "--at", AT, "-o", "plan.json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(Path("plan.json").read_text(encoding="utf-8"))


def test_saved_plan_records_inputs_and_digests():
    saved = save("--rule", "denied-burst")
    assert saved["reference_time"] == AT
    assert saved["inputs"] == {"paths": [], "rule_ids": ["denied-burst"]}
    assert set(saved["digests"]) == {"rules_sha256", "config_sha256", "variables_sha256", "waivers_sha256"}
    assert all(len(v) == 64 for v in saved["digests"].values())
    assert [f["rules"] for f in saved["fetches"]] == [["denied-burst"]]


def test_run_plan_uses_the_plans_time_and_selection(repo):
    save("--rule", "denied-burst")
    result = cli("run", "--plan", "plan.json", "--data", "data", "--results", "out.json", "--quiet")
    assert result.exit_code == 1, result.output
    doc = json.loads((repo / "out.json").read_text())
    assert doc["reference_time"] == AT  # not now
    assert [r["id"] for r in doc["results"]] == ["denied-burst"]
    saved = json.loads((repo / "plan.json").read_text())
    assert [f["rules"] for f in saved["fetches"]] == [["denied-burst"]]
    assert doc["results"][0]["fetch"] == "files data/access_requests.ndjson"  # over files: the files read


def test_run_plan_with_the_plans_paths(repo):
    save("rules/scim.yaml")
    result = cli("run", "--plan", "plan.json", "--data", "data", "--results", "out.json", "--quiet")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in json.loads((repo / "out.json").read_text())["results"]] == ["scim-heartbeat"]


@pytest.mark.parametrize(("change", "what"), [
    (lambda repo: write(repo / "rules" / "access.yaml",
                        yaml.safe_dump({"rules": [{**RULES, "window": "2h"}]}, sort_keys=False)), "the rule files"),
    (lambda repo: write(repo / "rules" / "more.yaml", yaml.safe_dump({"rules": [{**SCIM, "id": "other"}]})),
     "the rule files"),
    (lambda repo: write(repo / "auditor.yaml", CONFIG + "per_page: 500\n"), "the config (auditor.yaml)"),
    (lambda repo: write(repo / "waivers.yaml", "waivers:\n  - {rule: denied-burst, justification: x, owner: y, "
                        "expires: 2026-12-01}\n"), "the waivers file"),
])
def test_stale_plan_is_refused_with_exit_2(repo, change, what):
    save()
    change(repo)
    result = cli("run", "--plan", "plan.json", "--data", "data", "--quiet")
    assert result.exit_code == 2
    assert result.stderr == (f"error: plan.json is stale: {what} changed since it was saved; make a new plan with: "
                             "auditor plan -o plan.json\n")


def test_changed_variables_make_a_plan_stale(monkeypatch):
    save()
    result = cli("run", "--plan", "plan.json", "--data", "data", "--var", "max_denied=5")
    assert result.exit_code == 2 and "the variables changed" in result.stderr
    monkeypatch.setenv("AUDITOR_VAR_MAX_DENIED", "5")
    result = cli("run", "--plan", "plan.json", "--data", "data")
    assert result.exit_code == 2 and "the variables changed" in result.stderr
    monkeypatch.delenv("AUDITOR_VAR_MAX_DENIED")
    assert cli("run", "--plan", "plan.json", "--data", "data", "--quiet").exit_code == 1  # back as planned


def test_tampered_fetches_are_refused(repo):
    saved = save()
    saved["fetches"][0]["until"] = "2026-11-16T00:00:00Z"  # what is read
    (repo / "plan.json").write_text(json.dumps(saved))
    result = cli("run", "--plan", "plan.json", "--data", "data")
    assert result.exit_code == 2
    assert "no longer compile to the saved fetches" in result.stderr
    saved = save()
    saved["fetches"][0]["query"] = saved["fetches"][0]["query"].replace("per_page=1000", "per_page=5")
    (repo / "plan.json").write_text(json.dumps(saved))
    result = cli("run", "--plan", "plan.json", "--account-id", "0123456789abcdef0123456789abcdef")  # the API
    assert result.exit_code == 2
    assert "no longer compile to the saved fetches" in result.stderr


@pytest.mark.parametrize("option", [("--at", AT), ("--rule", "denied-burst"), ("--tag", "x"), ("--per-page", "5")])
def test_options_the_plan_fixes_cannot_be_given(option):
    save()
    result = cli("run", "--plan", "plan.json", "--data", "data", *option)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {option[0]} cannot be combined with --plan")


def test_not_a_plan(repo):
    (repo / "results.json").write_text('{"version": 1, "results": []}')
    result = cli("run", "--plan", "results.json", "--data", "data")
    assert (result.exit_code, result.stderr) == (
        2, "error: --plan results.json: not a saved plan; write one with: auditor plan -o results.json\n")
    result = cli("run", "--plan", "missing.json", "--data", "data")
    assert (result.exit_code, result.stderr) == (2, "error: --plan missing.json: file not found\n")


def test_account_of_the_plan(repo):
    planned, other = "00000000000000000000000000abc123", "000000000000000000000000ffff0099"
    save("--account-id", planned)
    result = cli("run", "--plan", "plan.json", "--data", "data", "--account-id", other)
    assert result.exit_code == 2 and f"was planned for account {planned}, not {other}" in result.stderr
    result = cli("run", "--plan", "plan.json", "--data", "data", "--results", "out.json", "--quiet")
    assert result.exit_code == 1
    assert json.loads((repo / "out.json").read_text())["account_id"] == planned
