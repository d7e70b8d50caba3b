"""schemas/results.schema.json: a valid 2020-12 schema that accepts real results and rejects drift."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from auditor.core.resources import schema_path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "results"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(schema_path("results").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def errors(validator: jsonschema.Draft202012Validator, document: dict) -> list[str]:
    return [error.message for error in validator.iter_errors(document)]


def test_schema_declares_2020_12() -> None:
    schema = json.loads(schema_path("results").read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("name", ["sample", "hostile"])
def test_fixtures_are_valid(validator, name) -> None:
    assert errors(validator, load(name)) == []


def test_fixtures_cover_every_status_and_source() -> None:
    results = load("sample")["results"] + load("hostile")["results"]
    assert {r["status"] for r in results} == {"pass", "fail", "waived", "error"}
    assert {r["source"] for r in results} == {"access_requests", "scim_updates", "correlation"}
    assert {load("sample")["source"], load("hostile")["source"]} == {"api", "files"}
    assert any("timeline" in r for r in results)


def _mutate(path: list, value, *, delete: bool = False) -> dict:
    document = copy.deepcopy(load("sample"))
    target = document
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["version"], 2),
        (["source"], "web"),
        (["extra"], True),
        (["tool", "extra"], 1),
        (["summary", "exit_code"], 3),
        (["summary", "extra"], 0),
        (["results", 0, "status"], "skipped"),
        (["results", 0, "severity"], "urgent"),
        (["results", 0, "source"], "gateway"),
        (["results", 0, "extra"], 1),
        (["results", 0, "line"], 0),
        (["results", 0, "window", "extra"], "x"),
        (["results", 0, "measurements", 0, "expectation"], "sum"),
        (["results", 0, "measurements", 0, "extra"], 1),
        (["results", 0, "measurements", 0, "value"], "47"),
        (["results", 0, "measurements", 0, "group"], {"user_email": {"nested": 1}}),
        (["results", 0, "timeline"], [{"at": "2026-11-20T00:00:00Z", "status": "pass", "violations": 0, "x": 1}]),
        (["results", 0, "evidence"], ["not an object"]),
        (["provenance", "rules_sha256"], "abc"),
        (["provenance", "requests", 0, "extra"], 1),
        (["warnings"], [1]),
    ],
)
def test_drift_is_rejected(validator, path, value) -> None:
    assert errors(validator, _mutate(path, value))


@pytest.mark.parametrize(
    "path",
    [
        ["version"],
        ["summary"],
        ["provenance"],
        ["results", 0, "fetch"],
        ["summary", "duration_s"],
        ["results", 0, "measurements", 0, "ok"],
        ["provenance", "requests", 0, "sha256"],
    ],
)
def test_required_keys(validator, path) -> None:
    assert errors(validator, _mutate(path, None, delete=True))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["account_id"], None),
        (["provenance", "waivers_sha256"], None),
        (["provenance", "config_sha256"], None),
        (["results", 0, "description"], None),
        (["results", 0, "remediation"], None),
        (["results", 0, "baseline"], "new"),
        (["results", 0, "measurements", 0, "value"], None),
        (["results", 0, "waiver"], {"justification": "j", "owner": "o@example.com", "expires": "2027-01-01"}),
        (["provenance", "requests", 0, "status"], None),
    ],
)
def test_optional_and_nullable_values(validator, path, value) -> None:
    assert errors(validator, _mutate(path, value)) == []
