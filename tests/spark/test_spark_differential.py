"""The differential property test (tests/property/test_engine_differential.py) on a smaller sample on Spark:
random rules over records on window edges, with missing and null fields, IPv6, IPv4-mapped and malformed
addresses, letter case and Unicode, decided alike by the Python evaluator and Spark (whose regex conditions
Python applies after Spark's exact ones)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.compile.plan import CompiledRule
from auditor.core.diagnostics import SourceLocation
from auditor.core.model import Rule, TimeBound
from auditor.core.timeutil import parse_time
from auditor.evaluate.engine import RuleEvaluator
from auditor.evaluate.sql.engine import evaluate_rule
from auditor.run.spark import SparkTables
from auditor.sources.locate import LogData
from tests.property.test_engine_differential import (
    CONDITIONS,
    SINCE,
    UNTIL,
    _strip_nulls,
    expectations_st,
    records_st,
)
from tests.spark import MASTER

pytestmark = pytest.mark.spark


@settings(max_examples=6, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(records=records_st, conditions=st.lists(st.sampled_from(CONDITIONS), max_size=3),
       expectations=expectations_st, group_by=st.sampled_from([(), ("user_email",), ("ip_address",)]))
def test_python_and_spark_decide_alike(spark, records, conditions, expectations, group_by):
    rule = Rule(id="r", title="r", source="access_requests", since=TimeBound(absolute_us=SINCE),
                until=TimeBound(absolute_us=UNTIL), conditions=tuple(conditions), expectations=expectations,
                location=SourceLocation("rules.yaml", 1), group_by=group_by, evidence=3)
    compiled = CompiledRule(rule, SINCE, UNTIL, "k", (), tuple(conditions))
    python = RuleEvaluator(compiled)
    for r in records:
        python.feed(r, parse_time(r["created_at"]))
    expected = python.outcome()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "access_requests.ndjson"
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        tables = SparkTables(MASTER)
        try:
            problem, count, _ = tables.load(LogData("access_requests", files=(path,)), Path(tmp))
            assert (problem, count) == (None, len(records))
            got, _ = evaluate_rule(compiled, tables.dialect, tables.execute)
        finally:
            tables.close()
    assert (got.status, got.message, got.measurements, got.violations) == \
        (expected.status, expected.message, expected.measurements, expected.violations)
    # As on DuckDB: SQL has no "present but null"; evidence is exact without nulls, else the same records.
    if not any(v is None for r in records for v in r.values()):
        assert got.evidence == expected.evidence
    else:
        key = lambda e: json.dumps(e, sort_keys=True)  # noqa: E731
        assert sorted(_strip_nulls(got.evidence), key=key) == sorted(_strip_nulls(expected.evidence), key=key)
