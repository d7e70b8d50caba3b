"""Heartbeats with for_each: declared groups exist with count 0, so `min` catches the silent one."""

from __future__ import annotations

import pytest

from tests.helpers import outcome, project, rule_yaml, scim

IDPS = ["okta", "azure", "google"]


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def heartbeat(tmp_path, records, **extra):
    return outcome(tmp_path, records, source="scim_updates", window="24h", group_by="idp_id",
                   for_each={"idp_id": IDPS}, expect={"count": {"min": 1}}, **extra)


def test_silent_listed_group_fails_with_count_zero(tmp_path):
    result = heartbeat(tmp_path, [scim(idp_id="okta"), scim(idp_id="azure"), scim(idp_id="okta")])
    assert result.status == "fail"
    assert result.violations == 1
    assert [(m.group, m.value, m.ok) for m in result.measurements] == [
        ({"idp_id": "google"}, 0, False), ({"idp_id": "azure"}, 1, True), ({"idp_id": "okta"}, 2, True)]
    assert result.groups == (({"idp_id": "google"}, 0),)  # the waiver view: no records covered
    assert "count 0 (min 1) for idp_id=google" in result.message


def test_every_listed_group_present_passes(tmp_path):
    result = heartbeat(tmp_path, [scim(idp_id=i) for i in IDPS])
    assert result.status == "pass"


def test_without_for_each_the_silent_group_is_invisible(tmp_path):
    result = outcome(tmp_path, [scim(idp_id="okta")], source="scim_updates", group_by="idp_id",
                     expect={"count": {"min": 1}}, config="scim_idp_ids: [okta, azure]\n")
    assert result.status == "pass"


def test_no_records_at_all_fails_every_listed_group(tmp_path):
    result = heartbeat(tmp_path, [])
    assert result.violations == 3
    assert sorted(m.group["idp_id"] for m in result.measurements) == sorted(IDPS)


def test_for_each_with_a_second_group_by_field(tmp_path):
    result = outcome(tmp_path, [scim(idp_id="okta", resource_type="USER")], source="scim_updates",
                     group_by=["idp_id", "resource_type"], for_each={"idp_id": ["okta", "azure"]},
                     expect={"count": {"min": 1}})
    assert [(m.group, m.value) for m in result.measurements] == [
        ({"idp_id": "azure", "resource_type": None}, 0), ({"idp_id": "okta", "resource_type": "USER"}, 1)]


def test_for_each_values_from_a_variable_and_idp_pushdown(tmp_path):
    from auditor.compile.compiler import compile_plan
    from auditor.core.timeutil import parse_time

    rules = rule_yaml(source="scim_updates", group_by="idp_id", for_each={"idp_id": "${var.idps}"},
                      expect={"count": {"min": 1}})
    proj = project(tmp_path, rules, config="variables:\n  idps: {default: [okta, azure]}\n")
    assert proj.ok, [d.format() for d in proj.diagnostics]  # idp_id from for_each: no scim_idp_ids needed
    assert proj.rules[0].for_each == (("idp_id", ("okta", "azure")),)
    plan, _ = compile_plan(list(proj.rules), proj.config, parse_time("2026-11-15T12:00:00Z"))
    assert plan.fetches[0].filter_params() == [("idp_id", "azure"), ("idp_id", "okta")]


@pytest.mark.parametrize(("extra", "message"), [
    ({"group_by": "idp_id", "for_each": {"status": ["SUCCESS"]}},
     "rules/rules.yaml:9:5: error: for_each field 'status' is not a group_by field; add it to group_by (now: idp_id)"),
    ({"for_each": {"idp_id": ["okta"]}},
     "rules/rules.yaml:8:5: error: for_each field 'idp_id' is not a group_by field; add it to group_by (now: none)"),
    ({"group_by": "idp_id", "for_each": {"idp_id": []}},
     "rules/rules.yaml:9:13: error: rules[0].for_each.idp_id: [] should be non-empty"),
    ({"group_by": "status", "for_each": {"status": ["success"]}},
     "rules/rules.yaml:10:7: error: 'status' is never 'success': the API only has FAILURE, SUCCESS (values are "
     "case-sensitive); write 'SUCCESS'"),
    ({"group_by": "idp_id", "for_each": {"idp_ids": ["okta"]}},
     "rules/rules.yaml:9:5: error: unknown field 'idp_ids' for source scim_updates; did you mean 'idp_id'?"),
])
def test_for_each_validation(tmp_path, extra, message):
    text = rule_yaml(source="scim_updates", filter={"idp_id": "okta"}, **extra)
    assert [d.format() for d in project(tmp_path, text).diagnostics] == [message]
