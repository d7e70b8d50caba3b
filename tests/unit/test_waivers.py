"""Waivers: validation with file:line, matching groups, expiry at the reference time, stale and over-long waivers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auditor.compile.compiler import compile_plan
from auditor.core.coverage import COMPLETE
from auditor.core.timeutil import US, parse_time
from auditor.load.validate import Inputs, load_project
from auditor.load.waivers import parse_expiry
from auditor.run.runner import RunOptions
from auditor.run.runner import run as run_plan
from auditor.sources.files import FileSource
from tests.helpers import access, write, write_ndjson

T = "2026-11-15T12:00:00Z"
NOW = parse_time("2026-11-27T08:00:00Z")  # "now" for the max_waiver_days check
DAY = 86400 * US

RULES = """\
rules:
  - id: denied-burst
    title: No user denied more than twice in an hour
    source: access_requests
    window: 1h
    filter: {allowed: false}
    group_by: user_email
    expect: {count: {max: 2}}
  - id: any-foreign
    title: No sign-in from outside the US
    source: access_requests
    window: 1h
    filter: {country: {neq: US}}
  - id: quiet
    title: Nothing from the test app
    source: access_requests
    window: 1h
    filter: {app_domain: test.example.com}
"""


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def denials(user: str, n: int, minute: int = 10) -> list[dict]:
    return [access(allowed=False, user_email=user, country="US", created_at=f"2026-11-15T11:{minute + i:02d}:00Z")
            for i in range(n)]


def setup(tmp_path: Path, waivers: str, records: list[dict], *, config: str = "waivers: waivers.yaml\n") -> None:
    write(tmp_path / "rules" / "rules.yaml", RULES)
    write(tmp_path / "auditor.yaml", config)
    write(tmp_path / "waivers.yaml", waivers)
    write_ndjson(tmp_path / "data" / "access_requests.ndjson", records)


def load(tmp_path: Path, *, now_us: int = NOW, waivers_path: Path | None = None):
    return load_project(Inputs(paths=(Path("rules"),), config_path=Path("auditor.yaml"), now_us=now_us,
                               waivers_path=waivers_path))


def run(tmp_path: Path, *, at: str = T, only: tuple[str, ...] = ()):
    project = load(tmp_path)
    assert project.ok, [d.format() for d in project.diagnostics]
    rules = [r for r in project.rules if not only or r.id in only]
    plan, problems = compile_plan(rules, project.config, parse_time(at))
    assert not problems
    options = RunOptions(rules_sha256=project.rules_sha256, config_sha256=project.config_sha256,
                         waivers=project.waivers, waivers_sha256=project.waivers_sha256, coverage=COMPLETE)
    return run_plan(plan, FileSource(Path("data"), None), options)


def statuses(result) -> dict[str, str]:
    return {r.compiled.rule.id: r.status for r in result.results}


def waiver(rule: str, expires: str = "2027-01-31", match: str | None = None, ticket: str | None = "SEC-1") -> str:
    lines = [f"  - rule: {rule}"]
    if match:
        lines.append(f"    match: {match}")
    lines += ["    justification: known", "    owner: secops@example.com"]
    if ticket:
        lines.append(f"    ticket: {ticket}")
    lines.append(f"    expires: {expires}")
    return "\n".join(lines) + "\n"


# ---- validation ---------------------------------------------------------------------------------------


def test_valid_waivers_are_loaded_with_digest(tmp_path):
    setup(tmp_path, "waivers:\n" + waiver("denied-burst", match="{user_email: bot@example.com}"), [])
    project = load(tmp_path)
    assert project.ok
    (w,) = project.waivers
    assert (w.rule, w.match, w.ticket, w.expires) == ("denied-burst", (("user_email", "bot@example.com"),),
                                                      "SEC-1", "2027-01-31")
    assert w.expires_us == parse_time("2027-01-31T00:00:00Z")  # a date means 00:00 UTC
    assert len(project.waivers_sha256) == 64
    assert str(w.location) == "waivers.yaml:2:5"


def test_no_waivers_file_means_no_digest(tmp_path):
    setup(tmp_path, "", [], config="{}\n")
    project = load(tmp_path)
    assert project.ok and project.waivers == () and project.waivers_sha256 is None


def test_every_waiver_problem_with_file_line_in_one_pass(tmp_path):
    text = ("waivers:\n"
            + waiver("denied-brust")  # 2: unknown rule, with a hint
            + waiver("denied-burst", match="{country: US}")  # 7: not a group_by field
            + waiver("any-foreign", match="{country: US}")  # 13: ungrouped rule
            + waiver("denied-burst", expires="2028-06-01")  # 19: longer than 365 days
            + waiver("denied-burst", expires="next week")  # 24: not a date
            + "  - rule: denied-burst\n    justification: x\n    expires: 2027-01-01\n    tiket: A\n")  # 29
    setup(tmp_path, text, [])
    found = [d.format() for d in load(tmp_path).diagnostics]
    assert found == [
        "waivers.yaml:2:11: error: waiver names unknown rule 'denied-brust'; did you mean 'denied-burst'?",
        "waivers.yaml:8:13: error: match field 'country' is not a group_by field of rule 'denied-burst'; "
        "group_by fields of 'denied-burst': user_email",
        "waivers.yaml:14:13: error: match field 'country' is not a group_by field of rule 'any-foreign'; "
        "'any-foreign' has no group_by: leave out match to waive the whole rule",
        "waivers.yaml:23:14: error: waiver is valid for 552 days from now (until 2028-06-01), more than "
        "max_waiver_days (365); pick an earlier expiry and renew the waiver when it is reviewed",
        "waivers.yaml:28:14: error: expires 'next week' is neither a date nor an RFC 3339 timestamp; "
        "e.g. 2027-01-31 (00:00 UTC that day)",
        "waivers.yaml:29:5: error: missing required key 'owner' in waiver file waivers[5]",
        "waivers.yaml:32:5: error: unknown key 'tiket' in waiver file waivers[5]; did you mean 'ticket'?",
    ]


def test_max_waiver_days_boundary_counted_from_now(tmp_path):
    now = parse_time("2026-11-27T00:00:00Z")
    setup(tmp_path, "waivers:\n" + waiver("denied-burst", expires="2026-12-27"),
          [], config="waivers: waivers.yaml\nmax_waiver_days: 30\n")
    assert load(tmp_path, now_us=now).ok  # exactly 30 days ahead is allowed
    assert not load(tmp_path, now_us=now - 1).ok  # a microsecond earlier it is 30 days and a bit
    problems = load(tmp_path, now_us=now - DAY).diagnostics
    assert [d.code for d in problems] == ["E402"]
    assert "max_waiver_days (30)" in problems[0].message


def test_waivers_option_overrides_config_and_missing_file_is_an_error(tmp_path):
    setup(tmp_path, "waivers:\n" + waiver("nope"), [])
    write(tmp_path / "other.yaml", "waivers:\n" + waiver("quiet"))
    assert not load(tmp_path).ok
    project = load(tmp_path, waivers_path=Path("other.yaml"))
    assert project.ok and [w.rule for w in project.waivers] == ["quiet"]
    missing = load(tmp_path, waivers_path=Path("gone.yaml")).diagnostics
    assert [d.format() for d in missing] == [
        "error: waivers file not found: gone.yaml; fix waivers: in auditor.yaml or --waivers"]


@pytest.mark.parametrize(("text", "expected"), [
    ("2027-01-31", "2027-01-31T00:00:00Z"),
    ("2027-01-31T18:30:00Z", "2027-01-31T18:30:00Z"),
    ("2027-01-31T18:30:00+02:00", "2027-01-31T16:30:00Z"),
])
def test_expiry_forms(text, expected):
    assert parse_expiry(text) == parse_time(expected)


# ---- applying ------------------------------------------------------------------------------------------


def test_waiver_covering_every_violating_group_waives_the_rule(tmp_path):
    records = denials("bot@example.com", 4) + denials("ci@example.com", 3, minute=30) + denials("ok@example.com", 1)
    setup(tmp_path, "waivers:\n" + waiver("denied-burst", match="{user_email: bot@example.com}")
          + waiver("denied-burst", match="{user_email: ci@example.com}", ticket="SEC-2"), records)
    result = run(tmp_path)
    burst = result.results[0]
    assert burst.status == "waived"
    # the waiver shown is the one covering most records; each waiver's own count is in `waivers`
    assert burst.waiver.to_json() == {"rule": "denied-burst", "match": {"user_email": "bot@example.com"},
                            "justification": "known", "owner": "secops@example.com", "ticket": "SEC-1",
                            "expires": "2027-01-31", "records": 4}
    uses = [(w.state, w.records, w.groups) for w in result.waivers]
    assert uses == [("applied", 4, 1), ("applied", 3, 1)]
    assert result.warnings == ()
    assert result.exit_code == 0  # waived does not fail the gate
    doc = result.to_json()
    assert doc["summary"]["waived"] == 1 and doc["waivers"][0]["file"] == "waivers.yaml"


def test_a_violating_group_left_uncovered_keeps_the_rule_failing(tmp_path):
    records = denials("bot@example.com", 4) + denials("eve@example.com", 3, minute=30)
    setup(tmp_path, "waivers:\n" + waiver("denied-burst", match="{user_email: bot@example.com}"), records)
    result = run(tmp_path)
    assert statuses(result)["denied-burst"] == "fail"
    assert result.results[0].waiver is None
    assert [(w.state, w.records) for w in result.waivers] == [("partial", 4)]
    assert result.exit_code == 1


def test_waiver_without_match_covers_an_ungrouped_rule(tmp_path):
    records = [access(country="DE", created_at="2026-11-15T11:20:00Z"),
               access(country="FR", created_at="2026-11-15T11:21:00Z")]
    setup(tmp_path, "waivers:\n" + waiver("any-foreign"), records)
    result = run(tmp_path)
    assert statuses(result)["any-foreign"] == "waived"
    assert result.results[1].waiver.records == 2


@pytest.mark.parametrize(("expires", "status"), [
    ("2026-11-15T12:00:00Z", "fail"),  # expiring exactly at T: no longer applies
    ("2026-11-15T12:00:01Z", "waived"),  # a second later: still applies at T
    ("2026-11-15", "fail"),  # a date is 00:00 UTC that day, before T
    ("2026-11-16", "waived"),
])
def test_expiry_is_compared_with_the_reference_time(tmp_path, expires, status):
    setup(tmp_path, "waivers:\n" + waiver("denied-burst", expires=expires), denials("bot@example.com", 3))
    result = run(tmp_path)
    assert statuses(result)["denied-burst"] == status
    if status == "fail":
        assert result.warnings == (f"waiver for denied-burst (SEC-1) expired {expires} and no longer applies",)
        assert result.waivers[0].state == "expired"
    else:
        assert result.warnings == ()


def test_rerunning_a_past_audit_applies_the_waiver_of_that_day(tmp_path):
    setup(tmp_path, "waivers:\n" + waiver("denied-burst", expires="2026-11-15T06:00:00Z"),
          denials("bot@example.com", 3, minute=10))
    assert statuses(run(tmp_path))["denied-burst"] == "fail"  # at T it has expired
    records = [dict(r, created_at=r["created_at"].replace("T11:", "T05:")) for r in denials("bot@example.com", 3)]
    write_ndjson(tmp_path / "data" / "access_requests.ndjson", records)
    assert statuses(run(tmp_path, at="2026-11-15T05:30:00Z"))["denied-burst"] == "waived"


def test_stale_waiver_is_a_warning(tmp_path):
    setup(tmp_path, "waivers:\n" + waiver("denied-burst", match="{user_email: gone@example.com}")
          + waiver("quiet", ticket=None), denials("eve@example.com", 1))
    result = run(tmp_path)
    assert statuses(result) == {"denied-burst": "pass", "any-foreign": "pass", "quiet": "pass"}
    assert result.warnings == (
        "waiver for denied-burst (gone@example.com, SEC-1) matched nothing in this run: stale exception?",
        "waiver for quiet matched nothing in this run: stale exception?",
    )
    assert [w.state for w in result.waivers] == ["unused", "unused"]
    assert result.exit_code == 0


def test_waiver_of_a_rule_not_selected_is_not_stale(tmp_path):
    setup(tmp_path, "waivers:\n" + waiver("quiet"), denials("eve@example.com", 1))
    result = run(tmp_path, only=("denied-burst",))
    assert result.warnings == ()
    assert result.waivers[0].state == "not_run"


def test_results_with_waivers_validate_against_the_schema(tmp_path):
    from auditor.load.schema import validator

    records = denials("bot@example.com", 4)
    setup(tmp_path, "waivers:\n" + waiver("denied-burst", match="{user_email: bot@example.com}")
          + waiver("quiet", expires="2026-11-01"), records)
    doc = json.loads(json.dumps(run(tmp_path).to_json()))
    assert list(validator("results").iter_errors(doc)) == []
    assert doc["provenance"]["waivers_sha256"] is not None
