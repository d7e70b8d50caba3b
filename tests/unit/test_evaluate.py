"""Streaming evaluation: expectations, grouping, windows, timestamps, evidence."""

from __future__ import annotations

import random

import pytest

from tests.helpers import ABSENT, access, compiled, outcome, outcomes, rule_yaml, scim

AT = "2026-11-15T12:00:00Z"


def values(result) -> list:
    return [m.value for m in result.measurements]


# --- count ------------------------------------------------------------------------------------------------------


def test_default_expectation_is_no_match(tmp_path):
    assert outcome(tmp_path, [access(allowed=True)], filter={"allowed": False}).status == "pass"
    result = outcome(tmp_path, [access(allowed=False)], filter={"allowed": False})
    assert result.status == "fail"
    assert (result.measurements[0].expectation, result.measurements[0].value, result.measurements[0].max) == (
        "count", 1, 0)


@pytest.mark.parametrize(
    ("bounds", "n", "status"),
    [
        ({"max": 2}, 2, "pass"),
        ({"max": 2}, 3, "fail"),
        ({"min": 2}, 2, "pass"),
        ({"min": 2}, 1, "fail"),
        ({"min": 1, "max": 3}, 0, "fail"),
        ({"min": 1, "max": 3}, 3, "pass"),
        ({"min": 1, "max": 3}, 4, "fail"),
    ],
)
def test_count_bounds(tmp_path, bounds, n, status):
    result = outcome(tmp_path, [access()] * n, expect={"count": bounds})
    assert result.status == status
    assert result.measurements[0].value == n
    assert result.measurements[0].ok is (status == "pass")


def test_count_min_without_group_by_detects_silence(tmp_path):
    result = outcome(tmp_path, [], source="scim_updates", filter={"idp_id": "idp-1"}, window="1d",
                     expect={"count": {"min": 1}})
    assert result.status == "fail"
    assert result.measurements[0].value == 0
    assert result.measurements[0].group is None
    assert result.violations == 1


# --- distinct ---------------------------------------------------------------------------------------------------


def test_distinct_counts_values_and_skips_missing(tmp_path):
    records = [access(ip_address="10.0.0.1"), access(ip_address="10.0.0.1"), access(ip_address="10.0.0.2"),
               access(ip_address=ABSENT), access(ip_address=None)]
    ok = outcome(tmp_path, records, expect={"distinct": {"field": "ip_address", "max": 2}})
    assert (ok.status, values(ok)) == ("pass", [2])
    bad = outcome(tmp_path, records, expect={"distinct": {"field": "ip_address", "max": 1}})
    assert bad.status == "fail"
    assert bad.measurements[0].field == "ip_address"
    low = outcome(tmp_path, records, expect={"distinct": {"field": "ip_address", "min": 3}})
    assert (low.status, values(low)) == ("fail", [2])


def test_distinct_per_group(tmp_path):
    records = [access(user_email="a@x.com", country=c) for c in ("US", "GB", "FR")] + [
        access(user_email="b@x.com", country="US"), access(user_email="b@x.com", country="US")]
    result = outcome(tmp_path, records, group_by="user_email", expect={"distinct": {"field": "country", "max": 2}})
    assert result.status == "fail"
    assert result.violations == 1
    first = result.measurements[0]
    assert (first.group, first.value, first.ok) == ({"user_email": "a@x.com"}, 3, False)
    assert {(m.group["user_email"], m.value) for m in result.measurements} == {("a@x.com", 3), ("b@x.com", 1)}


# --- ratio ------------------------------------------------------------------------------------------------------


def test_ratio(tmp_path):
    records = [access(allowed=False)] * 3 + [access(allowed=True)]
    result = outcome(tmp_path, records, expect={"ratio": {"where": {"allowed": False}, "max": 0.5}})
    assert result.status == "fail"
    assert result.measurements[0].value == pytest.approx(0.75)
    ok = outcome(tmp_path, records, expect={"ratio": {"where": {"allowed": False}, "max": 0.75}})
    assert ok.status == "pass"
    low = outcome(tmp_path, records, expect={"ratio": {"where": {"allowed": True}, "min": 0.5}})
    assert low.status == "fail"
    assert low.measurements[0].value == pytest.approx(0.25)


