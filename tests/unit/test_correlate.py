"""Correlation rules: validation, compilation into two shared fetches, join semantics, evaluation over files,
evidence in the reports, and the starter pack on the sample data."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from auditor.compile.compiler import compile_plan
from auditor.compile.narrow import narrow
from auditor.compile.plan import Plan
from auditor.core import resources
from auditor.core.coverage import COMPLETE, parse_data_covers
from auditor.core.fields import SOURCES
from auditor.core.timeutil import parse_time
from auditor.evaluate.correlate import CorrelationEvaluator, Correlations
from auditor.load.validate import Inputs, load_project
from auditor.report.render import FORMATS, render
from auditor.run.runner import RunOptions
from auditor.run.runner import run as run_plan
from auditor.sources.files import FileSource
from tests.helpers import ABSENT, SAMPLE_COVERS, access, compiled, project, scim, write, write_ndjson

REPO = Path(__file__).resolve().parents[2]
CONFIG = "scim_idp_ids: [idp-1]\n"
AT = "2026-11-15T12:00:00Z"
SAMPLE = FileSource(REPO / "examples" / "data", None, parse_data_covers([SAMPLE_COVERS], SOURCES))

LEAVER = {
    "id": "leaver", "title": "Deprovisioned users do not sign in", "source": "correlation", "window": "7d",
    "correlate": {
        "first": {"source": "scim_updates", "filter": {"request_method": "DELETE", "resource_type": "USER"}},
        "then": {"source": "access_requests", "filter": {"allowed": True}},
        "join": {"resource_user_email": "user_email"},
    },
    "group_by": "user_email",
}


def rules_yaml(*rules: dict[str, Any]) -> str:
    return yaml.safe_dump({"rules": list(rules)}, sort_keys=False)


def leaver(**changes: Any) -> dict[str, Any]:
    """The leaver rule with changes; `within=...` and the sides' keys go into `correlate`."""
    out = json.loads(json.dumps(LEAVER))
    for key in ("within", "first", "then", "join"):
        if key in changes:
            out["correlate"][key] = changes.pop(key)
    out.update(changes)
    return {k: v for k, v in out.items() if v is not None}  # `key=None` removes a key


def deleted(email: str = "dana@example.com", at: str = "2026-11-10T14:00:00Z", **fields: Any) -> dict[str, Any]:
    return scim(**{"request_method": "DELETE", "resource_type": "USER", "resource_user_email": email,
                   "logged_at": at, "request_body": "", **fields})


def signin(email: str = "dana@example.com", at: str = "2026-11-11T09:00:00Z", **fields: Any) -> dict[str, Any]:
    return access(user_email=email, created_at=at, allowed=fields.pop("allowed", True), **fields)


def evaluate(plan: Plan, firsts: list[dict], thens: list[dict], *, then_first: bool = False):
    """Feed records straight to the correlation evaluators of a plan (rule id -> outcome)."""
    out = {}
    for c in plan.rules:
        e = CorrelationEvaluator(c)
        first_time = SOURCES[c.rule.correlation.first.source].time_field
        then_time = SOURCES[c.rule.correlation.then.source].time_field

        def feed_firsts(e=e, first_time=first_time) -> None:
            for r in firsts:
                e.feed_first(r, parse_time(r[first_time]))
            e.close_first()

        def feed_thens(e=e, then_time=then_time) -> None:
            for r in thens:
                e.feed_then(r, parse_time(r[then_time]))

        if then_first:  # then records before the first side is complete: buffered, matched on close
            feed_thens()
            feed_firsts()
        else:
            feed_firsts()
            feed_thens()
        out[c.rule.id] = e.outcome()
    return out


def outcome(tmp_path: Path, firsts: list[dict], thens: list[dict], *, at: str = AT, **changes: Any):
    plan = compiled(tmp_path, rules_yaml(leaver(**changes)), at=at, config=CONFIG)
    return evaluate(plan, firsts, thens)["leaver"]


def run(tmp_path: Path, rules: str, access_rows: list[dict] | None, scim_rows: list[dict] | None, *,
        at: str = AT, config: str = CONFIG):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    if access_rows is not None:
        write_ndjson(data / "access_requests.ndjson", access_rows)
    if scim_rows is not None:
        write_ndjson(data / "scim_updates.ndjson", scim_rows)
    plan = compiled(tmp_path, rules, at=at, config=config)
    return run_plan(plan, FileSource(data, None), RunOptions(rules_sha256="0" * 64, coverage=COMPLETE))


