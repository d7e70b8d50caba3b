"""`run --engine duckdb|spark`: a plan's rules evaluated by a SQL engine over the data, decided by auditor's own
code; `run_records`: a rule test's records so.

Each log becomes one DuckDB view (auditor.sources.relation: NDJSON and Logpush objects through DuckDB's
reader, JSON documents through auditor's, a Parquet lake's files); each single-source rule is one query per rule
over its steps (auditor.evaluate.sql), over only the lake days its steps meet. Correlation rules are evaluated by
the Python correlation evaluator over rows from the engine's tables (auditor.run.tables: the `first` side whole,
the `then` side narrowed by a semi-join). Waivers, baselines, periods and reports are the runner's, unchanged, so
the results JSON is the Python engine's.

With Spark (auditor.run.spark), Spark runs the rules' queries and serves the correlation rows. A lake Spark reads
itself; DuckDB still reads a lake's Parquet on the driver for the cheap checks (record count and time span, the
type warnings' tallies: from the files' Parquet statistics where those settle them). Export files (NDJSON,
Logpush, JSON documents) DuckDB reads (data errors, provenance, warnings as with `--engine duckdb`) and hands to
Spark as staged Parquet.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

from auditor.compile.plan import CompiledRule, Plan
from auditor.core.coverage import COMPLETE, Seen
from auditor.core.diagnostics import display_path
from auditor.core.fields import SOURCES
from auditor.core.status import Status
from auditor.evaluate.correlate import Correlations
from auditor.evaluate.guard import filter_fields
from auditor.evaluate.periodic import correlation_evaluator
from auditor.evaluate.results import RuleResult, RunResult
from auditor.evaluate.sql.conditions import literal
from auditor.evaluate.sql.dialects import DIALECTS
from auditor.evaluate.sql.engine import evaluate_rule
from auditor.evaluate.sql.query import table_name
from auditor.run.runner import RunOptions, _collect, run
from auditor.run.spark import SparkTables
from auditor.run.tables import DuckTables, TableSource
from auditor.sources.base import Part, SourceError
from auditor.sources.datasource import DataSource
from auditor.sources.files import file_part
from auditor.sources.lake import lake_records
from auditor.sources.locate import LogData
from auditor.sources.relation import (
    FILE,
    empty_relation,
    is_lines,
    json_relation,
    lake_extras,
    lake_nulls,
    lake_span,
    parquet_relation,
    to_ndjson,
)
from auditor.sources.typecheck import TypeTally


def _view(con: duckdb.DuckDBPyConnection, log: LogData, scratch: Path, extras: dict[str, set[str]]) -> str | None:
    """Create the log's view; the data problem that keeps it from being read, or None. `extras` gets which of
    `_wrong`, `_odd` a lake's files have."""
    if log.lake is not None:
        try:
            extras[log.source] = lake_extras(con, log.lake, log.source)
            _lake_view(con, log, extras, None)
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
        return _located(paths, log.source) or " ".join(str(exc).splitlines()[:1])
    if bad and bad[0]:
        return _located(paths, log.source) or (f"{bad[0]} {log.source} record(s) have no valid time "
                                               "(RFC 3339 with an offset, or unix seconds/nanoseconds)")
    return None


def _located(paths: Iterable[Path], source: str) -> str | None:
    """The Python reader's message for the first bad record of `paths` ('PATH:LINE: error: ...', the line the
    Python engine names; DuckDB's own messages count lines differently), or None when it finds none."""
    for path in paths:
        try:
            for _ in file_part(path, source).records:
                pass
        except SourceError as exc:
            return str(exc)
    return None


def _lake_view(con: duckdb.DuckDBPyConnection, log: LogData, extras: dict[str, set[str]], spark: SparkTables | None,
               span: tuple[int, int] | None = None) -> None:
    """A lake's log as the engine's view, read from the lake's files (its days meeting `span`, else all): DuckDB's,
    or Spark's when Spark runs the queries. Nothing for a log of export files."""
    if log.lake is None:
        return
    if spark is not None:
        spark.lake(log.lake, log.source, span)
        return
    relation = parquet_relation(log.lake, log.source, extras[log.source], span)
    con.execute(f"CREATE OR REPLACE VIEW {table_name(log.source)} AS {relation}")


