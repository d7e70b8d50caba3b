"""Defaults are written once, on the model's dataclasses: the loader and the schemas' documentation agree."""

from __future__ import annotations

import json
from pathlib import Path

from auditor.core.model import Config, PushdownScope, Rule
from auditor.core.status import Severity
from auditor.core.timeutil import parse_duration
from auditor.load.config import load_config
from tests.helpers import compiled, rule_yaml

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_rules_schema_documents_the_models_defaults():
    rule = json.loads((SCHEMAS / "rules.schema.json").read_text(encoding="utf-8"))["$defs"]["rule"]["properties"]
    assert rule["severity"]["default"] == Rule.severity == Severity.MEDIUM
    assert rule["evidence"]["default"] == Rule.evidence
    assert rule["window"]["default"] == Rule.window


def test_an_empty_config_file_loads_to_configs_defaults(tmp_path):
    path = tmp_path / "auditor.yaml"
    path.write_text("account_id: acc\n", encoding="utf-8")
    config, problems = load_config(path)
    assert problems == []
    assert (config.per_page, config.concurrency, config.pushdown, config.max_waiver_days, config.retention_days) == (
        Config.per_page, Config.concurrency, PushdownScope.DOCUMENTED, Config.max_waiver_days, Config.retention_days)


def test_given_config_keys_override_the_defaults(tmp_path):
    path = tmp_path / "auditor.yaml"
    path.write_text("per_page: 9\nconcurrency: 2\npushdown: documented\nretention_days: 7\n", encoding="utf-8")
    config, problems = load_config(path)
    assert problems == []
    assert (config.per_page, config.concurrency, config.pushdown, config.retention_days) == (
        9, 2, PushdownScope.DOCUMENTED, 7)


def test_a_rule_without_window_severity_or_evidence_gets_the_defaults(tmp_path):
    (compiled_rule,) = compiled(tmp_path, rule_yaml(), at="2026-11-15T00:00:00Z").rules
    assert compiled_rule.until_us - compiled_rule.since_us == parse_duration(Rule.window)
    assert (compiled_rule.rule.severity, compiled_rule.rule.evidence) == (Rule.severity, Rule.evidence)