def by_id(run_result) -> dict[str, Any]:
    return {r.compiled.rule.id: r for r in run_result.results}


def problems(tmp_path: Path, text: str, config: str = CONFIG) -> list[str]:
    proj = project(tmp_path, text, config=config)
    return [f"{d.format()} [{d.code}]" for d in proj.diagnostics]


# --- validation -------------------------------------------------------------------------------------------


def test_valid_rule_loads(tmp_path):
    proj = project(tmp_path, rules_yaml(leaver(within="30d")), config=CONFIG)
    assert proj.ok, [d.format() for d in proj.diagnostics]
    rule = proj.rules[0]
    assert rule.source == "correlation" and rule.conditions == ()
    c = rule.correlation
    assert (c.first.source, c.then.source) == ("scim_updates", "access_requests")
    # the configured IdP scope is an explicit condition (pushed to the API and checked locally)
    assert [x.describe() for x in c.first.conditions] == ['request_method eq "DELETE"', 'resource_type eq "USER"',
                                                          'idp_id in ["idp-1"]']
    assert c.join == (("resource_user_email", "user_email"),)
    assert (c.within, c.within_us) == ("30d", 30 * 86400 * 1_000_000)
    first, then = rule.sides()
    assert (first.source, then.source, then.group_by) == ("scim_updates", "access_requests", ("user_email",))


def test_correlation_needs_correlate(tmp_path):
    text = rules_yaml({"id": "c", "title": "t", "source": "correlation"})
    assert problems(tmp_path, text) == [
        f"{tmp_path / 'rules/rules.yaml'}:2:3: error: missing required key 'correlate' in rule file rules[0] [E202]"]


def test_filter_is_not_used_by_correlation_rules(tmp_path):
    found = problems(tmp_path, rules_yaml(leaver(filter={"allowed": True})))
    assert len(found) == 1
    assert "a correlation rule does not use 'filter'" in found[0] and "[E330]" in found[0]
    assert "correlate.first.filter and correlate.then.filter" in found[0]
    lines = (tmp_path / "rules/rules.yaml").read_text().splitlines()
    line = next(i for i, t in enumerate(lines, 1) if t == "  filter:")  # the rule's, not a side's
    assert found[0].startswith(f"{tmp_path / 'rules/rules.yaml'}:{line}:3:")


def test_correlate_only_with_source_correlation(tmp_path):
    rule = leaver(source="access_requests")
    found = problems(tmp_path, rules_yaml(rule))
    assert len(found) == 1 and "'correlate' only applies to source: correlation, not access_requests" in found[0]


def test_side_filters_are_checked_against_their_own_source(tmp_path):
    rule = leaver(first={"source": "scim_updates", "filter": {"user_email": "x@example.com"}},
                  then={"source": "access_requests", "filter": {"allowed": "yes", "request_method": "DELETE"}})
    found = problems(tmp_path, rules_yaml(rule))
    path = tmp_path / "rules/rules.yaml"
    text = path.read_text().splitlines()
    line = {name: next(i for i, t in enumerate(text, 1) if t.strip().startswith(name)) for name in
            ("user_email: x@", "allowed:", "request_method: DELETE")}
    assert found == [
        f"{path}:{line['user_email: x@']}:9: error: unknown field 'user_email' for source scim_updates; "
        "'user_email' is a field of access_requests [E302]",
        f"{path}:{line['allowed:']}:18: error: 'allowed' is a boolean: compare it with true or false, not 'yes' "
        "[E304]",
        f"{path}:{line['request_method: DELETE']}:9: error: unknown field 'request_method' for source "
        "access_requests; 'request_method' is a field of scim_updates [E302]",
    ]


def test_join_fields_exist_on_their_sides_and_have_one_type(tmp_path):
    cases = {
        "user_email": "user_email",  # first (scim) has no user_email
        "resource_user_email": "resource_user_email",  # then (access) has no resource_user_email
        "cf_resource_id": "allowed",  # string vs boolean
        "logged_at": "created_at",  # time: the order is implicit
    }
    for first_field, then_field in cases.items():
        found = problems(tmp_path, rules_yaml(leaver(join={first_field: then_field})))
        assert len(found) == 1, found
        if first_field == "user_email":
            assert "unknown field 'user_email' for source scim_updates" in found[0]
        elif first_field == "resource_user_email":
            assert "unknown field 'resource_user_email' for source access_requests" in found[0]
        elif first_field == "cf_resource_id":
            assert "join cf_resource_id -> allowed: a string field never equals a bool field [E331]" in found[0]
        else:
            assert "cannot join on the time field 'logged_at'" in found[0] and "within" in found[0]


