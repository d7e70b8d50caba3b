"""Periodic audits: compiling a period, step boundaries, per-step evaluation equal to single runs at each
step's reference time, worst step, timeline, waivers per step, retention warning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from auditor.compile.compiler import PAD_US, compile_plan
from auditor.core.coverage import COMPLETE
from auditor.core.period import parse_period
from auditor.core.timeutil import US, format_time, parse_time
from auditor.decide.period import retention_warning
from auditor.load.schema import validator
from auditor.load.validate import Project
from auditor.run.runner import RunOptions
from auditor.run.runner import run as run_plan
from auditor.sources.files import FileSource
from tests.helpers import access, project, scim, write, write_ndjson

HOUR = 3600 * US
DAY = 24 * HOUR
START = "2026-11-01T00:00:00Z"
START_US = parse_time(START)
PERIOD = "2026-11-01T00:00:00Z/2026-11-08T00:00:00Z"  # 7 steps of 1d: T_1 = 11-02 .. T_7 = 11-08
IDPS = "scim_idp_ids: [idp-1, idp-2]\n"


def rules_text(*rules: dict[str, Any]) -> str:
    full = [{"title": f"rule {r['id']}", "source": "access_requests", **r} for r in rules]
    return yaml.safe_dump({"rules": full}, sort_keys=False)


def at(hours: float) -> str:
    """A timestamp `hours` after the start of the period."""
    return format_time(START_US + int(hours * HOUR))


def load(tmp_path: Path, rules: str, config: str = IDPS, waivers: str | None = None) -> Project:
    if waivers is not None:
        write(tmp_path / "waivers.yaml", waivers)
        config += "waivers: waivers.yaml\n"
    proj = project(tmp_path, rules, config=config)
    assert proj.ok, [d.format() for d in proj.diagnostics]
    return proj


def options(proj: Project) -> RunOptions:
    return RunOptions(rules_sha256=proj.rules_sha256, waivers=proj.waivers, waivers_sha256=proj.waivers_sha256,
                      coverage=COMPLETE)


def periodic(proj: Project, data: Path, text: str = PERIOD, tz: str = "UTC", step: str = "1d") -> dict[str, Any]:
    period = parse_period(text, tz=tz, step=step)
    plan, problems = compile_plan(list(proj.rules), proj.config, period.end_us, None, period=period)
    assert not problems, [d.format() for d in problems]
    return run_plan(plan, FileSource(data, None), options(proj)).to_json()


def single(proj: Project, data: Path, t_us: int) -> dict[str, Any]:
    plan, problems = compile_plan(list(proj.rules), proj.config, t_us, None)
    assert not problems, [d.format() for d in problems]
    return run_plan(plan, FileSource(data, None), options(proj)).to_json()


def assert_equal_to_single_runs(proj: Project, data: Path, document: dict[str, Any]) -> None:
    """Every step of the periodic run says what a separate run at that step's time says."""
    for i, step_at in enumerate(document["results"][0]["timeline"]):
        one = single(proj, data, parse_time(step_at["at"]))
        for rule, alone in zip(document["results"], one["results"], strict=True):
            step = rule["timeline"][i]
            assert step["at"] == step_at["at"]
            assert (step["status"], step["violations"]) == (alone["status"], alone["violations"]), (rule["id"], step)


def marks(result: dict[str, Any]) -> str:
    return "".join({"pass": ".", "fail": "x", "waived": "w", "error": "!"}[s["status"]] for s in result["timeline"])


# ---- compile ---------------------------------------------------------------------------------------------


