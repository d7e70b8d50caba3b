"""The policy-as-code workflow end to end: the repository's waivers on the sample data in every report format,
provenance digests stable across identical runs (files and API), and init -> validate -> test -> run as a
subprocess."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from auditor.cli import app
from auditor.load.schema import validator
from tests.helpers import SAMPLE_COVERS, access, scim, write, write_ndjson

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "data"
SAMPLE_AT = "2026-11-15T00:00:00Z"
COVERS = "2026-11-14T00:00:00Z/2026-11-16T00:00:00Z"  # the test data holds every record of the rules' windows
AZURE = "9d8e7f6a-5b4c-4d3e-8f2a-1b0c9d8e7f6a"
FORMATS = ("text", "markdown", "html", "junit", "sarif", "csv")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    for key in [k for k in os.environ if k.startswith(("CLOUDFLARE_", "AUDITOR_VAR_"))]:
        monkeypatch.delenv(key)


def cli(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app.cli, list(args), env=env)


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory) -> tuple[dict, dict[str, str]]:
    """The repository's rules, config and waivers over the sample data, every report written."""
    out = tmp_path_factory.mktemp("sample")
    cwd = Path.cwd()
    os.chdir(REPO)
    try:
        for key in [k for k in os.environ if k.startswith("AUDITOR_VAR_")]:
            del os.environ[key]
        args = ["run", "--data", "examples/data", "--data-covers", SAMPLE_COVERS, "--at", SAMPLE_AT, "--quiet",
                "--results", str(out / "r.json")]
        for fmt in FORMATS:
            args += ["--report", f"{fmt}={out / ('report.' + fmt)}"]
        result = CliRunner().invoke(app.cli, args, env={"GITHUB_STEP_SUMMARY": None})
    finally:
        os.chdir(cwd)
    assert result.exit_code == 1, result.output
    reports = {fmt: (out / f"report.{fmt}").read_text(encoding="utf-8") for fmt in FORMATS}
    return json.loads((out / "r.json").read_text(encoding="utf-8")), reports


def test_sample_waivers_apply_and_warn(sample_run):
    doc, _ = sample_run
    assert list(validator("results").iter_errors(doc)) == []
    status = {r["id"]: r["status"] for r in doc["results"]}
    assert status["scim-heartbeat-per-idp"] == "waived"  # Azure AD silent: waived, IAM-311
    assert status["scim-provisioning-failures"] == "waived"
    assert status["password-spray-per-ip"] == "fail"  # its waiver expired on 1 November
    waived = {r["id"]: r["waiver"] for r in doc["results"] if r["status"] == "waived"}
    assert waived["scim-provisioning-failures"]["records"] == 29
    assert waived["scim-heartbeat-per-idp"]["match"] == {"idp_id": AZURE}
    assert [(w["rule"], w["state"], w["records"]) for w in doc["waivers"]] == [
        ("scim-heartbeat-per-idp", "applied", 0), ("scim-provisioning-failures", "applied", 29),
        ("otp-on-sensitive-apps", "unused", 0), ("password-spray-per-ip", "expired", 0)]
    assert doc["warnings"] == [
        "waiver for otp-on-sensitive-apps (hr.example.com, HR-77) matched nothing in this run: stale exception?",
        "waiver for password-spray-per-ip (192.0.2.10, SEC-140) expired 2026-11-01 and no longer applies",
    ]
    assert doc["summary"]["waived"] == 2 and doc["summary"]["exit_code"] == 1


def test_every_report_shows_waivers_records_and_warnings(sample_run):
    _, reports = sample_run
    stale = "matched nothing in this run: stale exception?"
    for fmt, text in reports.items():
        assert "IAM-311" in text, fmt
        if fmt != "csv":  # csv is one row per measurement: the rule's waivers and their states are columns
            assert stale in text, fmt
    assert "WAIVED" in reports["text"] and "waived IAM-311 (29 records)" in reports["text"]
    assert "covered 29 records in 1 group" in reports["text"]
    assert "| applied | scim-provisioning-failures |" in reports["markdown"]
    assert "covers 29 records" in reports["markdown"]
    assert '<h2 id="waivers">Waivers</h2>' in reports["html"] and '<span class="badge waived">Waived</span>' in \
        reports["html"]
    junit = ET.fromstring(reports["junit"].encode())
    skipped = [c for c in junit.iter("testcase") if c.find("skipped") is not None]
    assert len(skipped) == 2 and "covers 29 records" in "".join(c.find("skipped").get("message") for c in skipped)
    sarif = json.loads(reports["sarif"])["runs"][0]
    suppressed = {r["ruleId"]: r["suppressions"][0] for r in sarif["results"] if r.get("suppressions")}
    assert set(suppressed) == {"scim-heartbeat-per-idp", "scim-provisioning-failures"}
    assert suppressed["scim-provisioning-failures"]["status"] == "accepted"
    assert suppressed["scim-provisioning-failures"]["properties"]["records"] == 29
    assert len(sarif["invocations"][0]["properties"]["waivers"]) == 4
    rows = list(csv.DictReader(io.StringIO(reports["csv"], newline="")))
    waived = {r["rule"]: r for r in rows if r["status"] == "waived"}
    assert waived["scim-provisioning-failures"]["waiver_records"] == "29"
    assert waived["scim-provisioning-failures"]["waiver_ticket"] == "IAM-311"
    notes = {r["rule"]: r["waivers"] for r in rows}
    assert notes["otp-on-sensitive-apps"] == "unused HR-77 (expires 2027-03-31, 0 records)"
    assert notes["password-spray-per-ip"] == "expired SEC-140 (expires 2026-11-01, 0 records)"


# ---- provenance ---------------------------------------------------------------------------------------


