"""A pass must be earned: the coverage issue's cases through the real CLI. Data that does not cover a rule's
window never gives a pass (or fail) that more data could change; the exit code says undecided (2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import cli
from tests.helpers import SAMPLE_COVERS, write_ndjson
from tests.integration.test_api_source import ACCOUNT, TOKEN, rule, run_args, token_env, write_rules

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "data"
pytestmark = pytest.mark.skipif(not (SAMPLE / "access_requests.ndjson.gz").exists(), reason="no sample data")


def _run(tmp_path: Path, *args: str) -> tuple[int, dict]:
    out = tmp_path / "results.json"
    result = CliRunner().invoke(cli, ["run", str(REPO / "rules"), "--config", str(REPO / "auditor.yaml"),
                                      "--quiet", "--no-progress", "--results", str(out), *args])
    assert "Traceback" not in result.output + result.stderr
    return result.exit_code, json.loads(out.read_text())


def test_the_sample_without_at_decides_nothing_it_does_not_cover(tmp_path):
    # Today is after the sample's last record: every window reaches past the data.
    code, doc = _run(tmp_path, "--data", str(SAMPLE))
    assert code == 2
    assert all(r["status"] in ("error", "fail") for r in doc["results"]), [r["status"] for r in doc["results"]]
    assert not any(r["status"] == "pass" for r in doc["results"])
    assert {log["basis"] for log in doc["coverage"]} == {"inferred"}
    # The run says so too, once per log: the edges of an export are a guess.
    inferred = [w for w in doc["warnings"] if "coverage inferred" in w]
    assert [w.split(":")[0] for w in inferred] == ["access_requests", "scim_updates"]
    assert inferred[0].startswith("access_requests: coverage inferred from its first record (2026-11-01T")
    assert all(w.endswith("Z); a gap inside it is not seen: state what the files hold with --data-covers")
               for w in inferred)


def test_a_reference_time_long_after_the_sample_is_an_error_for_every_rule(tmp_path):
    code, doc = _run(tmp_path, "--data", str(SAMPLE), "--at", "2027-06-01T00:00:00Z")
    assert code == 2
    assert {r["status"] for r in doc["results"]} == {"error"}
    breakglass = next(r for r in doc["results"] if r["id"] == "breakglass-account-used")
    assert breakglass["message"].startswith("no access_requests data covers 2027-05-18T00:00:00Z..2027-06-01T00:00:00Z "
                                            "of this rule's window (data ends 2026-11-14T23:59:59.951566Z")
    assert breakglass["coverage"]["complete"] is False


def test_an_empty_export_passes_no_max_rule(tmp_path):
    write_ndjson(tmp_path / "empty" / "access_requests.ndjson", [])
    write_ndjson(tmp_path / "empty" / "scim_updates.ndjson", [])
    code, doc = _run(tmp_path, "--data", str(tmp_path / "empty"), "--at", "2026-11-15T00:00:00Z")
    assert code == 2
    assert {r["status"] for r in doc["results"]} == {"error"}
    assert all("(no " in r["message"] and "records in the data" in r["message"] for r in doc["results"])


def test_the_sample_at_its_end_with_its_coverage_stated_keeps_its_answers(tmp_path):
    code, doc = _run(tmp_path, "--data", str(SAMPLE), "--data-covers", SAMPLE_COVERS, "--at", "2026-11-15T00:00:00Z")
    assert code == 1
    statuses = {r["status"] for r in doc["results"]}
    assert statuses == {"pass", "fail", "waived"}
    leaver = next(r for r in doc["results"] if r["id"] == "deprovisioned-user-signs-in")
    # Its 30-day window starts before the sample, but 3 sign-ins after a deprovisioning already exceed max 0.
    assert leaver["status"] == "fail" and "already over a max where data covers it" in leaver["message"]
    assert leaver["coverage"]["logs"][0]["missing"] == [{"since": "2026-10-16T00:00:00Z",
                                                         "until": "2026-11-01T00:00:00Z"}]


def test_a_period_after_the_sample_has_no_data_at_any_step(tmp_path):
    code, doc = _run(tmp_path, "--data", str(SAMPLE), "--data-covers", SAMPLE_COVERS, "--period", "2026-12",
                     "--report", f"markdown={tmp_path / 'r.md'}", "--report", f"html={tmp_path / 'r.html'}")
    assert code == 2
    for r in doc["results"]:
        assert r["status"] == "error" and "pass" not in {s["status"] for s in r["timeline"]}, r["id"]
        assert all(s["reason"] == "no_data" for s in r["timeline"] if s["status"] == "error"), r["id"]
    # A 30-day rule still sees November's planted leaver at the first steps: a max already exceeded fails.
    leaver = next(r for r in doc["results"] if r["id"] == "deprovisioned-user-signs-in")
    assert leaver["timeline"][0]["status"] == "fail" and leaver["timeline"][-1]["status"] == "error"
    daily = next(r for r in doc["results"] if r["id"] == "denied-login-burst-per-user")
    assert daily["message"].startswith("no data at 31 of 31 steps")
    assert f"`{'?' * 31}`" in (tmp_path / "r.md").read_text()
    html = (tmp_path / "r.html").read_text()
    assert html.count('class="hm-no-data"') > 31 and "No data (error: no data covers the step" in html


def test_a_single_api_run_before_the_retention_is_an_error_not_a_pass(tmp_path, emulator, clock):
    # "Now" is pinned to 2026-11-16 (tests/conftest.py); the API keeps 30 days: from 2026-10-17.
    data = tmp_path / "data"
    write_ndjson(data / "access_requests.ndjson", [])
    write_ndjson(data / "scim_updates.ndjson", [])
    root = write_rules(tmp_path, [rule("quiet", filter={"allowed": False}), rule("later", window="1h")])
    emu = emulator(data, account_id=ACCOUNT, token=TOKEN)
    args = run_args(root, base=emu.base_url)
    args[args.index("--at") + 1] = "2026-10-17T12:00:00Z"  # "quiet" (24h) starts 12 hours before the API's oldest
    result = CliRunner().invoke(cli, args, env=token_env(), catch_exceptions=False)
    assert result.exit_code == 2, result.output
    doc = json.loads((root / "results.json").read_text())
    by_id = {r["id"]: r for r in doc["results"]}
    assert by_id["quiet"]["status"] == "error"
    assert by_id["quiet"]["message"] == (
        "no access_requests data covers 2026-10-16T12:00:00Z..2026-10-17T00:00:00Z of this rule's window (data "
        "starts 2026-10-17T00:00:00Z; the API keeps 30 days of logs (retention_days), until now "
        "(2026-11-16T00:00:00Z))")
    assert by_id["later"]["status"] == "pass"  # its hour is inside the retention
    assert by_id["quiet"]["coverage"]["logs"][0]["basis"] == "retention"


def test_plan_marks_and_run_warns_about_windows_beyond_the_api_before_any_request(tmp_path, emulator, clock):
    data = tmp_path / "data"
    write_ndjson(data / "access_requests.ndjson", [])
    write_ndjson(data / "scim_updates.ndjson", [])
    root = write_rules(tmp_path, [rule("old", window="40d"), rule("recent", window="1h")])
    plan = CliRunner().invoke(cli, ["plan", str(root / "rules"), "--config", str(root / "auditor.yaml"),
                                    "--at", "2026-11-15T12:00:00Z"])
    marked = [line for line in plan.stdout.splitlines() if line.startswith("  ! ")]
    assert len(marked) == 1 and marked[0].startswith("  ! old: its window starts 2026-10-06T12:00:00Z, before the "
                                                     "30 days the API keeps")
    as_json = CliRunner().invoke(cli, ["plan", str(root / "rules"), "--config", str(root / "auditor.yaml"),
                                       "--at", "2026-11-15T12:00:00Z", "--json"])
    assert [f"  ! {m['rule']}: {m['why']}" for m in json.loads(as_json.stdout)["beyond_the_api"]] == marked
    emu = emulator(data, account_id=ACCOUNT, token=TOKEN)
    args = run_args(root, base=emu.base_url)
    args[args.index("--at") + 1] = "2026-11-17T00:00:00Z"  # after the pinned now (2026-11-16): both reach past it
    result = CliRunner().invoke(cli, args, env=token_env(), catch_exceptions=False)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert [w.split(":")[1].strip() for w in warnings] == ["old", "recent"]
    assert "after now (2026-11-16T00:00:00Z)" in warnings[1]
    assert result.exit_code == 2
