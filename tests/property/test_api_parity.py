"""Random rules over random records: the API path (pushdown, projection, paging, splitting, retries) gives
the answer the local evaluation of the same records gives, or fails closed. Never a different pass/fail.

Each example loads its rules through the real validation, compiles one plan, evaluates it over NDJSON
files and through a fresh emulator serving the same records over loopback HTTP, and compares every
rule's whole results JSON (status, message, measurements, evidence)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, note, settings
from hypothesis import strategies as st

from auditor.core.timeutil import US, parse_time
from auditor.testing.emulator import Faults
from tests.property.model import TIME_FIELD, WINDOWS, decided, examples, filters, records, rules, scenarios, workspace


@settings(max_examples=examples(25))
@given(scenarios())
def test_pushdown_through_the_emulator_gives_the_files_answer(scenario):
    rule_list, data = scenario
    with workspace(rule_list, data) as ws:
        assert ws.api() == ws.files()


def _busiest_seconds(rows: list[dict[str, Any]], time_field: str) -> int:
    """The most records in three consecutive whole seconds: what the query for a 1 s part may return, as it
    asks one second early (the API's `since` may be exclusive) and `until` may be inclusive."""
    per_second = Counter(parse_time(r[time_field]) // US for r in rows)
    return max((sum(per_second.get(s + d, 0) for d in (-1, 0, 1)) for s in per_second), default=0)


@settings(max_examples=examples(20))
@given(scenarios(max_records=60), st.integers(1, 9), st.integers(3, 40), st.sampled_from([None, 1, 2, 4]),
       st.integers(1, 4))
def test_any_page_size_limit_and_split_gives_the_same_answer(scenario, per_page, limit, cap_per_page, concurrency):
    rule_list, data = scenario
    with workspace(rule_list, data) as ws:
        expected = ws.files()
        got = ws.api(per_page=per_page, limit=limit, concurrency=concurrency,
                     faults=Faults(cap_per_page=cap_per_page))
    for rule in ws.plan.rules:
        rule_id, source = rule.rule.id, rule.rule.source
        if got[rule_id] == expected[rule_id]:
            continue
        # The one legitimate difference: a 1 s part whose query returns `limit` records cannot be split.
        assert got[rule_id]["status"] == "error", (rule_id, got[rule_id]["message"])
        assert _busiest_seconds(data[source], TIME_FIELD[source]) >= limit, got[rule_id]["message"]
        assert "within 1 s" in got[rule_id]["message"]


faults = st.builds(
    Faults,
    rate_limit_first=st.integers(0, 3),
    retry_after=st.sampled_from([0, 1, 2, 600]),  # 600 s is beyond the 120 s bound: fails closed
    fail_pages=st.dictionaries(st.integers(1, 3), st.integers(1, 6), max_size=2),
    fail_status=st.sampled_from([500, 502, 503, 504]),
    malformed_first=st.integers(0, 6),
    cap_per_page=st.sampled_from([None, 1, 3]),
    cap_limit=st.sampled_from([None, 25, 30]),
    result_info_access=st.booleans(),
)


@settings(max_examples=examples(25))
@given(scenarios(max_records=60), faults, st.sampled_from([None, 5]))
def test_a_fault_leaves_the_answer_or_makes_the_rule_an_error(scenario, fault, per_page):
    rule_list, data = scenario
    note(f"faults: {fault}")
    with workspace(rule_list, data) as ws:
        expected = ws.files()
        got = ws.api(faults=fault, per_page=per_page)
    for rule_id, result in got.items():
        if decided(result):
            assert result == expected[rule_id], rule_id  # evaluated: exactly the answer without faults
        else:
            assert result["status"] == "error" and result["message"], rule_id


# Faults the client must ride out: every request gets at most 4 failed answers (429s, 5xx, cut bodies) of its 5
# attempts, and each Retry-After is within the 120 s the client waits.
recoverable_faults = st.builds(
    Faults,
    rate_limit_first=st.integers(0, 2),
    retry_after=st.sampled_from([0, 1, 2]),
    fail_pages=st.dictionaries(st.integers(1, 3), st.integers(1, 1), max_size=1),
    fail_status=st.sampled_from([500, 502, 503, 504]),
    malformed_first=st.integers(0, 1),
    result_info_access=st.booleans(),
)


@settings(max_examples=examples(12))
@given(scenarios(max_records=60), recoverable_faults, st.sampled_from([None, 5]))
def test_recoverable_faults_decide_every_rule_the_fault_free_run_decides(scenario, fault, per_page):
    """Stronger than the test above, which accepts `error` for any rule: faults the retries absorb change no
    answer at all, so a run that errored every rule on them would fail here."""
    rule_list, data = scenario
    note(f"faults: {fault}")
    with workspace(rule_list, data) as ws:
        expected = ws.api(per_page=per_page)
        got = ws.api(faults=fault, per_page=per_page)
    for rule_id, result in expected.items():
        if decided(result):
            assert got[rule_id] == result, (rule_id, got[rule_id]["message"])


def test_scim_records_of_an_idp_outside_scim_idp_ids_count_alike_over_files_and_api():
    rules = [{"id": "s", "title": "t", "source": "scim_updates", "window": "24h"}]
    record = {"cf_resource_id": "c", "error_description": None, "idp_id": "idp-not-configured", "idp_resource_id": "r",
              "logged_at": "2026-11-15T10:00:00Z", "request_body": "{}", "request_method": "PATCH",
              "resource_group_name": "G", "resource_type": "USER", "resource_user_email": "u@example.com",
              "status": "SUCCESS"}
    with workspace(rules, {"access_requests": [], "scim_updates": [record]}) as ws:
        assert ws.api() == ws.files()


EMAILS = ["dana@example.com", "Dana@Example.com", "eve@example.com"]


@st.composite
def correlation_scenarios(draw: st.DrawFn) -> tuple[list[dict], dict[str, list]]:
    """A leaver-like correlation rule (random side filters, window and `within`), sometimes beside an access
    rule that shares its `then` fetch, over records whose e-mails join in every letter case."""
    data = {source: draw(records(source, 30)) for source in ("access_requests", "scim_updates")}
    for row in data["scim_updates"]:
        row["resource_user_email"] = draw(st.sampled_from(EMAILS))
    for row in data["access_requests"]:
        row["user_email"] = draw(st.sampled_from(EMAILS))
    correlate: dict[str, Any] = {
        "first": {"source": "scim_updates", "filter": draw(filters("scim_updates", 1))},
        "then": {"source": "access_requests", "filter": draw(filters("access_requests", 1))},
        "join": {"resource_user_email": "user_email"},
    }
    within = draw(st.sampled_from([None, "30m", "2h", "24h"]))
    if within:
        correlate["within"] = within
    rule = {"id": "c0", "title": "correlation", "source": "correlation", "window": draw(st.sampled_from(WINDOWS)),
            "correlate": correlate, "group_by": "user_email", "evidence": draw(st.integers(0, 3))}
    others = [draw(rules("access_requests", "r1"))] if draw(st.booleans()) else []
    return [rule, *others], data


@settings(max_examples=examples(25))
@given(correlation_scenarios(), st.integers(1, 4))
def test_correlation_then_sides_narrowed_over_the_api_give_the_files_answer(scenario, concurrency):
    """Over the API the `then` side is re-planned after the `first` side is read (only where it can match);
    over files every record is read. Both give the same answer."""
    rule_list, data = scenario
    with workspace(rule_list, data) as ws:
        assert ws.plan.narrows()
        assert ws.api(concurrency=concurrency) == ws.files()
