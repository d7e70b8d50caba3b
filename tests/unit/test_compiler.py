"""Compiler and plan: pushdown per cloudflare-api.md, fields projection, shared and served fetches, plan JSON."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
import yaml

from auditor.compile.compiler import compile_plan
from auditor.compile.plan import Fetch, PushedFilter
from auditor.core.timeutil import parse_time
from auditor.sources.cloudflare.parts import Ask
from tests.helpers import T, access, outcomes, project, rule_yaml
from tests.helpers import compiled as compiled_with


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def compiled(tmp_path, rules: str, *, config: str = "", **kwargs):
    """Load and compile under `pushdown: all` (unless the config says otherwise): these tests are about what the
    planner does with what the API can express; the conservative default is tested at the end."""
    config = config if "pushdown:" in config else "pushdown: all\n" + config
    return compiled_with(tmp_path, rules, config=config, **kwargs)


def rules_yaml(*rules: dict) -> str:
    full = [{"title": "t", "source": "access_requests", **r} for r in rules]
    return yaml.safe_dump({"rules": full}, sort_keys=False)


def filter_params(tmp_path, config: str = "pushdown: all\n", **rule) -> list[tuple[str, str]]:
    """The pushed filter parameters of one rule's fetch (by default under `pushdown: all`: all it can express)."""
    plan = compiled(tmp_path, rule_yaml(**rule), config=config)
    (fetch,) = plan.fetches
    return fetch.filter_params()


@pytest.mark.parametrize(
    ("filter_", "params"),
    [
        ({"allowed": False}, [("allowed", "false"), ("allowedOp", "eq")]),
        ({"allowed": {"neq": True}}, [("allowed", "true"), ("allowedOp", "neq")]),
        ({"app_uid": "u1"}, [("app_uid", "u1"), ("app_uidOp", "eq")]),
        ({"app_uid": ["u1"]}, [("app_uid", "u1"), ("app_uidOp", "eq")]),  # one-element in = eq
        ({"app_uid": {"not_in": ["u1"]}}, [("app_uid", "u1"), ("app_uidOp", "neq")]),
        ({"app_uid": ["u1", "u2"]}, []),  # the API has no one-of for these: local only
        ({"country": "US"}, [("country_code", "US"), ("country_codeOp", "eq")]),
        ({"ray_id": {"neq": "r"}}, [("ray_id", "r"), ("ray_idOp", "neq")]),
        ({"app_type": "ssh"}, [("app_type", "ssh"), ("app_typeOp", "eq")]),
        ({"user_email": "a@x.com"}, [("email", "a@x.com"), ("email_exact", "true")]),
        ({"user_email": {"neq": "a@x.com"}}, [("email", "a@x.com"), ("email_exact", "true"), ("emailOp", "neq")]),
        ({"user_email": {"contains": "@x.com"}}, [("email", "@x.com"), ("emailOp", "contains")]),
        ({"user_email": {"not_contains": "@x.com"}}, []),
        ({"user_email": {"matches": "x"}}, []),
        ({"user_email": {"contains": "@x.com", "not_in": ["a@x.com"]}}, [("email", "@x.com"), ("emailOp", "contains")]),
        ({"ip_address": {"cidr": "10.0.0.0/8"}}, []),
        ({"action": "login", "connection": "saml", "app_domain": "a"}, []),
        ({"country": {"exists": True}}, []),
    ],
)
def test_access_requests_pushdown(tmp_path, filter_, params):
    assert filter_params(tmp_path, filter=filter_) == params


@pytest.mark.parametrize(
    ("filter_", "params"),
    [
        ({"idp_id": "i1"}, [("idp_id", "i1")]),
        ({"idp_id": ["i2", "i1"], "status": "FAILURE"}, [("idp_id", "i1"), ("idp_id", "i2"), ("status", "FAILURE")]),
        ({"idp_id": "i1", "request_method": ["DELETE", "PATCH"], "resource_type": {"in": ["USER"]}},
         [("idp_id", "i1"), ("request_method", "DELETE"), ("request_method", "PATCH"), ("resource_type", "USER")]),
        ({"idp_id": "i1", "resource_user_email": "a@x.com", "cf_resource_id": "c", "idp_resource_id": "r",
          "resource_group_name": "g"},
         [("cf_resource_id", "c"), ("idp_id", "i1"), ("idp_resource_id", "r"), ("resource_group_name", "g"),
          ("resource_user_email", "a@x.com")]),
        ({"idp_id": "i1", "status": {"neq": "SUCCESS"}}, [("idp_id", "i1")]),  # no negation in the API
        ({"idp_id": "i1", "error_description": {"exists": True}}, [("idp_id", "i1")]),
    ],
)
def test_scim_pushdown_repeated_keys(tmp_path, filter_, params):
    assert filter_params(tmp_path, source="scim_updates", filter=filter_) == params


