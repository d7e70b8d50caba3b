"""Issue 17 through the CLI: partial rule sets and their waivers, selection by framework, outputs, variables."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

from tests.helpers import access, scim, write
from tests.integration.test_cli import (
    AT,
    CONFIG,
    DENIED,
    RULES,
    cli,
    data,
    run,
)

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
    result = run("--skip-tag", "soc2", "--report", "json")
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


# --- 6. outputs ---------------------------------------------------------------------------------------------------

ACCOUNT = "0123456789abcdef0123456789abcdef"


def test_two_reports_to_stdout_are_refused(policy):
    result = cli("run", "--data", "data", "--at", AT, "--report", "json", "--report", "text")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == ("error: --report json and text would both go to stdout; give all but one a path "
                             "(--report FORMAT=PATH)\n")
    assert run("--report", "json", "--report", "text=out.txt").exit_code == 0


def test_warnings_go_to_stderr_and_survive_quiet(policy):
    _with_waivers(policy)
    write(policy / "waivers.yaml", yaml.safe_dump({"waivers": [yaml.safe_load(WAIVERS)["waivers"][0]]}))
    for args in (("-q",), ("--quiet",), ()):
        result = run(*args)
        assert result.exit_code == 0, result.stderr
        assert ("warning: waiver for scim-heartbeat (IAM-1) matched nothing in this run: stale exception?"
                in result.stderr.splitlines())
        assert "warning" not in result.stdout  # shown once, on stderr
        assert (result.stdout == "") == bool(args)


def test_no_color_and_case_insensitive_fail_on(policy):
    assert run("--no-color", "--fail-on", "HIGH").exit_code == 0
    assert cli("run", "--help").stdout.count("--no-color") == 1
    assert cli("report", "--help").stdout.count("--no-color") == 1


def test_validate_json_lists_every_problem(policy):
    ok = cli("validate", "--json")
    assert ok.exit_code == 0
    assert json.loads(ok.stdout) == {"ok": True, "rules": ["denied-burst", "foreign-login", "scim-heartbeat"],
                                     "files": ["rules/access.yaml", "rules/scim.yaml"], "waivers": 0,
                                     "problems": [], "warnings": []}
    write(policy / "rules" / "bad.yaml", "rules:\n  - id: b\n    title: t\n    source: access_requests\n"
          "    filtr: {}\n")
    bad = cli("validate", "--json")
    assert bad.exit_code == 2 and bad.stderr == ""
    problem = json.loads(bad.stdout)["problems"][0]
    assert problem == {"code": problem["code"], "file": "rules/bad.yaml", "line": 5, "column": 5,
                       "message": "unknown key 'filtr' in rule file rules[0]", "hint": "did you mean 'filter'?"}


def test_test_writes_junit(policy):
    write(policy / "rules" / "scim.yaml", yaml.safe_dump({"rules": [
        {"id": "scim-heartbeat", "title": "SCIM ran", "source": "scim_updates", "window": "1d",
         "expect": {"count": {"min": 1}}, "tests": [
             {"name": "one run is enough", "at": AT, "expect": "pass",
              "records": {"scim_updates": [{"logged_at": "2026-11-15T11:00:00Z", "idp_id": "idp-1"}]}},
             {"name": "a <wrong> expectation", "at": AT, "expect": "pass", "records": {"scim_updates": []}},
         ]}]}, sort_keys=False))
    result = cli("test", "rules/scim.yaml", "--report", "junit=out/tests.xml")
    assert result.exit_code == 1
    root = ElementTree.parse(policy / "out" / "tests.xml").getroot()
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("scim-heartbeat", "one run is enough"), ("scim-heartbeat", "a <wrong> expectation")]
    failure = cases[1].find("failure")
    assert failure is not None and "expected pass, got fail" in (failure.get("message") or "")
    wrong = cli("test", "--report", "html=x.html")
    assert wrong.stderr == "error: --report 'html=x.html': auditor test writes junit=PATH only\n"


def test_plan_output_says_where_it_saved(policy):
    result = cli("plan", "--at", AT, "-o", "plans/today.json")
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr == "saved the plan to plans/today.json; run it with: auditor run --plan plans/today.json\n"
    assert (policy / "plans" / "today.json").is_file()


def test_account_id_is_checked_before_any_request(policy, emulator):
    emu = emulator(policy / "data", token="t")
    for bad in ("acc-1", "0123456789abcdef0123456789abcde", "../../x?y=1"):
        result = cli("run", "--at", AT, "--api-base", emu.base_url, "--account-id", bad,
                     env={"CLOUDFLARE_API_TOKEN": "t"})
        assert result.exit_code == 2
        assert result.stderr.startswith(f"error: account id {bad!r} is not a Cloudflare account id (32 hexadecimal")
        assert result.stderr.count("\n") == 1
    assert emu.requests == []


def test_retries_bounds_the_attempts_per_request(policy, emulator, clock):
    emu = emulator(policy / "data", account_id=ACCOUNT, token="t", rate_limit_first=99, retry_after=1)
    result = cli("run", "rules/scim.yaml", "--at", AT, "--api-base", emu.base_url, "--account-id", ACCOUNT,
                 "--retries", "2", "--no-progress", env={"CLOUDFLARE_API_TOKEN": "t"})
    assert result.exit_code == 2
    assert len(emu.requests) == 3  # the first attempt and two retries
    assert "gave up after 3 attempts" in result.stdout
    assert run("--retries", "1").stderr == "error: --retries only applies over the API, not with --data\n"


# --- 2. provenance of input files ---------------------------------------------------------------------------------


def test_a_run_over_files_records_and_shows_every_file_it_read(policy):
    data(policy, [access(country="US", created_at="2026-11-15T10:00:00Z"),
                  access(country="US", created_at="2026-11-15T11:30:00Z")], [scim()])
    formats = ("text", "markdown", "html", "junit", "sarif")
    result = run("--results", "out/r.json", *(a for f in formats for a in ("--report", f"{f}=out/r.{f}")))
    assert result.exit_code == 0, result.stderr
    doc = json.loads((policy / "out" / "r.json").read_text())
    assert doc["provenance"]["requests"] == []
    files = {f["path"]: f for f in doc["provenance"]["files"]}
    access_file = policy / "data" / "access_requests.ndjson"
    assert files["data/access_requests.ndjson"] == {
        "path": "data/access_requests.ndjson", "source": "access_requests", "size": access_file.stat().st_size,
        "sha256": hashlib.sha256(access_file.read_bytes()).hexdigest(), "records": 2,
        "first": "2026-11-15T10:00:00Z", "last": "2026-11-15T11:30:00Z"}
    assert files["data/scim_updates.ndjson"]["records"] == 1
    fetches = {r["id"]: r["fetch"] for r in doc["results"]}
    assert fetches["denied-burst"] == "files data/access_requests.ndjson"
    assert fetches["scim-heartbeat"] == "files data/scim_updates.ndjson"
    for fmt in formats:
        text = (policy / "out" / f"r.{fmt}").read_text()
        assert files["data/access_requests.ndjson"]["sha256"] in text, fmt
        assert "GET /client/v4" not in text, fmt


def test_reports_roll_up_rules_per_framework_and_control(policy):
    data(policy, DENIED, [scim()])
    result = run("--results", "out/r.json", "--report", "html=out/r.html", "--report", "markdown=out/r.md",
                 "--report", "compliance=out/controls.csv")
    assert result.exit_code == 1
    doc = json.loads((policy / "out" / "r.json").read_text())
    assert doc["compliance"] == [
        {"framework": "iso27001", "status": "pass", "summary": {"pass": 1, "fail": 0, "waived": 0, "error": 0},
         "controls": [{"control": "A.8.5", "status": "pass", "rules": [{"id": "foreign-login", "status": "pass"}]}]},
        {"framework": "soc2", "status": "fail", "summary": {"pass": 1, "fail": 1, "waived": 0, "error": 0},
         "controls": [{"control": "CC6.1", "status": "fail", "rules": [{"id": "denied-burst", "status": "fail"}]},
                      {"control": "CC6.2", "status": "pass", "rules": [{"id": "scim-heartbeat", "status": "pass"}]}]},
    ]
    rows = list(csv.reader((policy / "out" / "controls.csv").read_text().splitlines()))
    assert rows[0] == ["framework", "control", "control_status", "rule", "rule_status", "severity", "title"]
    assert rows[1:] == [
        ["iso27001", "A.8.5", "pass", "foreign-login", "pass", "medium", "Sign-ins only from expected countries"],
        ["soc2", "CC6.1", "fail", "denied-burst", "fail", "high", "No user denied more than twice in an hour"],
        ["soc2", "CC6.2", "pass", "scim-heartbeat", "pass", "low", "SCIM ran at least once a day"]]
    markdown = (policy / "out" / "r.md").read_text()
    assert "| soc2 | CC6.1 | ❌ FAIL | denied-burst (fail) |" in markdown
    html = (policy / "out" / "r.html").read_text()
    assert '<h2 id="compliance">Compliance</h2>' in html and "<code>CC6.2</code>" in html
    # A saved results file renders the same roll-up (also one written before the roll-up existed).
    del doc["compliance"]
    (policy / "old.json").write_text(json.dumps(doc))
    again = cli("report", "old.json", "--format", "compliance")
    assert again.exit_code == 0 and again.stdout.splitlines()[1:] == [",".join(r) for r in rows[1:]]


# --- 4. partly waived rules -------------------------------------------------------------------------------------


def test_a_partly_waived_rule_leads_with_the_unwaived_group(policy):
    # Two users violate; the one with more denials is waived, so the other must lead.
    data(policy, [*[access(allowed=False, user_email="trip@x.com", created_at=f"2026-11-15T11:0{i}:00Z",
                           country="US") for i in range(5)], *DENIED], [scim()])
    write(policy / "waivers.yaml", yaml.safe_dump({"waivers": [
        {"rule": "denied-burst", "match": {"user_email": "trip@x.com"}, "justification": "travel",
         "owner": "sec@x.com", "ticket": "TRAVEL-12", "expires": "2026-12-01"}]}))
    write(policy / "auditor.yaml", CONFIG + "waivers: waivers.yaml\nmax_waiver_days: 100000\n")
    result = run("--results", "out/r.json", "--report", "html=out/r.html", "--report", "markdown=out/r.md")
    assert result.exit_code == 1
    line = next(x for x in result.stdout.splitlines() if "denied-burst" in x)
    assert line.endswith("count 3 > max 2 (user_email=eve@x.com); 1 group waived (TRAVEL-12)")
    rule = json.loads((policy / "out" / "r.json").read_text())["results"][0]
    assert rule["status"] == "fail"
    assert rule["message"] == ("1 group violates; worst: count 3 (max 2) for user_email=eve@x.com; "
                               "1 group waived (TRAVEL-12)")
    assert [(m["group"], m.get("waived")) for m in rule["measurements"]] == [
        ({"user_email": "eve@x.com"}, None), ({"user_email": "trip@x.com"}, "TRAVEL-12")]
    assert "waived TRAVEL-12" in (policy / "out" / "r.html").read_text()
    markdown = (policy / "out" / "r.md").read_text()
    assert ("| user\\_email=eve@x.com | count 3 &gt; max 2 |\n"
            "| user\\_email=trip@x.com | count 5 &gt; max 2 · waived (TRAVEL-12) |") in markdown


# --- 7. variables -----------------------------------------------------------------------------------------------


def test_unknown_variable_names_are_warned_with_a_hint(policy):
    write(policy / "vars.yaml", "countrys: [US]\nmax_denied: 3\n")
    for command in ("validate", "test", "plan"):
        result = cli(command, "--var", "max_denid=3", "--var-file", "vars.yaml", *(["--at", AT] if command == "plan"
                                                                                   else []))
        assert result.exit_code == 0, result.stderr
        assert result.stderr.splitlines()[:2] == [  # in name order
            "warning: --var-file vars.yaml: no rule uses variable 'countrys' and auditor.yaml does not declare it; "
            "did you mean 'countries'?",
            "warning: --var: no rule uses variable 'max_denid' and auditor.yaml does not declare it; "
            "did you mean 'max_denied'?"]
    assert json.loads(cli("validate", "--json", "--var", "zzz=1").stdout)["warnings"] == [
        {"code": "W113", "file": None, "line": None, "column": None, "hint": None,
         "message": "--var: no rule uses variable 'zzz' and auditor.yaml does not declare it"}]


def test_a_type_error_says_the_value_came_from_var(policy):
    result = cli("validate", "--var", "max_denied=many")
    assert result.exit_code == 2
    assert ("rules/access.yaml:14:12: error: rules[0].expect.count.max: expected an integer, got a string; "
            "the value comes from --var max_denied=many") in result.stderr
    write(policy / "vars.yaml", "max_denied: many\n")
    from_file = cli("validate", "--var-file", "vars.yaml")
    assert "; the value comes from --var-file vars.yaml" in from_file.stderr


def test_an_unquoted_reference_in_a_flow_mapping_gets_a_quote_it_hint(policy):
    write(policy / "rules" / "flow.yaml", "rules:\n  - id: f\n    title: t\n    source: access_requests\n"
          "    expect: {count: {max: ${var.max_denied}}}\n")
    result = cli("validate")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0].endswith(
        """; quote the reference inside {...} or [...]: write "${var.NAME}\"""")
    assert result.stderr.startswith("rules/flow.yaml:5:")


