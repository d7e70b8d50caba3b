"""Coverage: intervals per log, how they are known, and the decision on a window data covers only in part
(auditor.core.coverage, auditor.decide.coverage): each rule of the coverage issue's item 2 in turn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from auditor.core.coverage import (
    Basis,
    Coverage,
    CoverageError,
    Interval,
    api_coverage,
    files_coverage,
    gaps,
    inferred,
    parse_data_covers,
    stated,
    union,
)
from auditor.core.fields import SOURCES
from auditor.core.timeutil import parse_time
from auditor.decide.coverage import apply, pass_is_final
from auditor.evaluate.periodic import evaluator
from auditor.evaluate.results import RuleResult
from tests.helpers import access, compiled, rule_yaml, scim

T = "2026-11-15T12:00:00Z"  # rules' reference time: a 24h window is [2026-11-14T12:00Z, T)
DATA_ENDS = "2026-11-15T00:00:00Z"  # the access data covers [2026-11-01, DATA_ENDS): half the window


def t(text: str) -> int:
    return parse_time(text)


def covering(access_until: str = DATA_ENDS, scim_until: str = "2026-11-16T00:00:00Z") -> Coverage:
    return Coverage({"access_requests": stated("access_requests", (Interval(t("2026-11-01T00:00:00Z"),
                                                                            t(access_until)),)),
                     "scim_updates": stated("scim_updates", (Interval(t("2026-11-01T00:00:00Z"), t(scim_until)),))})


def result(tmp_path: Path, records: list[dict[str, Any]], coverage: Coverage, *, config: str = "",
           **rule: Any) -> RuleResult:
    """One rule evaluated over records (all inside the covered part), then decided against the coverage."""
    plan = compiled(tmp_path, rule_yaml(**rule), at=T, config=config)
    (c,) = plan.rules
    e = evaluator(c)
    for record in records:
        e.feed(record, parse_time(record[SOURCES[c.rule.source].time_field]))
    o = e.outcome()
    return apply(RuleResult(c, o.status, o.message, "GET", o.measurements, o.violations, o.evidence,
                            groups=o.groups, steps=o.steps), coverage)


def denied(n: int, user: str = "eve@example.com", hour: int = 20) -> list[dict[str, Any]]:
    return [access(allowed=False, user_email=user, created_at=f"2026-11-14T{hour}:{i:02d}:00Z") for i in range(n)]


# ---- intervals and how coverage is known ----------------------------------------------------------------------


def test_union_gaps_and_clip_are_half_open():
    a, b = Interval(0, 10), Interval(10, 20)
    assert union([b, a, Interval(5, 5)]) == (Interval(0, 20),)  # touching intervals merge; empty ones vanish
    assert gaps([Interval(2, 4), Interval(6, 8)], 0, 10) == (Interval(0, 2), Interval(4, 6), Interval(8, 10))
    assert gaps([Interval(0, 10)], 0, 10) == ()


def test_inferred_coverage_runs_from_the_first_to_the_last_record_inclusive():
    log = inferred("access_requests", 100, 200)
    assert log.basis is Basis.INFERRED and log.covered == (Interval(100, 201),)
    assert log.missing(100, 201) == () and log.missing(100, 202) == (Interval(201, 202),)
    empty = inferred("access_requests", None, None)
    assert empty.covered == () and empty.missing(0, 5) == (Interval(0, 5),)
    assert empty.why(empty.missing(0, 5)) == "no access_requests records in the data"


def test_files_coverage_is_stated_where_said_and_inferred_elsewhere():
    said = parse_data_covers(["scim_updates=2026-11-01T00:00:00Z/2026-11-02T00:00:00Z"], SOURCES)
    cov = files_coverage({"access_requests": (5, 9), "scim_updates": (None, None)}, said)
    assert cov.of("access_requests").basis is Basis.INFERRED
    assert cov.of("scim_updates").basis is Basis.STATED
    assert cov.of("scim_updates").covered == (Interval(t("2026-11-01T00:00:00Z"), t("2026-11-02T00:00:00Z")),)


def test_data_covers_applies_to_every_log_or_one_and_repeats_as_a_union():
    got = parse_data_covers(["2026-11-01T00:00:00Z/2026-11-02T00:00:00Z",
                             "access_requests=2026-11-02T00:00:00Z/2026-11-03T00:00:00Z"], SOURCES)
    assert got["access_requests"] == (Interval(t("2026-11-01T00:00:00Z"), t("2026-11-03T00:00:00Z")),)
    assert got["scim_updates"] == (Interval(t("2026-11-01T00:00:00Z"), t("2026-11-02T00:00:00Z")),)


@pytest.mark.parametrize(("value", "message"), [
    ("2026-11-01", "expected START/END"),
    ("2026-11-02T00:00:00Z/2026-11-01T00:00:00Z", "START must be before END"),
    ("logs=2026-11-01T00:00:00Z/2026-11-02T00:00:00Z", "unknown log 'logs'"),
    ("2026-11-01T00:00:00/2026-11-02T00:00:00Z", "expected START/END"),  # no offset
])
def test_data_covers_errors_say_what_to_write(value, message):
    with pytest.raises(CoverageError, match=message):
        parse_data_covers([value], SOURCES)


def test_the_api_covers_retention_back_from_now_and_nothing_after_now():
    now = t("2026-11-16T00:00:00Z")
    log = api_coverage(SOURCES, now, retention_days=30).of("access_requests")
    assert log.basis is Basis.RETENTION
    assert log.missing(t("2026-10-17T00:00:00Z"), now) == ()
    assert log.missing(now, now + 5) == (Interval(now, now + 5),)  # a reference time after now
    assert "keeps 30 days" in log.why(log.missing(t("2026-10-16T00:00:00Z"), now))
    measured = api_coverage(SOURCES, now, 30, measured_from={"scim_updates": t("2026-11-10T00:00:00Z")})
    assert measured.of("scim_updates").basis is Basis.PROFILE
    assert measured.of("access_requests").basis is Basis.RETENTION


# ---- item 2: what a partly covered window decides -------------------------------------------------------------


def test_a_covered_window_keeps_its_outcome_and_says_it_is_complete(tmp_path):
    r = result(tmp_path, denied(1), covering(access_until="2026-11-16T00:00:00Z"), filter={"allowed": False})
    assert r.status == "fail" and r.coverage is not None and r.coverage.complete
    assert r.to_json()["coverage"] == {"complete": True, "logs": [{
        "log": "access_requests", "basis": "stated",
        "covered": [{"since": "2026-11-14T12:00:00Z", "until": "2026-11-15T12:00:00Z"}], "missing": []}]}


def test_a_max_already_exceeded_in_the_covered_part_fails(tmp_path):
    r = result(tmp_path, denied(3), covering(), filter={"allowed": False}, group_by="user_email",
               expect={"count": {"max": 2}})
    assert r.status == "fail" and not r.coverage.complete
    assert r.message.endswith("(already over a max where data covers it; no access_requests data covers "
                              "2026-11-15T00:00:00Z..2026-11-15T12:00:00Z of this rule's window)")
    distinct = result(tmp_path, [*denied(1, "a@x.com"), *denied(1, "b@x.com")], covering(),
                      filter={"allowed": False}, expect={"distinct": {"field": "user_email", "max": 1}})
    assert distinct.status == "fail"


def test_a_max_not_yet_exceeded_is_an_error_naming_the_uncovered_part(tmp_path):
    r = result(tmp_path, denied(1), covering(), filter={"allowed": False}, expect={"count": {"max": 2}})
    assert r.status == "error" and r.violations == 0 and r.evidence == ()
    assert r.message == ("no access_requests data covers 2026-11-15T00:00:00Z..2026-11-15T12:00:00Z of this "
                         "rule's window (data ends 2026-11-15T00:00:00Z; as stated with --data-covers)")
    assert r.to_json()["coverage"]["logs"][0]["missing"] == [{"since": "2026-11-15T00:00:00Z",
                                                              "until": "2026-11-15T12:00:00Z"}]


def test_every_min_met_without_group_by_or_anything_else_to_break_passes(tmp_path):
    r = result(tmp_path, denied(3), covering(), filter={"allowed": False},
               expect={"count": {"min": 2}, "distinct": {"field": "user_email", "min": 1}})
    assert r.status == "pass" and "(every min already met where data covers it; no access_requests" in r.message


def test_a_min_not_yet_met_is_an_error(tmp_path):
    r = result(tmp_path, denied(1), covering(), filter={"allowed": False}, expect={"count": {"min": 2}})
    assert r.status == "error"


def test_a_min_met_beside_a_max_that_could_still_break_is_an_error(tmp_path):
    r = result(tmp_path, denied(3), covering(), filter={"allowed": False}, expect={"count": {"min": 2, "max": 9}})
    assert r.status == "error"


def test_with_group_by_a_new_group_could_fail_a_min_unless_for_each_closes_the_groups(tmp_path):
    grouped = {"filter": {"allowed": False}, "group_by": "user_email", "expect": {"count": {"min": 2}}}
    assert result(tmp_path, denied(3), covering(), **grouped).status == "error"
    # A min of 1 holds for any group that exists: no new group can fail it.
    assert result(tmp_path, denied(3), covering(), **{**grouped, "expect": {"count": {"min": 1}}}).status == "pass"
    # The filter admits only the for_each values: every group that can exist is measured already.
    closed = {**grouped, "filter": {"allowed": False, "user_email": {"in": ["eve@example.com"]}},
              "for_each": {"user_email": ["eve@example.com"]}}
    assert result(tmp_path, denied(3), covering(), **closed).status == "pass"


def test_ratios_are_never_decided_on_partial_coverage(tmp_path):
    ratio = {"expect": {"ratio": {"where": {"allowed": True}, "max": 0.5}}}
    assert result(tmp_path, denied(3), covering(), **ratio).status == "error"
    # ... but a count max already exceeded beside a ratio is a failure all the same
    both = {"expect": {"ratio": {"where": {"allowed": True}, "max": 0.5}, "count": {"max": 1}}}
    assert result(tmp_path, denied(3), covering(), **both).status == "fail"


def test_pass_is_final_only_without_max_ratio_or_open_groups(tmp_path):
    plan = compiled(tmp_path, rule_yaml(expect={"count": {"min": 3}}, group_by="user_email"), at=T)
    assert not pass_is_final(plan.rules[0].rule)


def test_correlation_rules_need_both_logs(tmp_path):
    leaver = {"source": "correlation", "window": "24h", "group_by": "user_email",
              "correlate": {"first": {"source": "scim_updates", "filter": {"request_method": "DELETE"}},
                            "then": {"source": "access_requests", "filter": {"allowed": True}},
                            "join": {"resource_user_email": "user_email"}}}
    records_first = [scim(request_method="DELETE", resource_user_email="eve@example.com",
                          logged_at="2026-11-14T13:00:00Z")]
    plan = compiled(tmp_path, rule_yaml(**leaver), at=T, config="scim_idp_ids: [idp-1]\n")
    (c,) = plan.rules
    full = covering(access_until="2026-11-16T00:00:00Z", scim_until="2026-11-15T06:00:00Z")
    r = apply(RuleResult(c, "pass", "passed: count 0 (max 0)", "GET"), full)
    assert r.status == "error" and r.message.startswith("no scim_updates data covers 2026-11-15T06:00:00Z..")
    assert [log["log"] for log in r.to_json()["coverage"]["logs"]] == ["scim_updates", "access_requests"]
    assert records_first  # the first side's records play no part: missing data is missing whatever was read


def test_a_rule_already_in_error_stays_so_and_gets_its_coverage(tmp_path):
    plan = compiled(tmp_path, rule_yaml(), at=T)
    r = apply(RuleResult(plan.rules[0], "error", "data error", "GET"), covering())
    assert (r.status, r.message) == ("error", "data error") and not r.coverage.complete