def test_scim_idp_id_from_config(tmp_path):
    assert filter_params(tmp_path, config="scim_idp_ids: [b, a]\n", source="scim_updates") == [
        ("idp_id", "a"), ("idp_id", "b")]
    # the rule's own idp_id wins over the config's
    assert filter_params(tmp_path, config="scim_idp_ids: [b]\n", source="scim_updates",
                         filter={"idp_id": "z"}) == [("idp_id", "z")]
    # a negated idp_id cannot be sent: the config's list is
    assert filter_params(tmp_path, config="scim_idp_ids: [b]\n", source="scim_updates",
                         filter={"idp_id": {"neq": "z"}}) == [("idp_id", "b")]


def test_pushdown_documented_sends_only_documented_params(tmp_path):
    config = "pushdown: documented\n"
    flt = {"allowed": False, "country": "US", "app_uid": "u", "ray_id": "r", "user_email": {"contains": "@x"}}
    assert filter_params(tmp_path, config=config, filter=flt) == [("email", "@x"), ("emailOp", "contains")]
    assert filter_params(tmp_path, config=config, source="scim_updates",
                         filter={"idp_id": "i", "status": "FAILURE"}) == [("idp_id", "i"), ("status", "FAILURE")]
    plan = compiled(tmp_path, rule_yaml(filter=flt), config=config)
    assert plan.to_json()["pushdown"] == "documented"
    assert [c.field for c in plan.rules[0].local] == ["allowed", "country", "app_uid", "ray_id"]


def test_query_time_range_paging_and_projection(tmp_path):
    plan = compiled(tmp_path, rule_yaml(window="1h", filter={"allowed": False}, group_by="app_uid", evidence=0))
    (fetch,) = plan.fetches
    ask = Ask.of(fetch)  # the request shape is the API client's (auditor.sources.cloudflare.parts)
    query = ask.query()
    assert query[:5] == [("since", "2026-11-15T10:59:59Z"), ("until", "2026-11-15T12:00:01Z"),
                         ("direction", "asc"), ("limit", str(ask.limit)), ("per_page", "1000")]
    # only what the run needs: filter, grouping and the record time (no evidence shown)
    assert dict(query)["fields"] == "allowed,app_uid,created_at"
    assert ("page", "3") in ask.query(page=3)
    rule = plan.rules[0]
    assert (rule.since_us, rule.until_us) == (parse_time("2026-11-15T11:00:00Z"), parse_time(T))


def test_scim_updates_gets_no_fields_parameter(tmp_path):
    # cloudflare-api.md documents `fields` for access_requests only; SCIM answers carry every field.
    plan = compiled(tmp_path, rule_yaml(source="scim_updates", filter={"idp_id": "i"}, evidence=0))
    assert plan.fetches[0].fields == () and "fields" not in dict(Ask.of(plan.fetches[0]).query())


def test_projection_includes_evidence_fields_and_expectation_fields(tmp_path):
    plan = compiled(tmp_path, rule_yaml(expect={"distinct": {"field": "app_type", "max": 1},
                                                "ratio": {"where": {"app_uid": "u"}, "max": 1}}))
    fields = plan.fetches[0].fields
    assert {"app_type", "app_uid", "created_at", "user_email", "ip_address", "ray_id", "country"} <= set(fields)
    assert fields == tuple(f for f in ("action", "allowed", "app_domain", "app_uid", "connection", "created_at",
                                       "ip_address", "ray_id", "user_email", "country", "app_type") if f in fields)


def test_equal_fetches_are_shared(tmp_path):
    text = rules_yaml(
        {"id": "a", "filter": {"allowed": False}, "group_by": "user_email"},
        {"id": "b", "filter": {"allowed": False, "ip_address": {"cidr": "10.0.0.0/8"}}, "evidence": 0},
        {"id": "c", "filter": {"allowed": True}},
    )
    plan = compiled(tmp_path, text)
    assert len(plan.fetches) == 2
    by_rule = {r.rule.id: r.fetch_key for r in plan.rules}
    assert by_rule["a"] == by_rule["b"] != by_rule["c"]
    doc = plan.to_json()
    assert sorted(f["rules"] for f in doc["fetches"]) == [["a", "b"], ["c"]]
    shared = plan.fetch(by_rule["a"])
    assert "ip_address" in shared.fields and "user_email" in shared.fields  # union of both rules' needs