def test_group_by_and_expectations_name_then_fields(tmp_path):
    found = problems(tmp_path, rules_yaml(leaver(group_by="resource_user_email",
                                                 expect={"distinct": {"field": "request_method", "max": 1}})))
    assert len(found) == 2
    assert all("for source access_requests (group_by and expect of a correlation rule name fields of "
               "correlate.then)" in f for f in found)
    ok = problems(tmp_path, rules_yaml(leaver(group_by=["user_email", "app_domain"],
                                              expect={"distinct": {"field": "ip_address", "max": 1}})))
    assert ok == []


def test_within_and_idp(tmp_path):
    found = problems(tmp_path, rules_yaml(leaver(within="0s")))
    assert len(found) == 1 and "[E332]" in found[0]
    found = problems(tmp_path, rules_yaml(leaver(within="3 days")))
    assert len(found) == 1 and "must be a duration" in found[0]
    # the SCIM side needs an IdP like any scim_updates rule, reported at that side
    found = problems(tmp_path, rules_yaml(leaver()), config="{}\n")
    assert len(found) == 1 and "scim_updates rules need an idp_id" in found[0]
    lines = (tmp_path / "rules/rules.yaml").read_text().splitlines()
    first = next(i for i, t in enumerate(lines, 1) if t.strip() == "first:")
    assert f":{first + 1}:" in found[0]  # inside correlate.first
    with_idp = leaver(first={"source": "scim_updates", "filter": {"idp_id": "idp-9", "request_method": "DELETE"}})
    assert problems(tmp_path, rules_yaml(with_idp), config="{}\n") == []


def test_unknown_keys_in_correlate(tmp_path):
    rule = leaver()
    rule["correlate"]["wihtin"] = "1h"
    rule["correlate"]["first"]["filtre"] = {}
    found = problems(tmp_path, rules_yaml(rule))
    assert any("unknown key 'wihtin'" in f and "did you mean 'within'?" in f for f in found)
    assert any("unknown key 'filtre'" in f and "did you mean 'filter'?" in f for f in found)


def test_correlation_test_records_are_given_per_source(tmp_path):
    rule = leaver(tests=[{"name": "flat", "expect": "pass", "records": [{"created_at": AT}]}])
    found = problems(tmp_path, rules_yaml(rule))
    assert len(found) == 1 and "a correlation rule's test records must be given per source" in found[0]


# --- compilation and plan ---------------------------------------------------------------------------------


def test_two_fetches_shared_with_other_rules(tmp_path):
    other_access = {"id": "signins", "title": "t", "source": "access_requests", "window": "7d",
                    "filter": {"allowed": True}, "expect": {"count": {"min": 1}}}
    other_scim = {"id": "deletes", "title": "t", "source": "scim_updates", "window": "24h",
                  "filter": {"request_method": "DELETE"}}
    plan = compiled(tmp_path, rules_yaml(leaver(), other_access, other_scim), config=CONFIG)
    assert len(plan.fetches) == 2
    rule = next(r for r in plan.rules if r.rule.id == "leaver")
    first, then = rule.sides
    assert (first.name, first.source, then.name, then.source) == ("first", "scim_updates", "then", "access_requests")
    assert rule.fetch_key == then.fetch_key and set(rule.fetch_keys) == {first.fetch_key, then.fetch_key}
    doc = plan.to_json()
    fetches = {f["key"]: f for f in doc["fetches"]}
    assert fetches[then.fetch_key]["rules"] == ["leaver", "signins"]  # shared: one query for both
    assert sorted(fetches[first.fetch_key]["rules"]) == ["deletes", "leaver"]  # the 24h rule is served by it
    assert ["request_method", "DELETE"] in fetches[first.fetch_key]["filters"]
    entry = next(r for r in doc["rules"] if r["id"] == "leaver")
    # SCIM fetches over the same IdPs are merged into one; the merged fetch does not apply the side's
    # filter, so all of it runs locally
    assert entry["correlate"]["first"] == {"source": "scim_updates", "fetch": first.fetch_key, "pushed": [],
                                           "local": ['request_method eq "DELETE"', 'resource_type eq "USER"',
                                                     'idp_id in ["idp-1"]']}
    alone = compiled(tmp_path, rules_yaml(leaver()), config=CONFIG).to_json()["rules"][0]["correlate"]["first"]
    assert alone["pushed"] == ['request_method eq "DELETE"', 'resource_type eq "USER"', 'idp_id in ["idp-1"]']
    assert alone["local"] == []
    assert entry["correlate"]["then"]["fetch"] == then.fetch_key == entry["fetch"]


