"""The JSON Schemas: well formed, agreeing with the tables, and their errors mapped to readable diagnostics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from auditor.core import resources
from auditor.core.fields import SOURCES
from auditor.load import schema
from auditor.load.loader import load_yaml

SCHEMAS = ["rules", "config"]


@pytest.mark.parametrize("name", SCHEMAS)
def test_schema_is_valid_draft_2020_12(name):
    document = json.loads(resources.schema_path(name).read_text())
    Draft202012Validator.check_schema(document)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_field_name_pattern_admits_every_field():
    pattern = schema.validator("rules").schema["$defs"]["field_name"]["pattern"]
    v = Draft202012Validator({"type": "string", "pattern": pattern})
    for source in SOURCES.values():
        for name in source.fields:
            assert v.is_valid(name), name


def test_definition_validator_checks_one_rule():
    rule = schema.definition_validator("rules", "rule")
    assert rule.is_valid({"id": "a", "title": "t", "source": "access_requests", "filter": {"allowed": False}})
    assert not rule.is_valid({"id": "a", "title": "t", "source": "access_requests", "filter": {"allowed": {}}})
    assert not rule.is_valid({"id": "A", "title": "t", "source": "access_requests"})


def test_did_you_mean():
    assert schema.did_you_mean("fitler", ["filter", "expect"]) == "did you mean 'filter'?"
    assert schema.did_you_mean("zzz", ["filter", "expect"]) is None


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _diagnose(tmp_path: Path, text: str, name: str = "rules"):
    path = tmp_path / "f.yaml"
    path.write_text(text, encoding="utf-8")
    doc, problems = load_yaml(path)
    assert problems == []
    return [d.format() for d in schema.validate_document(doc, name, "rule file" if name == "rules" else "config")]


RULE = "rules:\n  - id: a\n    title: t\n    source: access_requests\n"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("    filtr: {}\n", "f.yaml:5:5: error: unknown key 'filtr' in rule file rules[0]; did you mean 'filter'?"),
        ("    filter: {user_email: {contians: x}}\n",
         "f.yaml:5:27: error: unknown operator 'contians' in rule file rules[0].filter.user_email; "
         "did you mean 'contains'?"),
        ("    severity: hgh\n",
         "f.yaml:5:15: error: rules[0].severity: 'hgh' is not one of info, low, medium, high, critical; "
         "did you mean 'high'?"),
        ("    evidence: many\n", "f.yaml:5:15: error: rules[0].evidence: expected an integer, got a string"),
        ("    evidence: 101\n", "f.yaml:5:15: error: rules[0].evidence: 101 is greater than the maximum of 100"),
        ("    window: 1y\n",
         "f.yaml:5:13: error: rules[0].window: '1y' must be a duration: an integer and s, m, h, d or w "
         "(e.g. 90m, 24h, 30d)"),
        ("    filter: {allowed: {}}\n", "f.yaml:5:23: error: rules[0].filter.allowed: must not be empty"),
        ("    filter: {user_email: {contains: 5}}\n",
         "f.yaml:5:37: error: rules[0].filter.user_email.contains: expected a string, got a number"),
        ("    expect: {count: {max: 1.5}}\n",
         "f.yaml:5:27: error: rules[0].expect.count.max: expected an integer, got a number"),
        ("    expect: {ratio: {where: {allowed: true}, max: 2}}\n",
         "f.yaml:5:51: error: rules[0].expect.ratio.max: 2 is greater than the maximum of 1"),
        ("    expect: {distinct: {max: 2}}\n",
         "f.yaml:5:24: error: missing required key 'field' in rule file rules[0].expect.distinct"),
    ],
)
def test_rule_schema_errors(tmp_path, extra, expected):
    assert _diagnose(tmp_path, RULE + extra) == [expected]


def test_id_pattern_and_required_keys(tmp_path):
    assert _diagnose(tmp_path, "rules:\n  - id: Bad_Id\n    title: t\n    source: access_requests\n") == [
        "f.yaml:2:9: error: rules[0].id: 'Bad_Id' must be lowercase letters, digits, '_', '.', '-' "
        "(starting with a letter or digit)"]
    assert _diagnose(tmp_path, "rules:\n  - id: a\n    source: access_requests\n") == [
        "f.yaml:2:5: error: missing required key 'title' in rule file rules[0]"]
    assert _diagnose(tmp_path, "- a\n") == ["f.yaml:1:1: error: top level: expected a mapping, got a list"]


def test_unknown_key_without_close_match_lists_allowed(tmp_path):
    (line,) = _diagnose(tmp_path, "rules: []\nzzz: 1\n")
    assert line == "f.yaml:2:1: error: unknown key 'zzz' in rule file top level; allowed: rules"


def test_config_schema_errors(tmp_path):
    lines = _diagnose(tmp_path, "pushdwn: all\nper_page: 5000\npushdown: some\nvariables:\n  x: {defualt: 1}\n",
                      "config")
    assert lines == [
        "f.yaml:1:1: error: unknown key 'pushdwn' in config top level; did you mean 'pushdown'?",
        "f.yaml:2:11: error: per_page: 5000 is greater than the maximum of 1000",
        "f.yaml:3:11: error: pushdown: 'some' is not one of all, documented",
        "f.yaml:5:7: error: unknown key 'defualt' in config variables.x; did you mean 'default'?",
    ]


def test_errors_come_in_file_order(tmp_path):
    text = RULE + "    severity: hgh\n  - id: B\n    title: t\n    source: nope\n"
    lines = _diagnose(tmp_path, text)
    assert [ln.split(": error")[0] for ln in lines] == ["f.yaml:5:15", "f.yaml:6:9", "f.yaml:8:13"]
