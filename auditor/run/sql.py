"""`run --engine duckdb`: a plan's rules evaluated by DuckDB over the data, decided by auditor's own code.

Each log becomes one DuckDB view (auditor.sources.relation: NDJSON and Logpush objects through DuckDB's
reader, JSON documents through auditor's); each single-source rule is one query per rule over its steps
(auditor.evaluate.sql). Correlation rules are evaluated by the Python engine over the same source (their
`first` side is small, their `then` side is read once). Waivers, baselines, periods and reports are the
runner's, unchanged, so the results JSON is the Python engine's.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb

from auditor.compile.plan import CompiledRule, Plan
from auditor.core.status import Status
from auditor.evaluate.results import RuleResult, RunResult
from auditor.evaluate.sql.dialects import DIALECTS
from auditor.evaluate.sql.engine import evaluate_rule
from auditor.evaluate.sql.query import table_name
from auditor.run.runner import RunOptions, _collect, run
from auditor.sources.base import SourceError
from auditor.sources.locate import DataSource, LogData
from auditor.sources.relation import empty_relation, is_lines, json_relation, parquet_relation, to_ndjson

ENGINES = ("python", "duckdb")


def _execute(con: duckdb.DuckDBPyConnection) -> Any:
    def execute(sql: str) -> tuple[list[str], Iterable[Sequence[Any]]]:
        cursor = con.execute(sql)
        return [d[0] for d in cursor.description or ()], cursor.fetchall()
    return execute


def _view(con: duckdb.DuckDBPyConnection, log: LogData, scratch: Path) -> str | None:
    """Create the log's view; the data problem that keeps it from being read, or None."""
    if log.lake is not None:
        try:
            con.execute(f"CREATE VIEW {table_name(log.source)} AS {parquet_relation(log.lake, log.source)}")
        except duckdb.Error as exc:
            return " ".join(str(exc).splitlines()[:1])
        return None
    paths = log.paths()
    lines = [p for p in paths if is_lines(p)]
    documents = [p for p in paths if not is_lines(p)]
    try:
        if documents:
            lines.append(to_ndjson(documents, log.source, scratch))
        relation = json_relation(lines, log.source) if lines else empty_relation(log.source)
        con.execute(f"CREATE TABLE {table_name(log.source)} AS {relation}")
        bad = con.execute(f"SELECT count(*) FROM {table_name(log.source)} WHERE t_us IS NULL").fetchone()  # noqa: S608
    except (duckdb.Error, ValueError, SourceError) as exc:  # a malformed file (DuckDB's message), or a DataError
        return " ".join(str(exc).splitlines()[:1])
    if bad and bad[0]:
        return (f"{bad[0]} {log.source} record(s) have no valid time "
                "(RFC 3339 with an offset, or unix seconds/nanoseconds)")
    return None


def run_sql(plan: Plan, source: DataSource, options: RunOptions, engine: str = "duckdb") -> RunResult:
    """Evaluate a plan over `--data` on a SQL engine (DuckDB); the same results as `run` with the Python engine."""
    started = time.monotonic()
    dialect = DIALECTS[engine]
    correlated = [r for r in plan.rules if r.sides]
    results: list[RuleResult] = []
    if correlated:
        keys = {k for r in correlated for k in r.fetch_keys}
        fetches = tuple(f for f in plan.fetches if f.key in keys)
        # Without the period: the per-step outcomes come back unfinished, and are finished with the rest below.
        sub = dataclasses.replace(plan, rules=tuple(correlated), fetches=fetches, period=None)
        results.extend(run(sub, source, RunOptions()).results)
    records = 0
    with tempfile.TemporaryDirectory(prefix="auditor-sql-") as scratch:
        con = duckdb.connect(":memory:")
        try:
            problems: dict[str, str] = {}
            for name in sorted({s.source for r in plan.rules for s in r.sides} | {r.rule.source for r in plan.rules
                                                                                 if not r.sides}):
                log = source.logs.get(name)
                problem = source.problem(name)
                if log is None or problem is not None:
                    problems[name] = str(problem or f"no {name} data")
                    continue
                why = _view(con, log, Path(scratch))
                if why is not None:
                    problems[name] = why
                    continue
                counted = con.execute(f"SELECT count(*) FROM {table_name(name)}").fetchone()  # noqa: S608
                records += int(counted[0]) if counted else 0
            for r in plan.rules:
                if not r.sides:
                    results.append(_rule(plan, r, problems, dialect, con))
        finally:
            con.close()
    return _collect(plan, "files", results, records, options, started, (), source.notes())


def _rule(plan: Plan, r: CompiledRule, problems: dict[str, str], dialect: Any,
          con: duckdb.DuckDBPyConnection) -> RuleResult:
    describe = plan.fetch(r.fetch_key).describe(plan.account_id)
    problem = problems.get(r.rule.source)
    if problem is not None:
        return RuleResult(r, Status.ERROR, f"data error, rule not evaluated: {problem}", describe)
    o, _ = evaluate_rule(r, dialect, _execute(con))
    return RuleResult(r, o.status, o.message, describe, o.measurements, o.violations, o.evidence,
                      groups=o.groups, steps=o.steps)