def test_join_fields_are_fetched(tmp_path):
    # access_requests has a field projection: a join field must be asked for even if nothing else needs it
    rule = leaver(first={"source": "access_requests", "filter": {"allowed": False}},
                  then={"source": "scim_updates", "filter": {"request_method": "DELETE"}},
                  join={"app_uid": "cf_resource_id"}, group_by=None)
    plan = compiled(tmp_path, rules_yaml(rule), config=CONFIG + "pushdown: all\n")  # evidence's country listed too
    fetch = next(f for f in plan.fetches if f.source == "access_requests")
    assert "app_uid" in fetch.fields


def test_plan_text_names_the_sides(tmp_path):
    from auditor.report.plantext import plan_text

    text = plan_text(compiled(tmp_path, rules_yaml(leaver()), config=CONFIG))
    assert "leaver  [2026-11-08T12:00:00Z .. 2026-11-15T12:00:00Z)  (correlation: first side)" in text
    assert "(correlation: then side)" in text
    assert "each then side only from its earliest matching first record on" in text


# --- semantics --------------------------------------------------------------------------------------------


def test_then_after_first_matches_and_evidence_shows_both_sides(tmp_path):
    o = outcome(tmp_path, [deleted()], [signin(), signin(at="2026-11-12T09:00:00Z"), signin("bob@example.com")])
    assert o.status == "fail" and o.matched == 2
    assert o.measurements[0].group == {"user_email": "dana@example.com"} and o.measurements[0].value == 2
    item = o.evidence[0]
    assert list(item) == ["first", "then", "join", "delay_s"]
    assert item["first"]["logged_at"] == "2026-11-10T14:00:00Z" and item["first"]["request_method"] == "DELETE"
    assert item["then"]["created_at"] == "2026-11-11T09:00:00Z" and item["then"]["user_email"] == "dana@example.com"
    assert item["join"] == {"user_email": "dana@example.com"}
    assert item["delay_s"] == 19 * 3600
    assert "(first: 1 scim_updates record; then: 2 access_requests records after them)" in o.message


def test_wrong_order_and_equal_times_do_not_match(tmp_path):
    before = signin(at="2026-11-10T13:59:59Z")
    same_instant = signin(at="2026-11-10T14:00:00Z")
    just_after = signin(at="2026-11-10T14:00:00.000001Z")
    assert outcome(tmp_path, [deleted()], [before, same_instant]).status == "pass"
    o = outcome(tmp_path, [deleted()], [before, same_instant, just_after])
    assert o.status == "fail" and o.matched == 1 and o.evidence[0]["delay_s"] == 0.000001


def test_within_is_inclusive(tmp_path):
    at_bound = signin(at="2026-11-11T14:00:00Z")  # exactly 24h after the DELETE
    past_bound = signin(at="2026-11-11T14:00:01Z")
    assert outcome(tmp_path, [deleted()], [past_bound], within="24h").status == "pass"
    o = outcome(tmp_path, [deleted()], [at_bound, past_bound], within="24h")
    assert o.status == "fail" and o.matched == 1 and o.evidence[0]["delay_s"] == 86400
    # without within, any later sign-in in the window matches
    assert outcome(tmp_path, [deleted()], [past_bound]).matched == 1


def test_latest_earlier_first_is_the_partner(tmp_path):
    # deleted, re-provisioned and deleted again: each sign-in pairs with the closest earlier DELETE
    firsts = [deleted(at="2026-11-09T10:00:00Z"), deleted(at="2026-11-12T10:00:00Z")]
    o = outcome(tmp_path, firsts, [signin(at="2026-11-09T11:00:00Z"), signin(at="2026-11-12T10:30:00Z")],
                within="2h")
    assert o.matched == 2
    assert [(e["first"]["logged_at"], e["delay_s"]) for e in o.evidence] == [
        ("2026-11-09T10:00:00Z", 3600), ("2026-11-12T10:00:00Z", 1800)]
    # the latest earlier one is out of `within` -> no other (older) one can be within it
    o = outcome(tmp_path, firsts, [signin(at="2026-11-12T13:00:00Z")], within="2h")
    assert o.status == "pass"