def test_each_rule_is_compiled_for_every_step_and_fetched_once(tmp_path):
    proj = load(tmp_path, rules_text(
        {"id": "day", "window": "24h", "filter": {"allowed": False}},
        {"id": "week", "window": "7d", "filter": {"allowed": False}},
        {"id": "scim", "source": "scim_updates", "window": "24h"},
    ))
    period = parse_period(PERIOD)
    plan, problems = compile_plan(list(proj.rules), proj.config, period.end_us, None, period=period)
    assert not problems
    day = next(r for r in plan.rules if r.rule.id == "day")
    assert [(format_time(t), format_time(s), format_time(u)) for t, s, u in day.windows][:2] == [
        ("2026-11-02T00:00:00Z", "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"),
        ("2026-11-03T00:00:00Z", "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"),
    ]
    week = next(r for r in plan.rules if r.rule.id == "week")
    # The fetch covers the period plus the longest window before its first step.
    assert (format_time(week.since_us), format_time(week.until_us)) == ("2026-10-26T00:00:00Z", "2026-11-08T00:00:00Z")
    assert sorted(f.source for f in plan.fetches) == ["access_requests", "scim_updates"]
    access_fetch = next(f for f in plan.fetches if f.source == "access_requests")
    assert (access_fetch.since_us, access_fetch.until_us) == (week.since_us - PAD_US, period.end_us + PAD_US)
    document = plan.to_json()
    assert document["reference_time"] == "2026-11-08T00:00:00Z"
    assert document["period"] == {"label": PERIOD, "tz": "UTC", "start": START, "end": "2026-11-08T00:00:00Z",
                                  "step": "1d", "steps": 7}


def test_a_window_empty_at_some_step_is_a_diagnostic(tmp_path):
    proj = load(tmp_path, rules_text({"id": "late", "since": "2026-11-05T00:00:00Z"}))
    period = parse_period(PERIOD)
    _, problems = compile_plan(list(proj.rules), proj.config, period.end_us, None, period=period)
    assert [p.code for p in problems] == ["E309"]
    assert "2026-11-02T00:00:00Z" in problems[0].message


# ---- step boundaries -----------------------------------------------------------------------------------


def test_a_record_exactly_at_a_steps_time_belongs_to_the_next_step(tmp_path):
    proj = load(tmp_path, rules_text({"id": "any", "window": "24h"}))
    data = tmp_path / "data"
    # Exactly T_2 = 2026-11-03T00:00:00Z, and one microsecond before T_4 = 2026-11-05T00:00:00Z.
    write_ndjson(data / "access_requests.ndjson", [access(created_at="2026-11-03T00:00:00Z"),
                                                   access(created_at="2026-11-04T23:59:59.999999Z")])
    document = periodic(proj, data)
    (result,) = document["results"]
    assert marks(result) == "..xx..."
    # Step 3's window is [T_2, T_3) = [11-03, 11-04): the record at T_2 is in it, not in step 2's.
    assert result["timeline"][1] == {"at": "2026-11-03T00:00:00Z", "status": "pass", "violations": 0}
    assert result["timeline"][2] == {"at": "2026-11-04T00:00:00Z", "status": "fail", "violations": 1}
    assert_equal_to_single_runs(proj, data, document)


def test_windows_shorter_than_the_step_leave_gaps_and_longer_ones_overlap(tmp_path):
    proj = load(tmp_path, rules_text({"id": "short", "window": "6h"}, {"id": "long", "window": "3d"}))
    data = tmp_path / "data"
    write_ndjson(data / "access_requests.ndjson", [access(created_at=at(h)) for h in (22, 30, 47)])
    document = periodic(proj, data)
    short, long = document["results"]
    # 11-01 22:00 is in [T_1 - 6h, T_1), 11-02 23:00 in [T_2 - 6h, T_2); 11-02 06:00 is in no 6-hour window.
    assert marks(short) == "xx....."
    assert [s["violations"] for s in short["timeline"]] == [1, 1, 0, 0, 0, 0, 0]
    # Every record is in three 3-day windows: the last (11-02 23:00) in those ending 11-03, 11-04 and 11-05.
    assert marks(long) == "xxxx..."
    assert_equal_to_single_runs(proj, data, document)


# ---- equality with single runs, worst step, timeline ------------------------------------------------------


def synthetic(data: Path) -> Path:
    """A week of varied access and SCIM records, not in time order, with bursts on some days."""
    records = []
    for h in range(0, 7 * 24, 5):
        for k in range(3):
            records.append(access(created_at=at(h + k * 0.3), allowed=(h + k) % 4 != 0,
                                  user_email=f"user{(h + k) % 6}@example.com", ip_address=f"198.51.100.{k}",
                                  app_domain=f"app{h % 3}.example.com", country=("DE", "US", "RU")[(h * k) % 3]))
    for k in range(12):  # a burst of denials for one user on day 4
        records.append(access(created_at=at(3 * 24 + 10 + k * 0.1), allowed=False, user_email="mallory@example.com",
                              ip_address=f"192.0.2.{k}"))
    scims = [scim(logged_at=at(h), idp_id="idp-1" if h < 100 else "idp-2",
                  status="FAILURE" if h % 11 == 0 else "SUCCESS") for h in range(1, 7 * 24, 7)]
    records.reverse()  # files are not necessarily in time order
    write_ndjson(data / "access_requests.ndjson", records)
    write_ndjson(data / "scim_updates.ndjson", scims)
    return data


