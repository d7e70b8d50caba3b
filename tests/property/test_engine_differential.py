"""Differential property test: random rules over records on window edges (+-1 us), with missing and null
fields, values of the wrong type (`allowed: "yes"`, a number where text is expected), IPv6, IPv4-mapped and
malformed addresses, letter case and Unicode, decided alike by the Python evaluator and DuckDB: statuses,
messages, measurements and evidence (its fields and order) exactly.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.compile.plan import CompiledRule
from auditor.core.diagnostics import SourceLocation
from auditor.core.model import Condition, Expectation, Rule, TimeBound
from auditor.core.timeutil import format_time, parse_time
from auditor.evaluate.engine import RuleEvaluator
from auditor.evaluate.outcome import Outcome
from auditor.evaluate.sql.dialects import DIALECTS
from auditor.evaluate.sql.engine import evaluate_rule
from auditor.evaluate.sql.query import table_name
from auditor.sources.relation import json_relation

SINCE, UNTIL = parse_time("2026-11-20T10:00:00Z"), parse_time("2026-11-20T11:00:00Z")
TIMES = [SINCE - 1, SINCE, SINCE + 1, SINCE + 1_800_000_000, UNTIL - 1, UNTIL, UNTIL + 1]
EMAILS = ["alice@example.com", "ALICE@Example.com", "bob@svc.example.com", "jürgen@example.com", "ǅ@x.com",
          "kelvin\u212a@example.com", "", None, "<absent>", 5, True]
IPS = ["10.1.2.3", "10.0.0.0", "11.0.0.1", "010.1.2.3", "10.1.2.256", "::ffff:10.1.2.3", "2001:db8::1",
       "2001:db9::1", "fe80::1%eth0", "not-an-ip", "", None, "<absent>", 167772161, 1.5]
APPS = ["Admin.example.com", "admin.example.com", "app.example.com", "ADMİN.example.com", None, "<absent>",
        ["admin.example.com"], {"host": "admin"}]
CONDITIONS = [
    Condition("user_email", "eq", "alice@example.com"), Condition("user_email", "neq", "alice@example.com"),
    Condition("user_email", "contains", "@svc."), Condition("user_email", "not_contains", "example"),
    Condition("user_email", "in", ["alice@example.com", "jürgen@example.com"]),
    Condition("user_email", "not_in", ["bob@svc.example.com"]), Condition("user_email", "exists", True),
    Condition("user_email", "exists", False), Condition("user_email", "matches", "(?i)^alice@"),
    Condition("user_email", "matches", "\\w+@"), Condition("app_domain", "matches", "(?i)admin"),
    Condition("app_domain", "not_matches", "^app\\.example\\.com$"), Condition("app_domain", "matches", "a(?!p)"),
    Condition("ip_address", "cidr", ["10.0.0.0/8", "2001:db8::/32"]), Condition("ip_address", "not_cidr", "10.0.0.0/8"),
    Condition("allowed", "eq", True), Condition("allowed", "neq", False), Condition("allowed", "exists", False),
    Condition("allowed", "in", [False]), Condition("ip_address", "exists", True),
    Condition("app_domain", "exists", True), Condition("app_domain", "contains", "admin"),
]


def _record(t: int, email: str | None, ip: str | None, app: str | None, allowed: bool | None) -> dict:
    record = {"created_at": format_time(t), "ray_id": f"r{t}", "user_email": email, "ip_address": ip,
              "app_domain": app, "allowed": allowed}
    return {k: v for k, v in record.items() if v != "<absent>"}


records_st = st.lists(st.builds(_record, st.sampled_from(TIMES), st.sampled_from(EMAILS), st.sampled_from(IPS),
                                st.sampled_from(APPS), st.sampled_from([True, False, None, "<absent>", "yes", "false",
                                                                         0])),
                      max_size=25)
expectations_st = st.sampled_from([
    (Expectation("count", max=0),), (Expectation("count", min=3),),
    (Expectation("distinct", field="user_email", max=1),),
    (Expectation("ratio", where=(Condition("ip_address", "cidr", "10.0.0.0/8"),), min=0.5),),
    (Expectation("ratio", where=(Condition("app_domain", "matches", "(?i)admin"),), max=0.2),),
])


def python_outcome(records, conditions, expectations, group_by) -> tuple[CompiledRule, Outcome]:
    """The random rule, compiled over the hour [SINCE, UNTIL), and the Python evaluator's outcome of it."""
    rule = Rule(id="r", title="r", source="access_requests", since=TimeBound(absolute_us=SINCE),
                until=TimeBound(absolute_us=UNTIL), conditions=tuple(conditions), expectations=expectations,
                location=SourceLocation("rules.yaml", 1), group_by=group_by, evidence=3)
    compiled = CompiledRule(rule, SINCE, UNTIL, "k", (), tuple(conditions))
    python = RuleEvaluator(compiled)
    for r in records:
        python.feed(r, parse_time(r["created_at"]))
    return compiled, python.outcome()


def loaded(records: list[dict], tmp: str) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection holding the records as the access_requests relation, read from an NDJSON file."""
    path = Path(tmp) / "access_requests.ndjson"
    path.write_text("".join(json.dumps(r) + "\n" for r in records) or "", encoding="utf-8")
    con = duckdb.connect()
    con.execute(f"CREATE TABLE {table_name('access_requests')} AS {json_relation([path], 'access_requests')}")
    return con


def assert_alike(got: Outcome, expected: Outcome) -> None:
    """The same statuses, messages, measurements, groups and evidence."""
    assert (got.status, got.message, got.measurements, got.violations, got.groups) == \
        (expected.status, expected.message, expected.measurements, expected.violations, expected.groups)
    assert got.evidence == expected.evidence


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=records_st, conditions=st.lists(st.sampled_from(CONDITIONS), max_size=3),
       expectations=expectations_st, group_by=st.sampled_from([(), ("user_email",), ("ip_address",)]))
def test_python_and_duckdb_decide_alike(records, conditions, expectations, group_by):
    compiled, expected = python_outcome(records, conditions, expectations, group_by)
    with tempfile.TemporaryDirectory() as tmp:
        con = loaded(records, tmp)

        def execute(sql: str):
            cursor = con.execute(sql)
            return [d[0] for d in cursor.description or ()], cursor.fetchall()

        got, _ = evaluate_rule(compiled, DIALECTS["duckdb"], execute)
        con.close()
    assert_alike(got, expected)
