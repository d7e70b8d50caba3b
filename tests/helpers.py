"""Shared test helpers: API-shaped records, rule files in a temp dir, one-call evaluation."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from auditor.compile.compiler import compile_plan
from auditor.compile.plan import Plan
from auditor.core.fields import SOURCES
from auditor.core.timeutil import parse_time
from auditor.evaluate.engine import RuleEvaluator
from auditor.evaluate.outcome import Outcome
from auditor.load.validate import Inputs, Project, load_project

T = "2026-11-15T12:00:00Z"  # the reference time most tests use
ABSENT = "<absent>"  # a record value that removes the field
# What the bundled sample data (examples/data) holds completely (examples/README.md), for `--data-covers`.
SAMPLE_COVERS = "2026-11-01T00:00:00Z/2026-11-15T00:00:00Z"
# "Now" as tests pin it for the API's coverage (tests/conftest.py), and what the API then covers with the
# default retention_days of 30: files runs compared with API runs state the same with --data-covers.
PINNED_NOW = "2026-11-16T00:00:00Z"
API_COVERS = "2026-10-17T00:00:00Z/2026-11-16T00:00:00Z"

# Every engine a run can use; Spark's parameter is marked `spark` (it runs last, on one worker: tests/conftest.py).
ENGINES = ["python", "duckdb", pytest.param("spark", marks=pytest.mark.spark)]


def engine_args(engine: str, request: pytest.FixtureRequest) -> list[str]:
    """The run options choosing `engine` (for Spark, once its session is up: the `spark` fixture)."""
    if engine != "spark":
        return ["--engine", engine]
    from tests.spark import MASTER

    request.getfixturevalue("spark")
    return ["--engine", "spark", "--spark-master", MASTER]


_ACCESS = {
    "action": "login",
    "allowed": True,
    "app_domain": "app.example.com",
    "app_uid": "df7e2a5f-02b7-4d9d-af26-8d1988fca630",
    "connection": "saml",
    "created_at": "2026-11-15T11:30:00Z",
    "ip_address": "198.51.100.7",
    "ray_id": "187d944c61940c77",
    "user_email": "alice@example.com",
}
_SCIM = {
    "cf_resource_id": "bd97ef8d-7986-43e3-9ee0-c25dda33e4b0",
    "error_description": None,
    "idp_id": "idp-1",
    "idp_resource_id": "all_employees",
    "logged_at": "2026-11-15T11:30:00Z",
    "request_body": "{}",
    "request_method": "PATCH",
    "resource_group_name": "ALL_EMPLOYEES",
    "resource_type": "USER",
    "resource_user_email": "alice@example.com",
    "status": "SUCCESS",
}


def _make(base: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    record = {**base, **fields}
    return {k: v for k, v in record.items() if v != ABSENT}


def access(**fields: Any) -> dict[str, Any]:
    """An access_requests record as the API returns it; `field=ABSENT` drops a field."""
    return _make(_ACCESS, fields)


def scim(**fields: Any) -> dict[str, Any]:
    """A scim_updates record as the API returns it; `field=ABSENT` drops a field."""
    return _make(_SCIM, fields)


def record_for(source: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A record of `source` with `fields` over the defaults."""
    return access(**fields) if source == "access_requests" else scim(**fields)


def write(path: Path, text: str) -> Path:
    """Write dedented text (creating parents) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def write_ndjson(path: Path, records: list[dict[str, Any]]) -> Path:
    """One JSON object per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def rule_yaml(**rule: Any) -> str:
    """A rule file holding one rule (id/title/source defaulted)."""
    full = {"id": "r", "title": "test rule", "source": "access_requests", **rule}
    return yaml.safe_dump({"rules": [full]}, sort_keys=False)


def project(
    tmp_path: Path,
    rules: str | dict[str, str],
    *,
    config: str = "",
    var_files: tuple[Path, ...] = (),
    cli_vars: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Project:
    """Write rule file(s) and an auditor.yaml into tmp_path and load them through the one entry point."""
    files = {"rules/rules.yaml": rules} if isinstance(rules, str) else rules
    for name, text in files.items():
        write(tmp_path / name, text)
    config_path = write(tmp_path / "auditor.yaml", config or "{}\n")
    return load_project(Inputs(paths=(tmp_path / "rules",), config_path=config_path, var_files=var_files,
                               cli_vars=cli_vars, env=env or {}))


def compiled(tmp_path: Path, rules: str, *, at: str = T, config: str = "", account_id: str | None = None) -> Plan:
    """Load and compile; fails the test on any diagnostic."""
    proj = project(tmp_path, rules, config=config)
    assert proj.ok, [d.format() for d in proj.diagnostics]
    plan, problems = compile_plan(list(proj.rules), proj.config, parse_time(at), account_id)
    assert not problems, [d.format() for d in problems]
    return plan


def outcomes(plan: Plan, records: list[dict[str, Any]]) -> dict[str, Outcome]:
    """Feed records (in the given order) to every rule of the plan; rule id -> outcome."""
    out = {}
    for compiled_rule in plan.rules:
        evaluator = RuleEvaluator(compiled_rule)
        time_field = SOURCES[compiled_rule.rule.source].time_field
        for record in records:
            evaluator.feed(record, parse_time(record[time_field]))
        out[compiled_rule.rule.id] = evaluator.outcome()
    return out


def outcome(tmp_path: Path, records: list[dict[str, Any]], *, at: str = T, config: str = "", **rule: Any) -> Outcome:
    """Evaluate one rule (given as keyword arguments) over records."""
    plan = compiled(tmp_path, rule_yaml(**rule), at=at, config=config)
    return outcomes(plan, records)["r"]