RULES = rules_text(
    {"id": "denied-burst", "window": "24h", "filter": {"allowed": False}, "group_by": "user_email",
     "expect": {"count": {"max": 4}}},
    {"id": "spray", "window": "2d", "filter": {"allowed": False}, "group_by": "user_email",
     "expect": {"distinct": {"field": "ip_address", "max": 5}}},
    {"id": "denial-ratio", "window": "7d", "group_by": "app_domain",
     "expect": {"ratio": {"where": {"allowed": False}, "max": 0.3}}},
    {"id": "countries", "since": "3d", "until": "1h", "filter": {"country": {"exists": True}},
     "expect": {"count": {"max": 40}}},
    {"id": "heartbeat", "source": "scim_updates", "window": "24h", "group_by": "idp_id",
     "for_each": {"idp_id": ["idp-1", "idp-2"]}, "expect": {"count": {"min": 1}}},
    {"id": "scim-failures", "source": "scim_updates", "since": "2026-10-30T00:00:00Z",
     "filter": {"status": "FAILURE"}, "expect": {"count": {"max": 1}}},
)


def test_every_step_equals_a_separate_run_at_its_time(tmp_path):
    proj = load(tmp_path, RULES)
    data = synthetic(tmp_path / "data")
    document = periodic(proj, data)
    assert {r["id"]: marks(r) for r in document["results"]} == {
        "denied-burst": "...x...",  # the burst on day 4
        "spray": "...xx..",  # the burst, in two 2-day windows
        "denial-ratio": "x..xxxx",
        "countries": "..xxxxx",
        "heartbeat": "xxxx.xx",  # idp-2 starts sending at hour 106, idp-1 stops after hour 99
        "scim-failures": "....xxx",  # since an absolute time: the second failure (hour 99) counts from T_5 on
    }
    assert_equal_to_single_runs(proj, data, document)


def test_the_rule_is_its_worst_step_with_that_steps_measurements_and_evidence(tmp_path):
    proj = load(tmp_path, RULES)
    data = synthetic(tmp_path / "data")
    document = periodic(proj, data)
    spray = next(r for r in document["results"] if r["id"] == "spray")
    assert spray["status"] == "fail"
    assert spray["message"].startswith("failed at 2 of 7 steps; worst at 2026-11-05T00:00:00Z: 1 group violates")
    alone = next(r for r in single(proj, data, parse_time("2026-11-05T00:00:00Z"))["results"] if r["id"] == "spray")
    for key in ("measurements", "violations", "evidence"):
        assert spray[key] == alone[key], key
    # The rule's window is the span of all steps' windows; the timeline has every step.
    assert spray["window"] == {"since": "2026-10-31T00:00:00Z", "until": "2026-11-08T00:00:00Z"}
    assert len(spray["timeline"]) == 7
    passing = next(r for r in document["results"] if r["id"] == "denied-burst")
    assert passing["message"].startswith("failed at 1 of 7 steps; worst at 2026-11-05T00:00:00Z")


def test_a_passing_rule_reports_the_step_closest_to_its_bound(tmp_path):
    proj = load(tmp_path, rules_text({"id": "quiet", "window": "24h", "filter": {"allowed": False},
                                      "expect": {"count": {"max": 20}}}))
    data = synthetic(tmp_path / "data")
    (result,) = periodic(proj, data)["results"]
    assert result["status"] == "pass"
    assert result["message"] == "passed at all 7 steps; closest at 2026-11-05T00:00:00Z: count 16 (max 20)"


def test_results_carry_the_period_and_validate(tmp_path):
    proj = load(tmp_path, RULES)
    document = periodic(proj, synthetic(tmp_path / "data"))
    assert document["reference_time"] == "2026-11-08T00:00:00Z"
    assert document["period"]["steps"] == 7
    assert all(len(r["timeline"]) == 7 for r in document["results"])
    assert not list(validator("results").iter_errors(json.loads(json.dumps(document))))