def test_emails_join_case_insensitively(tmp_path):
    o = outcome(tmp_path, [deleted("Dana.Kowalski@Example.COM")], [signin("dana.kowalski@example.com")])
    assert o.status == "fail"
    assert o.evidence[0]["join"] == {"user_email": "dana.kowalski@example.com"}  # shown as then spells it
    assert o.evidence[0]["first"]["resource_user_email"] == "Dana.Kowalski@Example.COM"


def test_other_fields_join_exactly(tmp_path):
    join = {"cf_resource_id": "app_uid"}
    firsts = [deleted(cf_resource_id="App-1")]
    assert outcome(tmp_path, firsts, [signin(app_uid="app-1")], join=join).status == "pass"
    assert outcome(tmp_path, firsts, [signin(app_uid="App-1")], join=join).status == "fail"


def test_missing_or_empty_join_values_never_match(tmp_path):
    firsts = [deleted(""), deleted(ABSENT), deleted(None)]
    thens = [signin(""), signin(ABSENT), signin(None)]
    o = outcome(tmp_path, firsts, thens)
    assert o.status == "pass" and "(first: 0 scim_updates records" in o.message


def test_several_join_fields_must_all_match(tmp_path):
    join = {"resource_user_email": "user_email", "cf_resource_id": "app_uid"}
    firsts = [deleted(cf_resource_id="u1")]
    assert outcome(tmp_path, firsts, [signin(app_uid="u2")], join=join).status == "pass"
    assert outcome(tmp_path, firsts, [signin(app_uid="u1")], join=join).status == "fail"


def test_no_first_records_pass(tmp_path):
    o = outcome(tmp_path, [], [signin(), signin("bob@example.com")])
    assert o.status == "pass" and o.matched == 0
    assert o.message == ("passed: count 0 (max 0) (first: 0 scim_updates records; then: 0 access_requests "
                         "records after them)")


def test_filters_and_window_apply_to_both_sides(tmp_path):
    firsts = [deleted(at="2026-11-08T11:59:59Z"),  # before the 7d window
              deleted("bob@example.com", request_method="PATCH"),  # not a DELETE
              deleted("carol@example.com", at="2026-11-15T11:00:00Z")]
    thens = [signin(), signin("bob@example.com"), signin("carol@example.com", at="2026-11-15T12:00:00Z"),  # at T
             signin("carol@example.com", at="2026-11-15T11:30:00Z", allowed=False)]
    assert outcome(tmp_path, firsts, thens).status == "pass"


def test_expectations_and_groups_apply_to_then_records(tmp_path):
    thens = [signin(at=f"2026-11-11T0{h}:00:00Z", app_domain=f"app{h % 2}.example.com") for h in range(4)]
    o = outcome(tmp_path, [deleted()], thens, group_by="app_domain", expect={"count": {"max": 1}})
    assert o.status == "fail" and o.violations == 2
    assert sorted((m.group["app_domain"], m.value) for m in o.measurements) == [
        ("app0.example.com", 2), ("app1.example.com", 2)]
    o = outcome(tmp_path, [deleted()], thens, expect={"distinct": {"field": "app_domain", "max": 2}}, evidence=1)
    assert o.status == "pass"
    o = outcome(tmp_path, [deleted()], thens, group_by=None, evidence=1)
    assert o.status == "fail" and len(o.evidence) == 1


def test_then_records_before_the_first_side_completes_are_buffered(tmp_path):
    plan = compiled(tmp_path, rules_yaml(leaver(within="1d")), config=CONFIG)
    firsts = [deleted(), deleted("bob@example.com", at="2026-11-12T00:00:00Z")]
    thens = [signin(), signin(at="2026-11-09T00:00:00Z"), signin("bob@example.com", at="2026-11-12T01:00:00Z"),
             signin("bob@example.com", at="2026-11-14T01:00:00Z")]
    streamed = evaluate(plan, firsts, thens)["leaver"]
    buffered = evaluate(plan, firsts, thens, then_first=True)["leaver"]
    assert streamed == buffered and streamed.matched == 2


def test_then_fed_from_another_thread_while_first_completes(tmp_path):
    plan = compiled(tmp_path, rules_yaml(leaver()), config=CONFIG)
    e = CorrelationEvaluator(plan.rules[0])
    thens = [signin(at=f"2026-11-11T{h:02d}:{m:02d}:00Z") for h in range(24) for m in range(60)]

    def feed() -> None:
        for r in thens:
            e.feed_then(r, parse_time(r["created_at"]))

    worker = threading.Thread(target=feed)
    worker.start()
    e.feed_first(deleted(at="2026-11-10T00:00:00Z"), parse_time("2026-11-10T00:00:00Z"))
    e.close_first()
    worker.join()
    assert e.outcome().matched == len(thens)


