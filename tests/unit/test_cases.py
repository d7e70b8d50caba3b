"""Data-driven cases: each YAML file under tests/cases/ holds rules, records and the expected outcome.

Format (see tests/cases/README.md):

    at: 2026-11-15T12:00:00Z          # reference time for the file's cases (optional)
    cases:
      - name: what the case shows
        config: {scim_idp_ids: [...]}  # optional auditor.yaml
        rule: {source: ..., filter: ..., expect: ...}   # id and title are filled in
        records: [{field: value, ...}]  # merged over a realistic record of the rule's source;
                                        # the value "<absent>" removes a field
        expect:
          status: pass | fail | error
          matched: N                   # records that passed window and filter
          violations: N
          measurements: [{...}]        # each a subset of the result's measurement, same count
          evidence: [{...}]            # each a subset of an evidence record, same count
          message: text                # a substring of the result message
          errors: [text, ...]          # validation: each a substring of one diagnostic line, same count
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from auditor.compile.compiler import compile_plan
from auditor.core.coverage import COMPLETE
from auditor.core.timeutil import parse_time
from auditor.load.validate import Inputs, load_project
from auditor.run.runner import RunOptions
from auditor.run.runner import run as run_plan
from auditor.sources.files import FileSource
from tests.helpers import outcomes, record_for, write, write_ndjson

CASES_DIR = Path(__file__).resolve().parents[1] / "cases"
DEFAULT_AT = "2026-11-15T12:00:00Z"


class _TextTimes(yaml.SafeLoader):
    """Keeps timestamps as the text written, as the rule loader does."""


_TextTimes.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _collect() -> list[Any]:
    params = []
    for path in sorted(CASES_DIR.glob("*.yaml")):
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_TextTimes)
        for index, case in enumerate(document["cases"]):
            case = {"at": document.get("at", DEFAULT_AT), **case}
            params.append(pytest.param(case, id=f"{path.stem}:{index}:{case['name']}"))
    return params


def _subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _subset(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, float) or isinstance(actual, float):
        return isinstance(actual, int | float) and abs(actual - expected) < 1e-9
    return expected == actual and type(expected) is type(actual)


@pytest.mark.parametrize("case", _collect())
def test_case(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rule = {"id": "case", "title": case["name"], **case["rule"]}
    write(tmp_path / "rules" / "case.yaml", yaml.safe_dump({"rules": [rule]}, sort_keys=False))
    config = write(tmp_path / "auditor.yaml", yaml.safe_dump(case.get("config") or {}))
    project = load_project(Inputs(paths=(tmp_path / "rules",), config_path=config))
    expect = case["expect"]
    if "errors" in expect:
        lines = [d.format() for d in project.diagnostics]
        assert len(lines) == len(expect["errors"]), lines
        for wanted, line in zip(expect["errors"], lines, strict=True):
            assert wanted in line, (wanted, line)
        return
    assert project.ok, [d.format() for d in project.diagnostics]
    plan, problems = compile_plan(list(project.rules), project.config, parse_time(case["at"]))
    assert not problems, [p.format() for p in problems]
    source = rule["source"]
    records = [record_for(source, r) for r in case.get("records", [])]
    write_ndjson(tmp_path / "data" / f"{source}.ndjson", records)
    (result,) = run_plan(plan, FileSource(tmp_path / "data", None), RunOptions(coverage=COMPLETE)).results
    doc = result.to_json()
    assert doc["status"] == expect["status"], doc["message"]
    # the in-memory evaluator gives the same answer as the file runner, and says how many records matched
    if doc["status"] == "error":
        assert "message" in expect or "status" in expect
        if "message" in expect:
            assert expect["message"] in doc["message"], doc["message"]
        return
    direct = outcomes(plan, records)["case"]
    assert (direct.status, [m.to_json() for m in direct.measurements]) == (doc["status"], doc["measurements"])
    if "matched" in expect:
        assert direct.matched == expect["matched"]
    if "violations" in expect:
        assert doc["violations"] == expect["violations"]
    if "message" in expect:
        assert expect["message"] in doc["message"], doc["message"]
    if "measurements" in expect:
        assert len(doc["measurements"]) == len(expect["measurements"]), doc["measurements"]
        for wanted, got in zip(expect["measurements"], doc["measurements"], strict=True):
            assert _subset(wanted, got), (wanted, got)
    if "evidence" in expect:
        assert len(doc["evidence"]) == len(expect["evidence"]), doc["evidence"]
        for wanted, got in zip(expect["evidence"], doc["evidence"], strict=True):
            assert _subset(wanted, got), (wanted, got)


def test_cases_exist():
    assert len(_collect()) >= 40