def test_an_unreadable_source_is_an_error_at_every_step(tmp_path):
    proj = load(tmp_path, RULES)
    data = tmp_path / "data"
    write_ndjson(data / "access_requests.ndjson", [access(created_at=at(3))])
    document = periodic(proj, data)
    heartbeat = next(r for r in document["results"] if r["id"] == "heartbeat")
    assert heartbeat["status"] == "error" and marks(heartbeat) == "!!!!!!!"
    assert document["summary"]["exit_code"] == 2


def test_steps_in_a_time_zone_across_a_dst_change_equal_single_runs(tmp_path):
    proj = load(tmp_path, rules_text({"id": "day", "window": "24h", "filter": {"allowed": False}},
                                     {"id": "hours", "window": "23h"}))
    data = tmp_path / "data"
    # Berlin leaves summer time on 2026-10-25: that local day has 25 hours.
    times = ["2026-10-24T22:30:00Z", "2026-10-25T22:30:00Z", "2026-10-25T23:00:00Z", "2026-10-24T21:59:59Z"]
    write_ndjson(data / "access_requests.ndjson", [access(created_at=t, allowed=False) for t in times])
    document = periodic(proj, data, "2026-W43", tz="Europe/Berlin")
    steps = [s["at"] for s in document["results"][0]["timeline"]]
    assert steps[5:7] == ["2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z"]  # local midnights, 25 hours apart
    assert_equal_to_single_runs(proj, data, document)


# ---- waivers per step ----------------------------------------------------------------------------------


def test_waivers_apply_per_step_with_expiry_compared_to_each_step(tmp_path):
    waivers = """\
        waivers:
          - rule: denied-burst
            match: {user_email: mallory@example.com}
            justification: pen test
            owner: secops@example.com
            expires: 2026-11-05T00:00:00Z
          - rule: spray
            justification: never needed
            owner: secops@example.com
            expires: 2026-11-02T00:00:00Z
          - rule: countries
            justification: nothing to cover
            owner: secops@example.com
            expires: 2027-01-01
    """
    proj = load(tmp_path, RULES, waivers=waivers)
    data = synthetic(tmp_path / "data")
    document = periodic(proj, data)
    burst = next(r for r in document["results"] if r["id"] == "denied-burst")
    # The burst is in the window of step 4 (T = 11-05), when the waiver has just expired.
    assert marks(burst) == "...x..." and burst["status"] == "fail"
    countries = next(r for r in document["results"] if r["id"] == "countries")
    assert marks(countries) == "..wwwww" and countries["status"] == "waived"
    assert countries["waiver"]["justification"] == "nothing to cover"
    assert_equal_to_single_runs(proj, data, document)
    states = {w["rule"]: w["state"] for w in document["waivers"]}
    assert states == {"denied-burst": "unused", "spray": "expired", "countries": "applied"}
    warnings = "\n".join(document["warnings"])
    assert "waiver for denied-burst (mallory@example.com) expired 2026-11-05T00:00:00Z, within the period" in warnings
    assert "waiver for spray expired 2026-11-02T00:00:00Z and no longer applies" in warnings


def test_a_waiver_expiring_inside_the_period_waives_the_steps_before(tmp_path):
    waivers = """\
        waivers:
          - rule: countries
            justification: migration
            owner: secops@example.com
            expires: 2026-11-07T00:00:00Z
    """
    proj = load(tmp_path, RULES, waivers=waivers)
    data = synthetic(tmp_path / "data")
    document = periodic(proj, data)
    countries = next(r for r in document["results"] if r["id"] == "countries")
    assert marks(countries) == "..wwwxx" and countries["status"] == "fail"  # T_6 = 11-07: expired
    assert countries["message"].startswith("failed at 2 of 7 steps (3 more waived); worst at 2026-11-07T00:00:00Z")
    assert_equal_to_single_runs(proj, data, document)


# ---- retention -------------------------------------------------------------------------------------------