def test_units_are_ordered_first_sides_first(tmp_path):
    plan = compiled(tmp_path, rules_yaml(leaver()), config=CONFIG)
    by_source = Correlations(plan.rules, lambda side: side.source)
    assert by_source.depends("access_requests") == {"scim_updates"} and by_source.depends("scim_updates") == set()
    assert by_source.ordered(["access_requests", "scim_updates", "other"], str) == [
        "scim_updates", "other", "access_requests"]
    assert by_source.ordered(["access_requests"], str) == ["access_requests"]  # a missing first unit: no wait
    # a cycle (access -> scim and scim -> access) still places every unit, in the given order
    reverse = leaver(id="reverse", first={"source": "access_requests", "filter": {"allowed": False}},
                     then={"source": "scim_updates"}, join={"user_email": "resource_user_email"}, group_by=None)
    plan = compiled(tmp_path, rules_yaml(leaver(), reverse), config=CONFIG)
    both = Correlations(plan.rules, lambda side: side.source)
    assert both.ordered(["access_requests", "scim_updates"], str) == ["access_requests", "scim_updates"]


# --- runs over files ----------------------------------------------------------------------------------


def test_run_over_files(tmp_path):
    other = {"id": "signins", "title": "t", "source": "access_requests", "window": "7d", "filter": {"allowed": True},
             "expect": {"count": {"min": 1}}}
    result = run(tmp_path, rules_yaml(leaver(), other), [signin("bob@example.com"), signin()],
                 [deleted(), scim(resource_type="GROUP", logged_at="2026-11-10T15:00:00Z")])
    results = by_id(result)
    assert results["signins"].status == "pass" and results["leaver"].status == "fail"
    doc = result.to_json()
    item = next(r for r in doc["results"] if r["id"] == "leaver")
    assert item["source"] == "correlation"
    assert item["correlate"] == {"first": "scim_updates", "then": "access_requests",
                                 "join": {"resource_user_email": "user_email"}, "within": None}
    # Over files, each side is named by the files it read.
    assert re.fullmatch(r"first: files \S*scim_updates\.ndjson; then: files \S*access_requests\.ndjson", item["fetch"])
    assert item["evidence"][0]["then"]["user_email"] == "dana@example.com"
    schema = json.loads(resources.schema_path("results").read_text())
    Draft202012Validator(schema).validate(doc)
    assert doc["summary"]["records_fetched"] == 4  # each file read once, however many rules read it


@pytest.mark.parametrize("missing", ["access_requests", "scim_updates"])
def test_a_missing_side_is_an_error(tmp_path, missing):
    other = {"id": "denials", "title": "t", "source": "access_requests", "window": "1d", "filter": {"allowed": False}}
    rows = {"access_requests": [signin()], "scim_updates": [deleted()]}
    rows[missing] = None
    result = run(tmp_path, rules_yaml(leaver(), other), rows["access_requests"], rows["scim_updates"])
    results = by_id(result)
    assert results["leaver"].status == "error"
    assert f"no {missing} file" in results["leaver"].message
    assert results["denials"].status == ("error" if missing == "access_requests" else "pass")
    assert int(result.exit_code) == 2


def test_malformed_first_side_is_an_error_for_the_rule(tmp_path):
    other = {"id": "denials", "title": "t", "source": "access_requests", "window": "1d", "filter": {"allowed": False}}
    bad = deleted()
    bad["logged_at"] = "yesterday"
    result = run(tmp_path, rules_yaml(leaver(), other), [signin()], [deleted(), bad])
    results = by_id(result)
    assert results["leaver"].status == "error"
    assert "scim_updates.ndjson:2: error: logged_at 'yesterday' is not" in results["leaver"].message
    assert results["denials"].status == "pass"


def test_both_sides_from_one_source(tmp_path):
    # a SCIM account created and deleted within the hour: both sides read the one scim_updates unit, whose
    # records come newest first, so the then side is buffered until the file is read
    rule = leaver(id="short-lived", first={"source": "scim_updates", "filter": {"request_method": "POST"}},
                  then={"source": "scim_updates", "filter": {"request_method": "DELETE"}},
                  join={"resource_user_email": "resource_user_email"}, within="1h", group_by=None)
    rows = [deleted("tmp@example.com", at="2026-11-12T10:30:00Z"),
            deleted("old@example.com", at="2026-11-12T10:30:00Z"),
            scim(request_method="POST", resource_user_email="TMP@example.com", logged_at="2026-11-12T10:00:00Z"),
            scim(request_method="POST", resource_user_email="old@example.com", logged_at="2026-11-11T10:00:00Z")]
    plan = compiled(tmp_path, rules_yaml(rule), config=CONFIG)
    assert len(plan.fetches) == 1 and len(plan.rules[0].fetch_keys) == 1
    result = run(tmp_path, rules_yaml(rule), None, rows)
    r = by_id(result)["short-lived"]
    assert r.status == "fail" and r.measurements[0].value == 1
    assert r.evidence[0]["then"]["resource_user_email"] == "tmp@example.com" and r.evidence[0]["delay_s"] == 1800