def test_scim_fetches_over_the_same_idps_merge_into_the_longest(tmp_path):
    text = rules_yaml(
        {"id": "fail", "source": "scim_updates", "window": "1d", "filter": {"idp_id": "i", "status": "FAILURE"}},
        {"id": "del", "source": "scim_updates", "window": "7d", "filter": {"idp_id": "i", "request_method": "DELETE"}},
        {"id": "other-idp", "source": "scim_updates", "window": "1d", "filter": {"idp_id": "j"}},
        {"id": "access-a", "window": "1d", "filter": {"allowed": False}},
        {"id": "access-b", "window": "7d", "filter": {"allowed": True}},
    )
    plan = compiled(tmp_path, text)
    by_rule = {r.rule.id: r.fetch_key for r in plan.rules}
    assert by_rule["fail"] == by_rule["del"] != by_rule["other-idp"]
    merged = plan.fetch(by_rule["fail"])
    # only the IdP is sent: status and method differ between the two rules and are checked locally
    assert merged.filter_params() == [("idp_id", "i")]
    assert merged.until_us - merged.since_us == 7 * 86400 * 10**6 + 2 * 10**6
    assert by_rule["access-a"] != by_rule["access-b"]  # access logs are large: no merging
    assert len(plan.fetches) == 4


def test_contained_fetch_served_by_wider_one(tmp_path):
    text = rules_yaml(
        {"id": "wide", "window": "7d"},
        {"id": "narrow", "window": "1h", "filter": {"allowed": False}},
        {"id": "other-source", "source": "scim_updates", "window": "1h", "filter": {"idp_id": "i"}},
    )
    plan = compiled(tmp_path, text)
    assert len(plan.fetches) == 2
    narrow = next(r for r in plan.rules if r.rule.id == "narrow")
    wide = next(r for r in plan.rules if r.rule.id == "wide")
    assert narrow.fetch_key == wide.fetch_key
    assert narrow.pushed == ()  # served by an unfiltered fetch: everything runs locally
    assert [c.describe() for c in narrow.local] == ["allowed eq false"]
    assert (narrow.since_us, narrow.until_us) == (parse_time("2026-11-15T11:00:00Z"), parse_time(T))
    assert "allowed" in plan.fetch(narrow.fetch_key).fields


def test_serving_never_changes_the_answer(tmp_path):
    records = [access(allowed=False, created_at="2026-11-15T11:30:00Z"),
               access(allowed=True, created_at="2026-11-15T11:40:00Z"),
               access(allowed=False, created_at="2026-11-14T11:40:00Z")]
    narrow = {"id": "narrow", "window": "1h", "filter": {"allowed": False}, "expect": {"count": {"max": 10}}}
    alone = outcomes(compiled(tmp_path, rules_yaml(narrow)), records)["narrow"]
    served = outcomes(compiled(tmp_path, rules_yaml({"id": "wide", "window": "7d"}, narrow)), records)["narrow"]
    assert alone.measurements == served.measurements
    assert served.matched == 1


def test_filters_must_imply_to_serve(tmp_path):
    text = rules_yaml(
        {"id": "a", "source": "scim_updates", "window": "7d", "filter": {"idp_id": ["i1", "i2"]}},
        {"id": "b", "source": "scim_updates", "window": "1h", "filter": {"idp_id": "i1", "status": "FAILURE"}},
        {"id": "c", "source": "scim_updates", "window": "1h", "filter": {"idp_id": "i3"}},
        {"id": "d", "window": "1h", "filter": {"allowed": True}},
        {"id": "e", "window": "2h", "filter": {"allowed": False}},
    )
    plan = compiled(tmp_path, text)
    key = {r.rule.id: r.fetch_key for r in plan.rules}
    assert key["a"] == key["b"]  # {i1} with status implies {i1, i2}
    assert key["c"] != key["a"]
    assert key["d"] != key["e"]  # allowed=true is not implied by allowed=false
    assert len(plan.fetches) == 4