# --- 8. rule tests check their records -------------------------------------------------------------------------


def test_rule_test_records_are_checked_against_the_source_fields(policy):
    write(policy / "rules" / "scim.yaml", yaml.safe_dump({"rules": [
        {"id": "denied", "title": "t", "source": "access_requests", "window": "1h", "filter": {"allowed": False},
         "tests": [{"name": "typo", "at": AT, "expect": "fail", "records": [
             {"created_at": "2026-11-15T11:00:00Z", "alowed": False, "user_email": "a@x.com"},
             {"created_at": "2026-11-15T11:00:00Z", "allowed": "no", "ip_address": None}]}]}]}, sort_keys=False))
    result = cli("test", "rules/scim.yaml")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[:2] == [
        "rules/scim.yaml:14:7: error: test record field 'alowed' is not a field of access_requests; "
        "did you mean 'allowed'?",
        "rules/scim.yaml:17:16: error: test record field 'allowed' must be true or false, not str 'no'"]
    assert cli("validate", "rules/scim.yaml").exit_code == 2


# --- 9. one pass, every problem ---------------------------------------------------------------------------------


def test_one_pass_reports_every_independent_problem_of_a_rule_and_a_waiver(policy):
    write(policy / "rules" / "bad.yaml", "rules:\n  - id: bad\n    title: t\n    source: access_requests\n"
          "    filtr: {allowed: false}\n    filter:\n      ip_address: {cidr: 10.0.0.0/33}\n"
          "    group_by: usr_email\n    expect:\n      count: {min: 5, max: 2}\n")
    write(policy / "waivers.yaml", "waivers:\n  - rule: denied-burst\n    owner: 5\n    justification: j\n"
          "    expires: 2026-13-45\n    match: {user: x}\n")
    result = cli("validate", "--waivers", "waivers.yaml")
    assert result.exit_code == 2
    lines = [line.split(": error: ")[1].split(";")[0] for line in result.stderr.splitlines()[:-1]]
    assert lines == [
        "unknown key 'filtr' in rule file rules[0]",
        "invalid network: '10.0.0.0/33' does not appear to be an IPv4 or IPv6 network",
        "unknown field 'usr_email' for source access_requests",
        "expectation 'count' has min 5 greater than max 2",
        "waivers[0].owner: expected a string, got a number",
        "expires '2026-13-45' is neither a date nor an RFC 3339 timestamp",
        "match field 'user' is not a group_by field of rule 'denied-burst'",
    ]
    assert result.stderr.splitlines()[-1] == "7 problems found"