def test_rule_tests_feature_runs_correlation_cases(tmp_path):
    from auditor.run.ruletests import run_tests

    rule = leaver(tests=[
        {"name": "leaver signs in", "expect": "fail", "at": AT,
         "records": {"scim_updates": [deleted()], "access_requests": [signin()]}},
        {"name": "no leaver", "expect": "pass", "at": AT, "records": {"access_requests": [signin()]}},
    ])
    proj = project(tmp_path, rules_yaml(rule), config=CONFIG)
    assert proj.ok, [d.format() for d in proj.diagnostics]
    cases, found = run_tests(proj.rules, proj.config, parse_time(AT))
    assert not found and [(c.case.name, c.status, c.held) for c in cases] == [
        ("leaver signs in", "fail", True), ("no leaver", "pass", True)]


# --- reports ----------------------------------------------------------------------------------------------


@pytest.fixture
def document(tmp_path) -> dict[str, Any]:
    hostile = "<script>alert(1)</script>@example.com"
    result = run(tmp_path, rules_yaml(leaver(within="30d")),
                 [signin(), signin(at="2026-11-13T10:30:05Z"), signin(hostile)], [deleted(), deleted(hostile)])
    return result.to_json()


def test_html_shows_both_sides_join_value_and_delay(document):
    html = render(document, "html")
    assert "Evidence (3 sample matches: access_requests after scim_updates, joined on resource_user_email = "\
           "user_email, within 30d)" in html
    assert "<th>First: scim_updates</th>" in html and "<th>Then: access_requests</th>" in html
    assert "<td class=\"num delay\">19h</td>" in html and "<td class=\"num delay\">2d 20h 30m 5s</td>" in html
    assert "<dt>request_method</dt><dd>DELETE</dd>" in html and "<dt>app_domain</dt><dd>app.example.com</dd>" in html
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;@example.com" in html


def test_markdown_shows_both_sides_join_value_and_delay(document):
    md = render(document, "markdown")
    assert ("**Evidence:** access\\_requests records after a scim\\_updates record with equal "
            "resource\\_user\\_email = user\\_email, within 30d") in md
    assert "| Join value | First: scim\\_updates | Then: access\\_requests | Delay |" in md
    row = next(line for line in md.splitlines() if line.startswith("| dana@example.com |") and "19h" in line)
    assert "request\\_method: DELETE<br>" in row and "created\\_at: 2026-11-11T09:00:00Z<br>" in row
    assert row.endswith("| 19h |")
    assert "<script>" not in md


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_correlation_results(document, fmt):
    assert render(document, fmt)
    assert render(document, fmt, redact=True)


def test_redaction_reaches_both_sides(document):
    md = render(document, "markdown", redact=True)
    assert "dana@example.com" not in md and "d\\*\\*\\*@example.com" in md


# --- the starter pack on the sample data -----------------------------------------------------------------