def test_pushdown_implies_and_contains():
    arr_small = PushedFilter("idp_id", (("idp_id", "a"),), array=True)
    arr_big = PushedFilter("idp_id", (("idp_id", "a"), ("idp_id", "b")), array=True)
    assert arr_small.implies(arr_big) and not arr_big.implies(arr_small)
    pair = PushedFilter("allowed", (("allowed", "false"), ("allowedOp", "eq")))
    assert pair.implies(pair) and not pair.implies(arr_big)
    wide = Fetch("scim_updates", 0, 100, (arr_big,))
    inner = Fetch("scim_updates", 10, 90, (arr_small,))
    assert wide.contains(inner) and not inner.contains(wide)
    assert not Fetch("access_requests", 0, 100, ()).contains(Fetch("scim_updates", 10, 90, ()))
    assert not wide.contains(Fetch("scim_updates", 10, 101, (arr_small,)))
    assert Fetch("scim_updates", 0, 1, (arr_big,), fields=("x",)).key == Fetch("scim_updates", 0, 1, (arr_big,)).key


def test_empty_window_at_reference_time_is_a_problem(tmp_path):
    proj = project(tmp_path, rule_yaml(since="2026-12-01T00:00:00Z"))
    assert proj.ok
    plan, problems = compile_plan(list(proj.rules), proj.config, parse_time(T))
    assert [p.format() for p in problems] == [
        "rules/rules.yaml:2:3: error: rule 'r': its window is empty at the reference time (since is not before until)"]
    assert plan.rules == ()


def test_plan_json_shape(tmp_path):
    text = rules_yaml({"id": "a", "filter": {"allowed": False, "ip_address": {"cidr": "10.0.0.0/8"}}},
                      {"id": "b", "source": "scim_updates", "filter": {"idp_id": ["i1", "i2"]}})
    plan = compiled(tmp_path, text, account_id="abc123")
    neutral = plan.to_json()  # what is read, whatever the backend: no request shape
    assert all(set(f) == {"key", "source", "since", "until", "filters", "fields", "rules"} for f in neutral["fetches"])
    doc = plan.to_json(lambda f: Ask.of(f).to_json(plan.account_id))  # over the API, `plan --json`
    assert doc["version"] == 1 and doc["format"] == 2 and doc["backend"] == "cloudflare"
    assert doc["reference_time"] == T
    assert {"version", "reference_time", "fetches", "rules"} <= set(doc)
    for f in doc["fetches"]:
        assert {"key", "source", "path", "query", "rules"} <= set(f)
    for r in doc["rules"]:
        assert {"id", "fetch", "local"} <= set(r)
    fetches = {f["source"]: f for f in doc["fetches"]}
    assert fetches["access_requests"]["path"] == "/client/v4/accounts/abc123/access/logs/access_requests"
    assert fetches["scim_updates"]["path"] == "/client/v4/accounts/abc123/access/logs/scim/updates"
    scim_query = parse_qsl(fetches["scim_updates"]["query"])
    assert [v for k, v in scim_query if k == "idp_id"] == ["i1", "i2"]
    assert ("allowed", "false") in parse_qsl(fetches["access_requests"]["query"])
    rules = {r["id"]: r for r in doc["rules"]}
    assert rules["a"]["local"] == ['ip_address cidr "10.0.0.0/8"']
    assert rules["a"]["fetch"] == fetches["access_requests"]["key"]
    assert rules["b"]["local"] == []
    assert Ask.of(plan.fetches[0]).describe("abc123").startswith("GET /client/v4/accounts/abc123/access/logs/")
    assert plan.fetches[0].describe().startswith("access_requests 2026-")


def test_plan_is_deterministic(tmp_path):
    text = rules_yaml({"id": "a", "window": "1h"}, {"id": "b", "window": "2h", "filter": {"allowed": False}},
                      {"id": "c", "source": "scim_updates", "filter": {"idp_id": "x"}})
    first = compiled(tmp_path, text).to_json()
    assert compiled(tmp_path, text).to_json() == first
    assert compiled(tmp_path, text, at="2026-11-16T12:00:00Z").to_json()["fetches"][0]["key"] != \
        first["fetches"][0]["key"]