def test_ratio_without_matching_records_is_not_measured_and_passes(tmp_path):
    result = outcome(tmp_path, [access(action="logout")], filter={"action": "login"},
                     expect={"ratio": {"where": {"allowed": True}, "min": 0.9}})
    assert result.status == "pass"
    assert result.measurements[0].value is None
    assert result.measurements[0].ok is True


def test_ratio_where_uses_full_condition_language(tmp_path):
    records = [access(user_email="a@svc.example.com"), access(user_email="b@example.com"),
               access(user_email="c@example.com", country=ABSENT), access(user_email="d@example.com", country="US")]
    result = outcome(tmp_path, records, expect={"ratio": {"where": {
        "user_email": {"not_contains": "@svc."}, "country": {"exists": False}}, "max": 1}})
    assert result.measurements[0].value == pytest.approx(0.5)  # b (no country by default) and c


def test_ratio_per_group_and_evidence_shows_offending_side(tmp_path):
    records = [
        access(user_email="a@x.com", allowed=False, created_at="2026-11-15T11:00:00Z"),
        access(user_email="a@x.com", allowed=True, created_at="2026-11-15T11:01:00Z"),
        access(user_email="b@x.com", allowed=True, created_at="2026-11-15T11:02:00Z"),
    ]
    result = outcome(tmp_path, records, group_by="user_email",
                     expect={"ratio": {"where": {"allowed": True}, "min": 0.9}})
    assert result.status == "fail"
    assert result.violations == 1
    assert result.measurements[0].group == {"user_email": "a@x.com"}
    # too low a share satisfies `where`: the evidence shows the records that do not.
    assert [r["allowed"] for r in result.evidence] == [False]
    high = outcome(tmp_path, records, group_by="user_email", expect={"ratio": {"where": {"allowed": True}, "max": 0.6}})
    assert [r["allowed"] for r in high.evidence] == [True]
    assert high.measurements[0].group == {"user_email": "b@x.com"}


def test_several_expectations_all_must_hold(tmp_path):
    records = [access(ip_address=f"10.0.0.{i}") for i in range(3)]
    result = outcome(tmp_path, records, expect={"count": {"max": 5}, "distinct": {"field": "ip_address", "max": 2}})
    assert result.status == "fail"
    assert [(m.expectation, m.ok) for m in result.measurements] == [("count", True), ("distinct", False)]


# --- grouping ---------------------------------------------------------------------------------------------------


def test_group_by_single_field(tmp_path):
    records = [access(user_email="a@x.com")] * 3 + [access(user_email="b@x.com")] * 2 + [access(user_email="c@x.com")]
    result = outcome(tmp_path, records, group_by="user_email", expect={"count": {"max": 2}})
    assert result.status == "fail"
    assert result.violations == 1
    assert next((m.group, m.value, m.ok) for m in result.measurements) == ({"user_email": "a@x.com"}, 3, False)
    assert len(result.measurements) == 3  # every group of a failing rule, violating first
    assert "1 group violates" in result.message


def test_group_by_several_fields(tmp_path):
    records = [
        access(user_email="a@x.com", country="US"),
        access(user_email="a@x.com", country="US"),
        access(user_email="a@x.com", country="GB"),
        access(user_email="b@x.com", country="US"),
        access(user_email="b@x.com", country="US"),
    ]
    result = outcome(tmp_path, records, group_by=["user_email", "country"], expect={"count": {"max": 1}})
    assert result.status == "fail"
    assert result.violations == 2
    bad = [m.group for m in result.measurements if not m.ok]
    assert bad == [{"user_email": "a@x.com", "country": "US"}, {"user_email": "b@x.com", "country": "US"}]
    assert {"user_email": "a@x.com", "country": "GB"} in [m.group for m in result.measurements if m.ok]


def test_group_by_missing_value_is_its_own_group(tmp_path):
    records = [access(country=ABSENT), access(country=ABSENT), access(country="US")]
    result = outcome(tmp_path, records, group_by="country", expect={"count": {"max": 1}})
    assert [(m.group, m.value) for m in result.measurements if not m.ok] == [({"country": None}, 2)]


def test_group_order_does_not_depend_on_input_order_with_a_null_and_an_empty_value(tmp_path):
    # A null group value and "" used to sort as equal, so their order (and the worst group's name) followed
    # the records' order. Now a null value sorts first, whatever the order.
    null, empty = [access(country=None)] * 2, [access(country="")] * 2
    plan = compiled(tmp_path, rule_yaml(group_by="country", expect={"count": {"max": 1}}))
    one, other = outcomes(plan, null + empty)["r"], outcomes(plan, empty + null)["r"]
    assert [m.group for m in one.measurements] == [{"country": None}, {"country": ""}]
    assert (one.measurements, one.message) == (other.measurements, other.message)