def _project(root: Path) -> None:
    write(root / "rules" / "r.yaml", yaml.safe_dump({"rules": [
        {"id": "denied", "title": "No denied sign-ins", "source": "access_requests", "window": "1h",
         "filter": {"allowed": False}, "group_by": "user_email"},
        {"id": "hb", "title": "SCIM per IdP", "source": "scim_updates", "window": "1d", "group_by": "idp_id",
         "for_each": {"idp_id": ["idp-1", "idp-2"]}, "expect": {"count": {"min": 1}}},
    ]}, sort_keys=False))
    write(root / "auditor.yaml",
          "account_id: 0000000000000000000000000acc0123\nwaivers: waivers.yaml\nscim_idp_ids: [idp-1]\n")
    write(root / "waivers.yaml", "waivers:\n  - rule: denied\n    match: {user_email: bot@example.com}\n"
          "    justification: CI account\n    owner: secops@example.com\n    expires: 2026-12-01\n")
    write_ndjson(root / "data" / "access_requests.ndjson",
                 [access(allowed=False, user_email="bot@example.com", created_at="2026-11-15T11:10:00Z")])
    write_ndjson(root / "data" / "scim_updates.ndjson", [scim(idp_id="idp-1", logged_at="2026-11-15T10:00:00Z")])


def _stable(doc: dict) -> dict:
    doc = json.loads(json.dumps(doc))
    doc["summary"].pop("duration_s")
    return doc


def test_provenance_digests_are_stable_across_identical_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _project(tmp_path)
    docs = []
    for name in ("one.json", "two.json"):
        result = cli("run", "--data", "data", "--data-covers", COVERS, "--at", "2026-11-15T12:00:00Z", "--quiet",
                     "--results", name)
        assert result.exit_code == 1, result.output  # the idp-2 heartbeat is silent
        docs.append(json.loads((tmp_path / name).read_text()))
    one, two = docs
    provenance = one["provenance"]
    assert all(len(provenance[k]) == 64 for k in ("rules_sha256", "config_sha256", "waivers_sha256"))
    assert _stable(one) == _stable(two)
    assert {r["id"]: r["status"] for r in one["results"]} == {"denied": "waived", "hb": "fail"}
    # each digest moves with its own input only
    write(tmp_path / "waivers.yaml", (tmp_path / "waivers.yaml").read_text() + "    ticket: SEC-9\n")
    cli("run", "--data", "data", "--data-covers", COVERS, "--at", "2026-11-15T12:00:00Z", "--quiet",
        "--results", "three.json")
    three = json.loads((tmp_path / "three.json").read_text())["provenance"]
    assert three["waivers_sha256"] != provenance["waivers_sha256"]
    assert (three["rules_sha256"], three["config_sha256"]) == (provenance["rules_sha256"], provenance["config_sha256"])


def test_api_requests_are_recorded_and_stable(tmp_path, monkeypatch, emulator):
    monkeypatch.chdir(tmp_path)
    _project(tmp_path)
    emu = emulator(tmp_path / "data", account_id="0000000000000000000000000acc0123", token="tok-test-0000")
    env = {"CLOUDFLARE_API_TOKEN": "tok-test-0000"}
    docs = []
    for name in ("one.json", "two.json"):
        result = cli("run", "--api-base", emu.base_url, "--at", "2026-11-15T12:00:00Z", "--quiet", "--no-progress",
                     "--results", name, env=env)
        assert result.exit_code == 1, result.output
        docs.append(json.loads((tmp_path / name).read_text()))
    one, two = docs
    requests = one["provenance"]["requests"]
    assert requests, "every API request is in the provenance"
    paths = {q["path"] for q in requests}
    assert paths == {"/client/v4/accounts/0000000000000000000000000acc0123/access/logs/access_requests",
                     "/client/v4/accounts/0000000000000000000000000acc0123/access/logs/scim/updates"}
    for q in requests:
        assert q["status"] == 200 and len(q["sha256"]) == 64 and q["records"] >= 0
        assert "tok-test" not in json.dumps(q)
    scim_queries = [q["query"] for q in requests if q["path"].endswith("/scim/updates")]
    assert all("idp_id=idp-1" in q and "idp_id=idp-2" in q for q in scim_queries)  # for_each IdPs are fetched
    assert _stable(one) == _stable(two)
    assert {r["id"]: r["status"] for r in one["results"]} == {"denied": "waived", "hb": "fail"}


# ---- one real subprocess: the documented first steps of a new policy repo ---------------------------------


def test_init_validate_test_run_as_a_subprocess(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDFLARE_", "AUDITOR_VAR_", "GITHUB_"))}

    def auditor(*args: str, cwd: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "auditor", *args], capture_output=True, text=True, cwd=cwd,
                              env=env, timeout=120)

    init = auditor("init", "policy", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert "created policy/.github/workflows/audit.yml" in init.stdout
    policy = tmp_path / "policy"
    assert auditor("validate", cwd=policy).returncode == 0
    tested = auditor("test", cwd=policy)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert all(line.startswith("PASS ") for line in tested.stdout.splitlines()[:-1])
    run = auditor("run", "--data", str(SAMPLE), "--data-covers", SAMPLE_COVERS, "--at", SAMPLE_AT,
                  "--report", "sarif=out/auditor.sarif",
                  "--report", "html=out/report.html", cwd=policy)
    assert run.returncode == 1, run.stderr
    assert "FAIL    high      scim-heartbeat-per-idp" in run.stdout
    assert (policy / "out" / "auditor.sarif").is_file() and (policy / "out" / "report.html").is_file()
    again = auditor("init", "policy", cwd=tmp_path)
    assert again.returncode == 2 and again.stderr.startswith("error: init would overwrite ")