def test_a_fetch_widens_over_an_overlapping_one_that_differs_by_allowed_true(tmp_path):
    """Allowed sign-ins are most of an Access log: an unfiltered 7-day fetch widens to the 30 days an
    allowed=true rule needs, so the overlap is read once; narrower filters never widen another fetch."""
    recent = {"id": "recent-all", "window": "7d", "filter": {"action": "login"}}
    plan = compiled(tmp_path, rules_yaml(recent, {"id": "month-allowed", "window": "30d", "filter": {"allowed": True}},
                                         {"id": "far-allowed", "since": "2026-09-01T00:00:00Z",
                                          "until": "2026-09-02T00:00:00Z", "filter": {"allowed": True}}))
    key = {r.rule.id: r.fetch_key for r in plan.rules}
    wide = plan.fetch(key["recent-all"])
    assert key["month-allowed"] == key["recent-all"] and wide.filter_params() == []
    assert (wide.since_us, wide.until_us) == (parse_time("2026-10-16T11:59:59Z"), parse_time("2026-11-15T12:00:01Z"))
    assert key["far-allowed"] != key["recent-all"]  # a gap between the ranges: reading it would cost
    for narrow in ({"allowed": False}, {"user_email": "a@x.com", "allowed": True}, {"app_uid": "u1"}):
        plan = compiled(tmp_path, rules_yaml(recent, {"id": "month", "window": "30d", "filter": narrow}))
        assert [f.until_us - f.since_us for f in plan.fetches] == [30 * 86400 * 10**6 + 2 * 10**6,
                                                                   7 * 86400 * 10**6 + 2 * 10**6], narrow


def test_equal_filters_over_overlapping_ranges_read_the_overlap_once(tmp_path):
    text = rules_yaml(
        {"id": "a", "since": "2026-11-10T00:00:00Z", "until": "2026-11-12T00:00:00Z", "filter": {"allowed": False}},
        {"id": "b", "since": "2026-11-11T00:00:00Z", "until": "2026-11-13T00:00:00Z", "filter": {"allowed": False}},
    )
    plan = compiled(tmp_path, text)
    (fetch,) = plan.fetches
    assert (fetch.since_us, fetch.until_us) == (parse_time("2026-11-09T23:59:59Z"), parse_time("2026-11-13T00:00:01Z"))


def test_pushdown_is_asked_of_the_backends_table(tmp_path):
    # The planner asks a table (auditor.compile.pushdown): files push nothing down, every condition is local.
    from auditor.compile.pushdown import CLOUDFLARE, FILES, Target
    from auditor.core.model import PushdownScope

    proj = project(tmp_path, rule_yaml(filter={"allowed": False, "user_email": "a@x.com"}))
    api, _ = compile_plan(list(proj.rules), proj.config, parse_time(T), target=Target(CLOUDFLARE, PushdownScope.ALL))
    files, _ = compile_plan(list(proj.rules), proj.config, parse_time(T), target=Target(FILES))
    assert [c.field for c in api.rules[0].pushed] == ["allowed", "user_email"] and api.rules[0].local == ()
    assert files.rules[0].pushed == () and [c.field for c in files.rules[0].local] == ["allowed", "user_email"]
    assert files.fetches[0].filter_params() == []


def test_the_default_scope_sends_only_declared_parameters_and_fields(tmp_path):
    # No `pushdown:` key: only what the published schema declares; `fields` only with declared fields.
    flt = {"allowed": False, "country": "US", "app_uid": "u", "ray_id": "r", "app_type": "ssh",
           "user_email": {"contains": "@x"}}
    plan = compiled_with(tmp_path, rule_yaml(filter=flt, evidence=0))
    (fetch,) = plan.fetches
    assert plan.pushdown.value == "documented"
    assert fetch.filter_params() == [("email", "@x"), ("emailOp", "contains")]
    assert fetch.fields == ()  # the rule reads country and app_type, which the record schema lacks
    declared = compiled_with(tmp_path, rule_yaml(filter={"allowed": False}, group_by="app_uid", evidence=0))
    assert declared.fetches[0].fields == ("allowed", "app_uid", "created_at")


def test_a_profile_decides_the_undeclared_pushdowns(tmp_path):
    from auditor.compile.pushdown import CLOUDFLARE, Proof, Target
    from auditor.core.model import PushdownScope

    proj = project(tmp_path, rule_yaml(filter={"allowed": False, "app_uid": "u", "user_email": {"contains": "@x"},
                                               "country": "US"}, evidence=0))
    proof = Proof(proven=frozenset({"allowed", "fields=country"}), refused=frozenset({"app_uid", "emailOp=contains"}))
    for scope in PushdownScope:
        plan, _ = compile_plan(list(proj.rules), proj.config, parse_time(T), target=Target(CLOUDFLARE, scope, proof))
        (fetch,) = plan.fetches
        sent = {k for k, _ in fetch.filter_params()}
        assert "allowed" in sent and "app_uid" not in sent and "email" not in sent  # refused: never sent
        assert "country" in fetch.fields
        # Only the default scope owes them to the profile; `pushdown: all` would send them anyway.
        assert plan.proven == (("allowed", "fields=country") if scope is PushdownScope.DOCUMENTED else ())
