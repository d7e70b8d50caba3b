"""`auditor test`: rule test cases from inline records or files, their reference time, output and exit codes."""

from __future__ import annotations

import gzip
import json

import pytest
import yaml
from click.testing import CliRunner

from auditor.cli import app
from auditor.core.timeutil import parse_time
from auditor.run.ruletests import reference_time, run_tests
from tests.helpers import access, project, write, write_ndjson

NOW = parse_time("2026-11-27T00:00:00Z")


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def rule(tests: list[dict], **fields) -> dict:
    base = {"id": "denied-burst", "title": "No user denied more than twice in an hour", "source": "access_requests",
            "window": "1h", "filter": {"allowed": False}, "group_by": "user_email", "expect": {"count": {"max": 2}}}
    return {k: v for k, v in {**base, **fields, "tests": tests}.items() if v is not None}


def rules_file(*rules: dict) -> str:
    return yaml.safe_dump({"rules": list(rules)}, sort_keys=False)


def denied(n: int, user: str = "eve@example.com", hour: int = 9) -> list[dict]:
    return [{"created_at": f"2026-11-14T{hour:02d}:{10 + i:02d}:00Z", "allowed": False, "user_email": user}
            for i in range(n)]


def cases(tmp_path, *rules: dict, config: str = ""):
    proj = project(tmp_path, rules_file(*rules), config=config)
    assert proj.ok, [d.format() for d in proj.diagnostics]
    return run_tests(proj.rules, proj.config, NOW)


def test_cases_report_what_the_rule_measured(tmp_path):
    results, problems = cases(tmp_path, rule([
        {"name": "three denials fail", "expect": "fail", "records": denied(3)},
        {"name": "two denials pass", "expect": "pass", "records": denied(2)},
        {"name": "wrongly expected to pass", "expect": "pass", "records": denied(4)},
        {"name": "no records pass", "expect": "pass", "records": []},
    ]))
    assert problems == []
    assert [(c.case.name, c.status, c.held) for c in results] == [
        ("three denials fail", "fail", True), ("two denials pass", "pass", True),
        ("wrongly expected to pass", "fail", False), ("no records pass", "pass", True)]
    assert results[0].line() == "PASS denied-burst: three denials fail"
    assert results[2].line() == (
        "FAIL denied-burst: wrongly expected to pass: expected pass, got fail at 2026-11-14T09:13:01Z: 1 group "
        "violates; worst: count 4 (max 2) for user_email=eve@example.com (rules/rules.yaml:34:5)")


def test_reference_time_defaults_after_the_latest_record_and_respects_until(tmp_path):
    proj = project(tmp_path, rules_file(
        rule([{"name": "a", "expect": "fail", "records": denied(3)}]),
        rule([{"name": "b", "expect": "fail", "records": denied(3)}], id="lagged", window=None, since="2h",
             until="1h"),
        rule([{"name": "c", "expect": "pass", "records": denied(3), "at": "2026-11-14T12:00:00.700Z"},
              {"name": "d", "expect": "pass", "records": []}], id="explicit"),
    ))
    assert proj.ok, [d.format() for d in proj.diagnostics]
    first, lagged, explicit = proj.rules
    records = {"access_requests": denied(3)}
    assert reference_time(first, first.tests[0], records, NOW) == parse_time("2026-11-14T09:12:01Z")
    assert reference_time(lagged, lagged.tests[0], records, NOW) == parse_time("2026-11-14T10:12:01Z")
    assert reference_time(explicit, explicit.tests[0], records, NOW) == parse_time("2026-11-14T12:00:00Z")
    assert reference_time(explicit, explicit.tests[1], {}, NOW) == NOW
    results, _ = run_tests(proj.rules, proj.config, NOW)
    assert [c.status for c in results] == ["fail", "fail", "pass", "pass"]  # the lagged window still sees them


def test_records_file_in_data_formats_relative_to_the_rule_file(tmp_path):
    write_ndjson(tmp_path / "rules" / "fixtures" / "burst.ndjson", [access(**r) for r in denied(3)])
    logpush = [{"CreatedAt": f"2026-11-14T09:1{i}:00Z", "Allowed": False, "UserEmail": "eve@example.com",
                "Action": "login", "AppDomain": "a.example.com", "AppUUID": "u", "Connection": "okta",
                "IPAddress": "192.0.2.1", "RayID": f"r{i}"} for i in range(3)]
    with gzip.open(tmp_path / "rules" / "fixtures" / "logpush.json.gz", "wt") as fh:
        json.dump(logpush, fh)
    write_ndjson(tmp_path / "rules" / "fixtures" / "both" / "access_requests.ndjson", [access(**r) for r in denied(1)])
    results, problems = cases(tmp_path, rule([
        {"name": "ndjson", "expect": "fail", "records_file": "fixtures/burst.ndjson"},
        {"name": "logpush gzip", "expect": "fail", "records_file": "fixtures/logpush.json.gz"},
        {"name": "a directory like --data", "expect": "pass", "records_file": "fixtures/both"},
    ]))
    assert problems == []
    assert all(c.held for c in results), [c.line() for c in results]