def _span(rules: Sequence[CompiledRule]) -> tuple[int, int]:
    """[since, until) holding every window of the rules' steps: no record outside it is read by them (a
    correlation's `first` and `then` records both fall in its window)."""
    return (min(s for r in rules for _, s, _ in r.windows or [("", r.since_us, 0)]),
            max(u for r in rules for _, _, u in r.windows or [("", 0, r.until_us)]))


def run_sql(plan: Plan, source: DataSource, options: RunOptions, engine: str = "duckdb",
            spark_master: str = "local[*]", small: bool = False) -> RunResult:
    """Evaluate a plan over `--data` on a SQL engine (DuckDB, or Spark: a lake read by Spark, export files by
    DuckDB for it); the same results as `run` with the Python engine (`small`: a rule test's few records).
    EngineUnavailable when Spark cannot start here."""
    started = time.monotonic()
    dialect = DIALECTS[engine]
    spark = SparkTables(spark_master, small) if engine == "spark" else None
    correlated = [r for r in plan.rules if r.sides]
    results: list[RuleResult] = []
    records = 0
    seen: dict[str, Seen] = {}
    with tempfile.TemporaryDirectory(prefix="auditor-sql-") as scratch:
        con = duckdb.connect(":memory:")
        con.execute("SET parquet_metadata_cache = true")  # each rule reads the same lake files: their footers once
        try:
            problems: dict[str, str] = {}
            extras: dict[str, set[str]] = {}  # per lake log: which of _wrong, _odd its files have
            for name in sorted({s.source for r in plan.rules for s in r.sides} | {r.rule.source for r in plan.rules
                                                                                 if not r.sides}):
                log = source.logs.get(name)
                problem = source.problem(name)
                if log is None or problem is not None:
                    problems[name] = str(problem or f"no {name} data")
                    continue
                why = _view(con, log, Path(scratch), extras)
                if why is not None:
                    problems[name] = why
                    continue
                query = f"SELECT count(*), min(t_us), max(t_us) FROM {table_name(name)}"  # noqa: S608
                # A lake's from its Parquet statistics when they state them (no column read).
                counted = (log.lake is not None and lake_span(con, log.lake, name)) or con.execute(query).fetchone()
                records += int(counted[0]) if counted else 0
                seen[name] = (counted[1], counted[2]) if counted and counted[0] else (None, None)
                if log.lake is None:
                    _provenance(con, log, source)
            # In the order a Python pass reads the logs: a correlation's `first` log before its `then` log.
            order = Correlations(plan.rules, lambda side: plan.fetch(side.fetch_key).source, correlation_evaluator
                                 ).ordered(dict.fromkeys(f.source for f in plan.fetches), str)
            notes = [w for name in order if name not in problems and name in source.logs
                     for w in _mistyped(con, plan, source.logs[name])]
            if spark is not None:  # a lake's logs Spark reads itself; the export files DuckDB read, handed over
                for name in seen:
                    if source.logs[name].lake is None:
                        spark.mirror(con, name, Path(scratch))
            for r in plan.rules:
                if not r.sides:
                    results.append(_rule(plan, r, problems, dialect, con, source, extras, spark))
            if correlated:
                for name in seen:  # a lake's log over the days the correlation rules' windows meet
                    _lake_view(con, source.logs[name], extras, spark, _span(correlated))
                keys = {k for r in correlated for k in r.fetch_keys}
                fetches = tuple(f for f in plan.fetches if f.key in keys)
                # Without the period: per-step outcomes come back unfinished and are finished with the rest below.
                sub = dataclasses.replace(plan, rules=tuple(correlated), fetches=fetches, period=None)
                # Decided against the data's coverage below, with the other rules.
                tables = spark if spark is not None else DuckTables(con)
                results.extend(run(sub, TableSource(tables, correlated, problems, source),
                                   RunOptions(coverage=COMPLETE)).results)
        finally:
            con.close()
            if spark is not None:
                spark.close()
    coverage = options.coverage if options.coverage is not None else source.coverage(seen)
    # JSON documents were read by auditor's reader into a scratch file: their provenance takes a pass of its own.
    return _collect(plan, "files", results, records, options, started, (), (*notes, *source.notes()), coverage,
                    source.files(unread=True))