def test_starter_rules_on_the_sample_data(monkeypatch):
    if not (REPO / "examples" / "data" / "scim_updates.json").exists():
        pytest.skip("sample data not generated")
    monkeypatch.chdir(REPO)
    proj = load_project(Inputs(paths=(REPO / "rules" / "correlation.yaml",), config_path=REPO / "auditor.yaml"))
    assert not [d for d in proj.diagnostics if "correlation.yaml" in str(d.location)], proj.diagnostics
    plan, found = compile_plan(list(proj.rules), proj.config, parse_time("2026-11-15T00:00:00Z"))
    assert not found
    result = run_plan(plan, SAMPLE, RunOptions())
    results = by_id(result)
    leaver_result = results["deprovisioned-user-signs-in"]
    assert leaver_result.status == "fail"
    assert [m.group for m in leaver_result.measurements if not m.ok] == [{"user_email": "dana.kowalski@example.com"}]
    assert leaver_result.measurements[0].value == 3
    assert {e["first"]["logged_at"] for e in leaver_result.evidence} == {"2026-11-10T14:22:07.000Z"}
    grant = results["admin-grant-used-within-an-hour"]
    assert grant.status == "fail" and grant.violations == 1
    assert grant.evidence[0]["first"]["resource_group_name"] == "IT-Admins"
    assert grant.evidence[0]["then"]["user_email"] == "jordan.miller@example.com"
    assert grant.evidence[0]["then"]["app_domain"] == "admin.example.com"
    # the day before the leaver's first sign-in after the DELETE: the 7-day rule passes; the 30-day one
    # reaches back before the sample's first day, where no data says whether someone left and signed in
    plan, _ = compile_plan(list(proj.rules), proj.config, parse_time("2026-11-11T00:00:00Z"))
    earlier = by_id(run_plan(plan, SAMPLE, RunOptions()))
    assert earlier["admin-grant-used-within-an-hour"].status == "pass"
    assert earlier["deprovisioned-user-signs-in"].status == "error"
    assert earlier["deprovisioned-user-signs-in"].message.startswith(
        "no scim_updates data covers 2026-10-12T00:00:00Z..2026-11-01T00:00:00Z of this rule's window")


def test_starter_rule_tests_hold(tmp_path):
    from auditor.run.ruletests import run_tests

    # the repo config's IdPs: the pack's fixtures name them
    idps = yaml.safe_load((REPO / "auditor.yaml").read_text())["scim_idp_ids"]
    write(tmp_path / "auditor.yaml", f"scim_idp_ids: [{', '.join(idps)}]\n")
    proj = load_project(Inputs(paths=(REPO / "rules" / "correlation.yaml",), config_path=tmp_path / "auditor.yaml"))
    assert proj.ok, [d.format() for d in proj.diagnostics]
    cases, found = run_tests(proj.rules, proj.config, parse_time(AT))
    assert not found and len(cases) >= 8
    assert all(c.held for c in cases), [c.line() for c in cases if not c.held]


# --- narrowing the `then` side (runs over the API re-plan it once the `first` side is read) ----------------


def _span(tmp_path: Path, firsts: list[dict], **changes: Any) -> tuple[int, int] | None:
    plan = compiled(tmp_path, rules_yaml(leaver(**changes)), config=CONFIG)
    e = CorrelationEvaluator(plan.rules[0])
    for r in firsts:
        e.feed_first(r, parse_time(r["logged_at"]))
    return e.then_span()


def test_then_span_starts_just_after_the_earliest_first_match(tmp_path):
    firsts = [deleted(at="2026-11-12T10:00:00Z"), deleted("bob@example.com", at="2026-11-10T14:00:00.5Z"),
              deleted("old@example.com", at="2026-11-01T00:00:00Z"),  # outside the 7-day window
              scim(request_method="PATCH", logged_at="2026-11-09T00:00:00Z")]  # filtered out
    assert _span(tmp_path, firsts) == (parse_time("2026-11-10T14:00:00.500001Z"), parse_time(AT))
    # `within`: at most that long after the latest match (inclusive)
    assert _span(tmp_path, firsts, within="1h") == (parse_time("2026-11-10T14:00:00.500001Z"),
                                                     parse_time("2026-11-12T11:00:00.000001Z"))


def test_then_span_is_none_without_first_matches(tmp_path):
    assert _span(tmp_path, []) is None
    assert _span(tmp_path, [deleted(resource_user_email="")]) is None  # no join value: can never match


def test_then_span_compiles_the_then_side_alone(tmp_path):
    """Re-planning: the `then` side over whole seconds of the span, the `first` side not fetched again."""
    proj = project(tmp_path, rules_yaml(leaver()), config=CONFIG)
    span = (parse_time("2026-11-10T14:00:00.500001Z"), parse_time("2026-11-12T11:00:00.000001Z"))
    full, problems = compile_plan(list(proj.rules), proj.config, parse_time(AT))
    assert problems == [] and full.narrows()
    plan = narrow(full, {"leaver": span})  # the planner step a run asks for once the first side is read
    (fetch,) = plan.fetches
    assert fetch.source == "access_requests"
    assert (fetch.since_us, fetch.until_us) == (parse_time("2026-11-10T13:59:59Z"), parse_time("2026-11-12T11:00:02Z"))
    (rule,) = plan.rules
    assert [s.name for s in rule.sides] == ["then"] and rule.fetch_keys == (fetch.key,)
    assert (rule.since_us, rule.until_us) == (parse_time("2026-11-08T12:00:00Z"), parse_time(AT))  # its window