def test_records_per_source_mapping(tmp_path):
    results, _ = cases(tmp_path, rule([
        {"name": "mapping form", "expect": "fail", "records": {"access_requests": denied(3)}},
    ]))
    assert [c.held for c in results] == [True]


def test_validation_of_cases_with_file_line(tmp_path):
    text = rules_file(rule([
        {"name": "both", "expect": "fail", "records": [], "records_file": "x.ndjson"},
        {"name": "neither", "expect": "fail"},
        {"name": "missing file", "expect": "fail", "records_file": "nope.ndjson"},
        {"name": "no time", "expect": "fail", "records": [{"allowed": False}]},
        {"name": "bad at", "expect": "fail", "records": [], "at": "tomorrow"},
        {"name": "other source", "expect": "fail", "records": {"scim_updates": []}},
        {"name": "bad expect", "expect": "failed", "records": []},
    ]))
    found = [d.format() for d in project(tmp_path, text).diagnostics]
    assert found == ["rules/rules.yaml:35:13: error: rules[0].tests[6].expect: 'failed' is not one of pass, fail; "
                     "did you mean 'fail'?"]
    found = [d.format() for d in project(tmp_path, text.replace("expect: failed", "expect: fail")).diagnostics]
    assert found == [
        "rules/rules.yaml:16:5: error: test 'both' gives both 'records' and 'records_file': keep one",
        "rules/rules.yaml:17:5: error: test 'neither' needs 'records' or 'records_file'; records: [] is a case "
        "without records",
        "rules/rules.yaml:21:19: error: records_file not found: rules/nope.ndjson; the path is relative to the "
        "rule file",
        "rules/rules.yaml:25:7: error: test record has no created_at; e.g. 2026-11-15T09:00:00Z",
        "rules/rules.yaml:29:9: error: test 'at' 'tomorrow' is not an RFC 3339 timestamp; e.g. 2026-11-15T00:00:00Z",
        "rules/rules.yaml:33:7: error: this rule reads only access_requests records, not scim_updates",
    ]


# ---- CLI --------------------------------------------------------------------------------------------------


def cli(*args: str):
    return CliRunner().invoke(app.cli, list(args))


def test_cli_all_cases_hold_exit_0(tmp_path):
    write(tmp_path / "rules" / "r.yaml", rules_file(rule([
        {"name": "three denials fail", "expect": "fail", "records": denied(3)},
        {"name": "two denials pass", "expect": "pass", "records": denied(2)},
    ]), rule([], id="untested")))
    result = cli("test")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "PASS denied-burst: three denials fail",
        "PASS denied-burst: two denials pass",
        "2 cases in 1 rule: 2 held, 0 did not; 1 rule without tests (untested)",
    ]


def test_cli_a_case_that_does_not_hold_exit_1(tmp_path):
    write(tmp_path / "rules" / "r.yaml", rules_file(rule([
        {"name": "expected fail", "expect": "fail", "records": denied(2)},
    ])))
    result = cli("test", "rules")
    assert result.exit_code == 1
    first = result.stdout.splitlines()[0]
    assert first.startswith("FAIL denied-burst: expected fail: expected fail, got pass at 2026-11-14T09:11:01Z: ")
    assert "count 2 (max 2)" in first  # the measured value


def test_cli_invalid_input_exit_2(tmp_path):
    write(tmp_path / "rules" / "r.yaml", rules_file(rule([{"name": "x", "expect": "fail"}])))
    result = cli("test")
    assert result.exit_code == 2
    assert "needs 'records' or 'records_file'" in result.stderr


def test_cli_unreadable_records_file_exit_2(tmp_path):
    write(tmp_path / "rules" / "bad.ndjson", '{"created_at": "2026-11-14T09:00:00Z"}\nnot json\n')
    write(tmp_path / "rules" / "r.yaml", rules_file(rule([
        {"name": "broken fixture", "expect": "fail", "records_file": "bad.ndjson"}])))
    result = cli("test")
    assert result.exit_code == 2
    assert result.stderr.startswith("rules/bad.ndjson:2:")
    assert "test 'broken fixture' of rule 'denied-burst'" in result.stderr and "Traceback" not in result.stderr


def test_cli_selects_rules(tmp_path):
    write(tmp_path / "rules" / "r.yaml", rules_file(
        rule([{"name": "a", "expect": "fail", "records": denied(2)}]),
        rule([{"name": "b", "expect": "fail", "records": denied(3)}], id="other")))
    result = cli("test", "--rule", "other")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "PASS other: b"


def test_the_shipped_pack_proves_itself(monkeypatch):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(repo)
    result = cli("test")
    assert result.exit_code == 0, result.output
    assert "without tests" not in result.stdout.splitlines()[-1]  # every shipped rule has tests
    for path in sorted((repo / "rules").glob("*.yaml")):
        for r in yaml.safe_load(path.read_text())["rules"]:
            expected = {c["expect"] for c in r.get("tests", [])}
            assert expected == {"pass", "fail"}, f"{r['id']} needs a passing and a failing case"