def test_min_applies_to_existing_groups_only(tmp_path):
    records = [access(user_email="a@x.com")] * 2 + [access(user_email="b@x.com")]
    result = outcome(tmp_path, records, group_by="user_email", expect={"count": {"min": 2}})
    assert result.status == "fail"
    assert [(m.group, m.value) for m in result.measurements if not m.ok] == [({"user_email": "b@x.com"}, 1)]
    silent = outcome(tmp_path, [], group_by="user_email", expect={"count": {"min": 2}})
    assert silent.status == "pass"  # no group exists, so none is below the minimum


def test_passing_grouped_rule_reports_the_group_nearest_the_bound(tmp_path):
    records = [access(user_email="a@x.com")] * 3 + [access(user_email="b@x.com")]
    result = outcome(tmp_path, records, group_by="user_email", expect={"count": {"max": 5}})
    assert result.status == "pass"
    assert [(m.group, m.value) for m in result.measurements] == [({"user_email": "a@x.com"}, 3)]
    assert result.matched == 4


def test_violations_ordered_worst_first(tmp_path):
    records = [access(user_email="a@x.com")] * 3 + [access(user_email="b@x.com")] * 7
    records += [access(user_email="c@x.com")] * 5
    result = outcome(tmp_path, records, group_by="user_email", expect={"count": {"max": 2}})
    assert [m.group["user_email"] for m in result.measurements] == ["b@x.com", "c@x.com", "a@x.com"]
    assert "worst: count 7" in result.message


# --- evidence ---------------------------------------------------------------------------------------------------


def _spread(n: int, **fields) -> list[dict]:
    return [access(created_at=f"2026-11-15T11:{i:02d}:00Z", ray_id=f"ray{i:02d}", **fields) for i in range(n)]


def test_evidence_capped_per_violation_and_earliest_first(tmp_path):
    records = _spread(10, user_email="a@x.com") + _spread(4, user_email="b@x.com")
    result = outcome(tmp_path, records, group_by="user_email", evidence=3, expect={"count": {"max": 0}})
    assert result.violations == 2
    assert len(result.evidence) == 6  # 3 per violating group
    assert [r["ray_id"] for r in result.evidence[:3]] == ["ray00", "ray01", "ray02"]


def test_evidence_default_is_five_and_zero_keeps_none(tmp_path):
    records = _spread(8)
    assert len(outcome(tmp_path, records).evidence) == 5
    assert outcome(tmp_path, records, evidence=0).evidence == ()
    assert len(outcome(tmp_path, records, evidence=100).evidence) == 8


def test_evidence_is_the_same_whatever_the_record_order(tmp_path):
    records = _spread(30, user_email="a@x.com") + _spread(30, user_email="b@x.com")
    # same timestamps in both groups, so ties are broken by content, not arrival order
    records += [access(created_at="2026-11-15T11:00:00Z", ray_id=f"tie{i}", user_email="a@x.com") for i in range(5)]
    plan = compiled(tmp_path, rule_yaml(group_by="user_email", evidence=4))
    expected = outcomes(plan, records)["r"]
    rng = random.Random(7)
    for _ in range(5):
        shuffled = records[:]
        rng.shuffle(shuffled)
        again = outcomes(plan, shuffled)["r"]
        assert again.evidence == expected.evidence
        assert again.measurements == expected.measurements
        assert again.message == expected.message


def test_evidence_shows_fields_the_rule_reads_plus_identifying_fields(tmp_path):
    result = outcome(tmp_path, [access(app_type="self_hosted")], filter={"app_type": "self_hosted"})
    shown = result.evidence[0]
    assert shown["app_type"] == "self_hosted"
    assert {"created_at", "user_email", "ip_address", "ray_id"} <= set(shown)
    assert "app_uid" not in shown  # not read by the rule and not an identifying field