# --- 13. the HTML report ----------------------------------------------------------------------------------------


def test_html_report_reads_well(policy, monkeypatch):
    monkeypatch.setenv("AUDITOR_REDACT_KEY", "test-key")
    users = [access(allowed=False, user_email=f"user{i}@example.com", created_at="2026-11-15T11:10:00Z",
                    country="US") for i in range(3)]
    data(policy, [*DENIED, *users], [scim()])
    assert run("--report", "html=out/r.html", "--report", "json=out/r.json", "-q").exit_code == 1
    html = (policy / "out" / "r.html").read_text()
    assert '<header class="masthead fail">' in html  # the header's colour says the outcome
    rule = html[html.index('id="rule-denied-burst"'):html.index('id="rule-foreign-login"')]
    # The failing group is shown; the three groups within bounds are folded away.
    assert '<details class="held"><summary>3 groups within bounds</summary>' in rule
    assert rule.index("eve@x.com") < rule.index("<details")
    assert "<dt>Message</dt>" not in rule  # the Result says it already
    assert "%40" not in rule and "%3A" not in rule  # fetches are readable, not URL-encoded
    assert ".keep { overflow-wrap: break-word" in html  # emails and ids are not broken mid-word
    redacted = cli("report", "out/r.json", "--format", "json", "--redact")
    groups = [m["group"]["user_email"] for m in json.loads(redacted.stdout)["results"][0]["measurements"]]
    assert len(set(groups)) == 4 and all(re.fullmatch(r"\w\*\*\*@[\w.]+ #[0-9a-f]{4}", g) for g in groups), groups


def test_plan_says_all_fields_when_a_fetch_projects_nothing(policy):
    text = cli("plan", "--at", AT).stdout
    scim_block = text[text.index("scim_updates"):]
    assert "  fields:      (all fields)" in scim_block
