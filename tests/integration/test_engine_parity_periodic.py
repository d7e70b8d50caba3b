"""A periodic rule on a SQL engine decides every step as the Python evaluator does: a 3-day window over daily
steps (each step made of three segments, auditor.evaluate.sql.segments), a distinct and a ratio expectation, and
records on every segment bound and 1 us either side, so a record counted in the wrong segment or a segment
summed into the wrong step changes some step's measurements."""

from __future__ import annotations

import tempfile
from pathlib import Path

from auditor.compile.compiler import compile_plan
from auditor.compile.plan import CompiledRule
from auditor.core.period import parse_period
from auditor.core.timeutil import format_time, parse_time
from auditor.evaluate.outcome import Outcome
from auditor.evaluate.periodic import StepEvaluator
from auditor.evaluate.sql.dialects import DIALECTS
from auditor.evaluate.sql.engine import Execute, evaluate_rule
from tests.helpers import project
from tests.property.test_engine_differential import loaded

RULES = """
rules:
  - id: spread
    title: Few addresses and few denials per user over three days
    source: access_requests
    window: 3d
    filter:
      action: login
    group_by: user_email
    evidence: 2
    expect:
      distinct: {field: ip_address, max: 3}
      ratio: {where: {allowed: false}, max: 0.3}
"""
PERIOD = "2026-11-10T00:00:00Z/2026-11-16T00:00:00Z"  # 6 steps; windows [T_i - 3d, T_i) from 11-08 to 11-16


def periodic_rule(tmp_path: Path) -> CompiledRule:
    """The rule compiled for the period."""
    proj = project(tmp_path, RULES)
    period = parse_period(PERIOD, step="1d")
    plan, problems = compile_plan(list(proj.rules), proj.config, period.end_us, period=period)
    assert not problems
    return plan.rules[0]


def bound_records() -> list[dict]:
    """Per user, records at every day bound from 11-07 to 11-17 and 1 us either side: a different address per
    bound and offset for alice (her distinct count depends on exactly which records a step holds), bob denied at
    every other bound (his ratio crosses the bound in some steps only), and a record of another action."""
    records = []
    start = parse_time("2026-11-07T00:00:00Z")
    for day in range(11):
        bound = start + day * 86_400_000_000
        for offset in (-1, 0, 1):
            t = format_time(bound + offset)
            records.append({"created_at": t, "ray_id": f"a{day}{offset}", "user_email": "alice@example.com",
                            "action": "login", "allowed": True,
                            "ip_address": f"10.0.{day}.{offset + 1}" if day % 4 == 0 else "10.1.1.1"})
            records.append({"created_at": t, "ray_id": f"b{day}{offset}", "user_email": "bob@example.com",
                            "action": "login", "allowed": day % 2 == 1 or offset == -1, "ip_address": "10.9.9.9"})
        records.append({"created_at": format_time(bound), "ray_id": f"x{day}", "user_email": "eve@example.com",
                        "action": "logout", "allowed": False, "ip_address": "10.7.7.7"})
    return records


def python_steps(compiled: CompiledRule, records: list[dict]) -> Outcome:
    """The Python evaluator's outcome, every step's in `steps`."""
    python = StepEvaluator(compiled)
    for r in records:
        python.feed(r, parse_time(r["created_at"]))
    return python.outcome()


def assert_steps_alike(got: Outcome, expected: Outcome) -> None:
    """Every step decided alike: status, message, measurements, violating groups and evidence."""
    assert len(got.steps) == len(expected.steps) == 6
    for i, (g, e) in enumerate(zip(got.steps, expected.steps, strict=True)):
        assert (g.status, g.message, g.measurements, g.violations, g.groups, g.evidence, g.matched) == \
            (e.status, e.message, e.measurements, e.violations, e.groups, e.evidence, e.matched), f"step {i}"


def test_a_multi_day_window_on_duckdb_decides_every_step_as_python(tmp_path):
    compiled = periodic_rule(tmp_path)
    records = bound_records()
    expected = python_steps(compiled, records)
    # The case means something: steps differ, some pass and some fail, on both expectations.
    assert {s.status.value for s in expected.steps} == {"pass", "fail"}
    assert len({str(s.measurements) for s in expected.steps}) >= 4
    assert {m.expectation for s in expected.steps for m in s.measurements if not m.ok} == {"distinct", "ratio"}
    with tempfile.TemporaryDirectory() as tmp:
        con = loaded(records, tmp)

        def execute(sql: str):
            cursor = con.execute(sql)
            return [d[0] for d in cursor.description or ()], cursor.fetchall()

        run: Execute = execute
        got, _ = evaluate_rule(compiled, DIALECTS["duckdb"], run)
        con.close()
    assert_steps_alike(got, expected)