def _provenance(con: duckdb.DuckDBPyConnection, log: LogData, source: DataSource) -> None:
    """Each NDJSON file's records and time span, and a Logpush object's records outside its named range, as a
    Python pass would have tallied them (auditor.sources.locate)."""
    bounds = [(b.location, b.start_us, b.holds_until_us) for b in log.batches]
    table = table_name(log.source)
    if bounds:
        values = ", ".join(f"({literal(loc).sql('duckdb')}, {lo}, {hi})" for loc, lo, hi in bounds)
        query = (f"SELECT r.{FILE}, count(*), min(t_us), max(t_us), count(*) FILTER (WHERE t_us < b.lo OR "  # noqa: S608
                 f"t_us >= b.hi) FROM {table} r LEFT JOIN (VALUES {values}) b(loc, lo, hi) ON r.{FILE} = b.loc "
                 f"GROUP BY r.{FILE}")
    else:
        query = f"SELECT {FILE}, count(*), min(t_us), max(t_us), 0 FROM {table} GROUP BY {FILE}"  # noqa: S608
    found = {path: row for path, *row in con.execute(query).fetchall()}
    for path in log.paths():
        if is_lines(path):
            count, first, last, outside = found.get(str(path), (0, None, None, 0))
            source.read_elsewhere(path, count, first, last, outside)


def _mistyped(con: duckdb.DuckDBPyConnection, plan: Plan, log: LogData) -> list[str]:
    """The run's warnings about values of the wrong type in one log, as the Python engine words them: counted
    by the engine, the first of each found by a pass over the records that stops there (auditor.sources.typecheck)."""
    rules = [r.rule for r in plan.rules if not r.sides and r.rule.source == log.source]
    tally = TypeTally(SOURCES[log.source], (f for r in rules for f in filter_fields(r)))
    query = tally.counting_sql(table_name(log.source))
    if query is None or (log.lake is not None and tally.surely_clean(lake_nulls(con, log.lake, log.source))):
        return []  # a lake's Parquet statistics often settle it without reading a row
    row = con.execute(query).fetchone() or ()
    counts = dict(zip(tally.wanted, map(int, row), strict=True))
    if not any(counts.values()):
        return []
    if log.lake is not None:
        parts: Iterable[Part] = [Part(display_path(log.lake), lake_records(log.lake, log.source))]
    else:
        parts = (file_part(p, log.source) for p in log.paths())
    tally.settle(counts, parts)
    readers: dict[str, list[str]] = {}
    for r in rules:
        for name in dict.fromkeys(filter_fields(r)):
            readers.setdefault(name, []).append(r.id)
    return tally.warnings(readers)


def _rule(plan: Plan, r: CompiledRule, problems: dict[str, str], dialect: Any, con: duckdb.DuckDBPyConnection,
          source: DataSource, extras: dict[str, set[str]], spark: SparkTables | None) -> RuleResult:
    describe = source.describe(plan.fetch(r.fetch_key), plan.account_id)  # the files read
    problem = problems.get(r.rule.source)
    if problem is not None:
        return RuleResult(r, Status.ERROR, f"data error, rule not evaluated: {problem}", describe)
    log = source.logs.get(r.rule.source)
    if log is not None:  # a lake: only its days the rule's steps meet
        _lake_view(con, log, extras, spark, _span([r]))
    o, _ = evaluate_rule(r, dialect, spark.execute if spark is not None else DuckTables(con).execute)
    return RuleResult(r, o.status, o.message, describe, o.measurements, o.violations, o.evidence,
                      groups=o.groups, steps=o.steps)


def run_records(plan: Plan, records: Mapping[str, Sequence[dict[str, Any]]], engine: str,
                spark_master: str = "local[*]") -> RunResult:
    """Records held in memory (a rule test's case) through a SQL engine, exactly as `--data` files are read:
    written as one NDJSON file per log (empty for a log without records), complete by definition."""
    with tempfile.TemporaryDirectory(prefix="auditor-case-") as folder:
        for name in SOURCES:
            with (Path(folder) / f"{name}.ndjson").open("w", encoding="utf-8") as out:
                out.writelines(json.dumps(r) + "\n" for r in records.get(name, ()))
        return run_sql(plan, DataSource(Path(folder), plan=plan), RunOptions(coverage=COMPLETE), engine, spark_master,
                       small=True)