def test_retention_warning_when_the_period_reads_beyond_what_the_api_keeps(tmp_path):
    proj = load(tmp_path, rules_text({"id": "week", "window": "7d"}))
    period = parse_period(PERIOD)
    plan, _ = compile_plan(list(proj.rules), proj.config, period.end_us, None, period=period)
    now = parse_time("2026-11-20T00:00:00Z")
    # The first step's window starts 2026-10-26: 25 days before `now`.
    assert retention_warning(plan, 30, now) is None
    warning = retention_warning(plan, 20, now)
    assert warning is not None
    assert "reads logs back to 2026-10-26T00:00:00Z" in warning and "keeps only 20 days" in warning
    assert "--data" in warning
    single_plan, _ = compile_plan(list(proj.rules), proj.config, period.end_us, None)
    assert retention_warning(single_plan, 1, now) is None  # only periodic runs warn


def test_retention_days_comes_from_the_config(tmp_path):
    proj = load(tmp_path, rules_text({"id": "a"}), config="retention_days: 7\n")
    assert proj.config.retention_days == 7
    assert load(tmp_path / "other", rules_text({"id": "a"}), config="{}\n").config.retention_days == 30
    bad = project(tmp_path / "bad", rules_text({"id": "a"}), config="retention_days: 0\n")
    assert not bad.ok


@pytest.mark.parametrize("step", ["12h", "2d"])
def test_other_steps_equal_single_runs(tmp_path, step):
    proj = load(tmp_path, RULES)
    data = synthetic(tmp_path / "data")
    document = periodic(proj, data, step=step)
    assert len(document["results"][0]["timeline"]) == {"12h": 14, "2d": 3}[step]
    assert_equal_to_single_runs(proj, data, document)


# ---- correlation rules ------------------------------------------------------------------------------------


def test_correlation_rules_at_every_step_equal_single_runs(tmp_path):
    proj = load(tmp_path, rules_text(
        {"id": "leaver", "source": "correlation", "window": "2d", "group_by": "user_email",
         "correlate": {"first": {"source": "scim_updates", "filter": {"request_method": "DELETE"}},
                       "then": {"source": "access_requests", "filter": {"allowed": True}},
                       "join": {"resource_user_email": "user_email"}}},
        {"id": "quick", "source": "correlation", "window": "3d",
         "correlate": {"first": {"source": "scim_updates", "filter": {"request_method": "PATCH"}},
                       "then": {"source": "access_requests"},
                       "join": {"resource_user_email": "user_email"}, "within": "6h"}},
    ))
    data = tmp_path / "data"
    scims = [scim(logged_at=at(10), request_method="DELETE", resource_user_email="ann@example.com"),
             scim(logged_at=at(50), request_method="DELETE", resource_user_email="bob@example.com"),
             scim(logged_at=at(70), request_method="PATCH", resource_user_email="bob@example.com")]
    signins = [access(created_at=at(h), user_email=email) for h, email in
               [(9, "ann@example.com"), (10, "ann@example.com"), (30, "ann@example.com"), (49, "ANN@example.com"),
                (55, "bob@example.com"), (74, "bob@example.com"), (80, "bob@example.com"), (120, "bob@example.com")]]
    write_ndjson(data / "scim_updates.ndjson", scims)
    write_ndjson(data / "access_requests.ndjson", signins)
    document = periodic(proj, data)
    leaver, quick = document["results"]
    # Hours: ann is deleted at 10 and signs in at 30 and 49, bob at 50 and signs in from 55 on. The 2-day
    # window ending at hour 48 pairs ann's DELETE with her sign-in at 30 (the one at 9 came before it, the
    # one at 10 at the same instant); the windows ending at 72 and 96 no longer hold her DELETE but bob's.
    assert marks(leaver) == ".xxx..."
    assert [s["violations"] for s in leaver["timeline"]] == [0, 1, 1, 1, 0, 0, 0]
    # bob's sign-in at 74 is within 6 hours of the PATCH at 70 (80 is not): windows ending at 96 and 120.
    assert marks(quick) == "...xx.."
    assert_equal_to_single_runs(proj, data, document)
    # The worst step (most records past the bound: bob's three sign-ins) reads as the single run at its time.
    worst = next(r for r in single(proj, data, parse_time("2026-11-05T00:00:00Z"))["results"] if r["id"] == "leaver")
    assert leaver["message"] == f"failed at 3 of 7 steps; worst at 2026-11-05T00:00:00Z: {worst['message']}"
    assert (leaver["measurements"], leaver["evidence"]) == (worst["measurements"], worst["evidence"])