def test_evidence_shows_a_missing_field_as_null_like_a_null_one(tmp_path):
    # It used to show a null field but leave out a missing one; now every shown field is there.
    missing, null = access(ray_id=ABSENT), access(ray_id=None, created_at="2026-11-15T11:00:00Z")
    result = outcome(tmp_path, [missing, null], expect={"count": {"max": 0}})
    assert [e["ray_id"] for e in result.evidence] == [None, None]
    assert len({tuple(e) for e in result.evidence}) == 1  # the same fields, in the same order


# --- windows ----------------------------------------------------------------------------------------------------


def test_window_edges_start_inclusive_end_exclusive(tmp_path):
    records = [
        access(created_at="2026-11-15T11:00:00Z", ray_id="at-start"),  # exactly T - D: counts
        access(created_at="2026-11-15T10:59:59.999999Z", ray_id="before"),
        access(created_at="2026-11-15T11:59:59.999999Z", ray_id="last"),
        access(created_at="2026-11-15T12:00:00Z", ray_id="at-T"),  # exactly T: does not
    ]
    result = outcome(tmp_path, records, window="1h", evidence=10)
    assert result.matched == 2
    assert [r["ray_id"] for r in result.evidence] == ["at-start", "last"]


@pytest.mark.parametrize(
    ("stamp", "inside"),
    [
        ("2026-11-15T11:00:00Z", True),
        ("2026-11-15T11:00:00.000Z", True),
        ("2026-11-15T11:00:00.12345Z", True),
        ("2026-11-15T10:59:59.999999999Z", False),
        ("2026-11-15T13:00:00+02:00", True),  # 11:00Z
        ("2026-11-15T12:59:59+02:00", False),  # 10:59:59Z
        ("2026-11-15T13:59:59.5+02:00", True),  # 11:59:59.5Z
        ("2026-11-15T14:00:00+02:00", False),  # 12:00Z, exactly T
        ("2026-11-15T07:00:00-05:00", False),  # 12:00Z
        ("2026-11-15T06:30:00-05:00", True),  # 11:30Z
    ],
)
def test_timestamps_with_fractions_and_offsets(tmp_path, stamp, inside):
    result = outcome(tmp_path, [access(created_at=stamp)], window="1h")
    assert result.matched == (1 if inside else 0)


def test_default_window_is_24h(tmp_path):
    records = [access(created_at="2026-11-14T12:00:00Z"), access(created_at="2026-11-14T11:59:59Z")]
    assert outcome(tmp_path, records).matched == 1


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [
        ({"since": "2026-11-15T10:00:00Z", "until": "2026-11-15T11:00:00Z"}, ["10:00", "10:30"]),
        ({"since": "2026-11-15T10:30:00+00:00"}, ["10:30", "11:00", "11:30"]),
        ({"since": "2h", "until": "1h"}, ["10:00", "10:30"]),
        ({"since": "90m"}, ["10:30", "11:00", "11:30"]),
        ({"since": "2026-11-15T10:30:00Z", "until": "1h"}, ["10:30"]),
        ({"since": "3h", "until": "2026-11-15T10:30:00Z"}, ["09:00", "09:30", "10:00"]),
    ],
)
def test_since_until_absolute_and_relative(tmp_path, bounds, expected):
    records = [access(created_at=f"2026-11-15T{hm}:00Z", ray_id=hm)
               for hm in ("09:00", "09:30", "10:00", "10:30", "11:00", "11:30", "12:00")]
    result = outcome(tmp_path, records, evidence=100, **bounds)
    assert [r["ray_id"] for r in result.evidence] == expected


def test_scim_uses_logged_at(tmp_path):
    records = [scim(logged_at="2026-11-15T11:30:00Z"), scim(logged_at="2026-11-14T11:30:00Z")]
    result = outcome(tmp_path, records, source="scim_updates", filter={"idp_id": "idp-1"}, window="1h",
                     expect={"count": {"max": 10}})
    assert result.matched == 1


def test_measurement_to_json_shape(tmp_path):
    result = outcome(tmp_path, [access()], group_by="user_email",
                     expect={"distinct": {"field": "ip_address", "min": 2, "max": 4}})
    assert result.measurements[0].to_json() == {
        "expectation": "distinct", "field": "ip_address", "group": {"user_email": "alice@example.com"},
        "value": 1, "min": 2, "max": 4, "ok": False}
    plain = outcome(tmp_path, [], expect={"count": {"max": 0}})
    assert plain.measurements[0].to_json() == {"expectation": "count", "group": None, "value": 0, "max": 0,
                                               "ok": True}
