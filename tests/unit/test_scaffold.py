"""`auditor init`: the scaffolded policy repo validates, tests and runs on the sample data; nothing is overwritten."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from auditor import __version__
from auditor.cli import app, scaffold
from tests.helpers import SAMPLE_COVERS

REPO = Path(__file__).resolve().parents[2]
EXPECTED = [
    ".github/workflows/audit.yml",
    ".pre-commit-hooks.yaml",
    ".vscode/settings.json",
    "auditor.yaml",
    "docs/rules.md",
    "rules/access.yaml",
    "rules/scim.yaml",
    "rules/tests/mass-deprovisioning.ndjson",
    "schemas/config.schema.json",
    "schemas/rules.schema.json",
    "schemas/waivers.schema.json",
    "waivers.yaml",
]


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    for key in ("CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_TOKEN"):
        monkeypatch.delenv(key, raising=False)


def cli(*args: str):
    return CliRunner().invoke(app.cli, list(args))


def test_init_writes_the_policy_repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("init", "policy")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:-1] == [f"created {Path('policy') / name}" for name in EXPECTED]
    written = sorted(p.relative_to(tmp_path / "policy").as_posix() for p in (tmp_path / "policy").rglob("*")
                     if p.is_file())
    assert written == EXPECTED


def test_init_output_validates_tests_and_runs_on_the_sample_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("init").exit_code == 0  # into the current directory
    validate = cli("validate")
    assert (validate.exit_code, validate.stdout) == (0, "ok: 6 rules in 2 files, 0 waivers\n"), validate.output
    tested = cli("test")
    assert tested.exit_code == 0, tested.output
    assert tested.stdout.splitlines()[-1] == "15 cases in 6 rules: 15 held, 0 did not"
    run = cli("run", "--data", str(REPO / "examples" / "data"), "--data-covers", SAMPLE_COVERS,
              "--at", "2026-11-15T00:00:00Z",
              "--results", "out/results.json", "--report", "sarif=out/auditor.sarif",
              "--report", "html=out/report.html")
    assert run.exit_code == 1, run.output  # the sample data holds planted incidents
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {r["id"]: r["status"] for r in doc["results"]} == {
        "password-spray-per-ip": "fail", "signin-from-disallowed-country": "fail",
        "admin-console-from-office-only": "pass", "breakglass-account-used": "fail",
        "scim-heartbeat-per-idp": "fail", "scim-mass-deprovisioning": "fail"}
    assert doc["waivers"] == [] and doc["warnings"] == []
    assert (tmp_path / "out" / "report.html").is_file()
    plan = cli("plan", "--at", "2026-11-15T00:00:00Z", "-o", "plan.json")
    assert plan.exit_code == 0
    again = cli("run", "--plan", "plan.json", "--data", str(REPO / "examples" / "data"), "--data-covers",
                SAMPLE_COVERS, "--quiet")
    assert again.exit_code == 1, again.output


def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path):
    target = tmp_path / "policy"
    (target / "rules").mkdir(parents=True)
    (target / "rules" / "access.yaml").write_text("mine\n")
    (target / "waivers.yaml").write_text("mine too\n")
    result = cli("init", str(target))
    assert result.exit_code == 2
    assert result.stderr == (f"error: init would overwrite {target / 'rules' / 'access.yaml'}, "
                             f"{target / 'waivers.yaml'}; nothing was written (move them away or pick another "
                             "directory)\n")
    assert sorted(p.name for p in target.rglob("*")) == ["access.yaml", "rules", "waivers.yaml"]
    assert (target / "rules" / "access.yaml").read_text() == "mine\n"


def test_init_into_a_file_is_an_error(tmp_path):
    (tmp_path / "f").write_text("x")
    result = cli("init", str(tmp_path / "f"))
    assert result.exit_code == 2 and "is not a directory" in result.stderr


def test_workflow_runs_validate_test_and_run_uploads_reports_and_gates():
    workflow = yaml.safe_load(scaffold.files()[".github/workflows/audit.yml"])
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as true
    assert "schedule" in triggers and "pull_request" in triggers
    assert workflow["permissions"]["security-events"] == "write"
    steps = workflow["jobs"]["audit"]["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    # Never by name from the public index (not this project there): a pinned git URL or a checked-in wheel.
    assert "auditor==" not in runs and 'python -m pip install "$AUDITOR_PACKAGE"' in runs
    assert workflow["env"]["AUDITOR_PACKAGE"] == f"git+https://github.com/YOUR-ORG/auditor@v{__version__}"
    assert "*YOUR-ORG*) echo \"::error::set AUDITOR_PACKAGE" in runs  # an unset pin fails with a clear error
    assert "auditor validate" in runs and "auditor test" in runs
    assert "--report sarif=out/auditor.sarif" in runs and "--report html=out/report.html" in runs
    audit = next(s for s in steps if s.get("id") == "audit")
    assert audit["env"] == {"CLOUDFLARE_API_TOKEN": "${{ secrets.CLOUDFLARE_API_TOKEN }}",
                            "CLOUDFLARE_ACCOUNT_ID": "${{ secrets.CLOUDFLARE_ACCOUNT_ID }}"}
    uses = {s.get("uses", "").split("@")[0]: s for s in steps}
    assert uses["github/codeql-action/upload-sarif"]["with"]["sarif_file"] == "out/auditor.sarif"
    assert "out/report.html" in uses["actions/upload-artifact"]["with"]["path"]
    assert steps[-1]["run"] == 'exit "${{ steps.audit.outputs.exit_code || 2 }}"'


def test_pre_commit_hook_and_editor_schemas():
    content = scaffold.files()
    hooks = yaml.safe_load(content[".pre-commit-hooks.yaml"])
    assert {h["id"]: h["entry"] for h in hooks} == {"auditor-validate": "auditor validate",
                                                    "auditor-test": "auditor test"}
    settings = json.loads(content[".vscode/settings.json"])
    assert settings["yaml.schemas"]["./schemas/rules.schema.json"] == ["rules/**/*.yaml", "rules/**/*.yml"]
    for schema in settings["yaml.schemas"]:
        assert schema.removeprefix("./") in content
    for name in ("rules/access.yaml", "rules/scim.yaml"):
        assert content[name].startswith(b"# yaml-language-server: $schema=../schemas/rules.schema.json\n")


def test_starter_rules_are_copies_of_the_shipped_pack():
    pack = {}
    for path in (REPO / "rules").glob("*.yaml"):
        pack.update({r["id"]: r for r in yaml.safe_load(path.read_text())["rules"]})
    content = scaffold.files()
    for name in ("rules/access.yaml", "rules/scim.yaml"):
        for rule in yaml.safe_load(content[name])["rules"]:
            assert rule == pack[rule["id"]], rule["id"]
            assert {c["expect"] for c in rule["tests"]} == {"pass", "fail"}
    fixture = "rules/tests/mass-deprovisioning.ndjson"
    assert content[fixture] == (REPO / fixture).read_bytes()


def test_the_scaffold_carries_the_rule_language_reference(tmp_path):
    assert CliRunner().invoke(app.cli, ["init", str(tmp_path / "p")]).exit_code == 0
    assert (tmp_path / "p" / "docs" / "rules.md").read_text() == (REPO / "docs" / "rules.md").read_text()
    config = (tmp_path / "p" / "auditor.yaml").read_text()
    assert "docs/rules.md" in config and "http" not in config.split("\n")[1]
