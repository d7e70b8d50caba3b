"""`run --engine duckdb|spark`: a plan's rules evaluated by a SQL engine over the data, decided by auditor's own
code. With Spark, DuckDB still reads the data (the same relation, data errors and warnings) and hands each log to
Spark (auditor.run.spark), which evaluates the single-source rules; `run_records`: a rule test's records so.

Each log becomes one DuckDB view (auditor.sources.relation: NDJSON and Logpush objects through DuckDB's
reader, JSON documents through auditor's); each single-source rule is one query per rule over its steps
(auditor.evaluate.sql). Correlation rules are evaluated by the Python correlation evaluator over rows from the
engine's tables: the `first` side (SCIM, small) whole, the `then` side only where its join values can match
(a semi-join; `_TableSource`). Waivers, baselines, periods and reports are the
runner's, unchanged, so the results JSON is the Python engine's.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
from sqlglot import exp

from auditor.compile.compiler import evidence_fields
from auditor.compile.plan import CompiledRule, Fetch, Plan
from auditor.core.coverage import COMPLETE, Seen
from auditor.core.diagnostics import display_path
from auditor.core.fields import SOURCES
from auditor.core.model import Condition
from auditor.core.status import Status
from auditor.evaluate.correlate import Correlations
from auditor.evaluate.guard import filter_fields
from auditor.evaluate.periodic import correlation_evaluator
from auditor.evaluate.results import RuleResult, RunResult
from auditor.evaluate.sql.conditions import column, compile_condition, literal, wrong_type
from auditor.evaluate.sql.dialects import DIALECTS
from auditor.evaluate.sql.engine import evaluate_rule, records_of
from auditor.evaluate.sql.query import table_name
from auditor.run.runner import RunOptions, _collect, run
from auditor.run.spark import SparkTables
from auditor.sources.base import BaseSource, Part, SourceError, Timed
from auditor.sources.datasource import DataSource
from auditor.sources.files import file_part
from auditor.sources.lake import lake_records
from auditor.sources.locate import LogData
from auditor.sources.relation import (
    EXTRAS,
    FILE,
    ODD,
    empty_relation,
    is_lines,
    json_relation,
    lake_extras,
    lake_nulls,
    parquet_relation,
    to_ndjson,
)
from auditor.sources.typecheck import TypeTally


def _execute(con: duckdb.DuckDBPyConnection) -> Any:
    def execute(sql: str) -> tuple[list[str], Sequence[Sequence[Any]]]:
        cursor = con.execute(sql)
        return [d[0] for d in cursor.description or ()], cursor.fetchall()
    return execute


def _view(con: duckdb.DuckDBPyConnection, log: LogData, scratch: Path, extras: dict[str, set[str]]) -> str | None:
    """Create the log's view; the data problem that keeps it from being read, or None. `extras` gets which of
    `_wrong`, `_odd` a lake's files have."""
    if log.lake is not None:
        try:
            extras[log.source] = lake_extras(con, log.lake, log.source)
            _lake_view(con, log.lake, log.source, extras[log.source])
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


def _lake_view(con: duckdb.DuckDBPyConnection, lake: Path, source: str, extras: set[str],
               span: tuple[int, int] | None = None) -> None:
    """The log's view over the lake (its days meeting `span`, else all)."""
    relation = parquet_relation(lake, source, extras, span)
    con.execute(f"CREATE OR REPLACE VIEW {table_name(source)} AS {relation}")


def run_sql(plan: Plan, source: DataSource, options: RunOptions, engine: str = "duckdb",
            spark_master: str = "local[*]", small: bool = False) -> RunResult:
    """Evaluate a plan over `--data` on a SQL engine (DuckDB, or Spark with DuckDB reading the data); the same
    results as `run` with the Python engine (`small`: a rule test's few records). EngineUnavailable when Spark
    cannot start here."""
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
                counted = con.execute(query).fetchone()
                records += int(counted[0]) if counted else 0
                seen[name] = (counted[1], counted[2]) if counted and counted[0] else (None, None)
                if log.lake is None:
                    _provenance(con, log, source)
            # In the order a Python pass reads the logs: a correlation's `first` log before its `then` log.
            order = Correlations(plan.rules, lambda side: plan.fetch(side.fetch_key).source, correlation_evaluator
                                 ).ordered(dict.fromkeys(f.source for f in plan.fetches), str)
            notes = [w for name in order if name not in problems and name in source.logs
                     for w in _mistyped(con, plan, source.logs[name])]
            if spark is not None:  # the logs DuckDB read, handed to Spark
                for name in seen:
                    spark.mirror(con, name, Path(scratch))
            for r in plan.rules:
                if not r.sides:
                    results.append(_rule(plan, r, problems, dialect, con, source, extras, spark))
            if correlated:
                for name, log in source.logs.items():
                    if log.lake is not None and name not in problems:
                        _lake_view(con, log.lake, name, extras[name])  # whole again (a rule's view left only its days)
                keys = {k for r in correlated for k in r.fetch_keys}
                fetches = tuple(f for f in plan.fetches if f.key in keys)
                # Without the period: per-step outcomes come back unfinished and are finished with the rest below.
                sub = dataclasses.replace(plan, rules=tuple(correlated), fetches=fetches, period=None)
                # Decided against the data's coverage below, with the other rules.
                results.extend(run(sub, _TableSource(con, correlated, problems, source),
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
    if spark is not None:
        o, _ = evaluate_rule(r, dialect, spark.execute)
        return RuleResult(r, o.status, o.message, describe, o.measurements, o.violations, o.evidence,
                          groups=o.groups, steps=o.steps)
    if log is not None and log.lake is not None:  # only the lake's days the rule's steps meet
        span = (min(s for _, s, _ in r.windows or [("", r.since_us, 0)]),
                max(u for _, _, u in r.windows or [("", 0, r.until_us)]))
        _lake_view(con, log.lake, log.source, extras[log.source], span)
    o, _ = evaluate_rule(r, dialect, _execute(con))
    return RuleResult(r, o.status, o.message, describe, o.measurements, o.violations, o.evidence,
                      groups=o.groups, steps=o.steps)


def _exact(conditions: Iterable[Condition], source: str) -> list[exp.Expression]:
    """The SQL tests of the conditions DuckDB decides for every row (the others are left to Python)."""
    compiled = (compile_condition(x, source, DIALECTS["duckdb"]) for x in conditions)
    return [s.test for s in compiled if s.exact and s.test is not None]


class _TableSource(BaseSource):
    """Correlation rules' records from the engine's tables: a log read by some `first` side whole, a log read only
    by `then` sides restricted to the rows whose join values can match a `first` record (a semi-join; the
    Python evaluator then matches exactly). An e-mail join compares case-folded: an ASCII address is kept
    when its lower case is a folded `first` value, a non-ASCII one always (Python folds it)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, rules: Sequence[CompiledRule], problems: dict[str, str],
                 files: DataSource | None = None):
        self._con = con
        self._problems = problems
        self._files = files  # the data behind the tables: results name it
        firsts = {r.rule.correlation.first.source for r in rules if r.rule.correlation is not None}
        self._where: dict[str, Any] = {}
        # Per `then`-only log, the columns its rules read or show (every column of a log some `first` side reads).
        self._columns: dict[str, set[str]] = {}
        self._joins: dict[str, list[tuple[exp.Expression, exp.Expression]]] = {}  # per log: (keys table, ON)
        for r in rules:
            c = r.rule.correlation
            if c is None or c.then.source in firsts or c.then.source in problems or c.first.source in problems:
                continue
            test = self._semijoin(r, self._joins.setdefault(c.then.source, []))
            then = r.rule.sides()[1]
            self._columns.setdefault(c.then.source, set()).update(evidence_fields(then), (b for _, b in c.join))
            previous = self._where.get(c.then.source)
            self._where[c.then.source] = test if previous is None else exp.or_(previous, test)

    def describe(self, fetch: Fetch, account_id: str | None) -> str:
        """The files behind the engine's tables, as the Python engine names them."""
        if self._files is None:
            return super().describe(fetch, account_id)
        return self._files.describe(fetch, account_id)

    def _semijoin(self, r: CompiledRule, joins: list[tuple[exp.Expression, exp.Expression]]) -> Any:
        """The test of the `then` rows of a rule that can match (LEFT JOINs it needs appended to `joins`)."""
        c = r.rule.correlation
        assert c is not None
        first, then = SOURCES[c.first.source].fields, SOURCES[c.then.source].fields
        window: list[exp.Expression] = [exp.GTE(this=column("t_us"), expression=exp.Literal.number(r.since_us)),
                                          exp.LT(this=column("t_us"), expression=exp.Literal.number(r.until_us))]
        # The `then` side's own exact conditions (Python applies them again, with the rest).
        tests: list[exp.Expression] = [*window, *_exact(c.then.conditions, c.then.source)]
        # The `first` records that can match: in the window, passing the first side's exact conditions.
        exact = _exact(c.first.conditions, c.first.source)
        for a, b in c.join:
            # Per join value, its first and last `first` record: a `then` record matches only after the first
            # (strictly) and, with `within`, at most `within` after the last; with one join field, rows outside
            # those times are not read.
            query = exp.select(column(a), exp.Min(this=column("t_us")), exp.Max(this=column("t_us"))).from_(
                exp.to_table(table_name(c.first.source))).where(
                exp.and_(exp.Not(this=exp.Is(this=column(a), expression=exp.Null())), *window, *exact)
            ).group_by(column(a))
            found = self._con.execute(query.sql("duckdb")).fetchall()
            if any(not isinstance(v, str) for v, _, _ in found):
                return exp.true()  # a value only Python compares: no narrowing for this rule
            fold = first[a].email and then[b].email
            spans: dict[str, tuple[int, int]] = {}
            for v, lo, hi in found:
                key = v.casefold() if fold else v
                if key:
                    old = spans.get(key, (lo, hi))
                    spans[key] = (min(lo, old[0]), max(hi, old[1]))
            value = exp.Lower(this=column(b)) if fold else column(b)
            if not spans:
                test: exp.Condition = exp.false()
            elif len(c.join) == 1:
                until = [(k, lo, hi + c.within_us if c.within_us is not None else r.until_us)
                         for k, (lo, hi) in sorted(spans.items())]
                rows = [exp.tuple_(literal(k), exp.Literal.number(lo), exp.Literal.number(hi)) for k, lo, hi in until]
                name = f"k{len(joins)}"  # keys are distinct: a LEFT JOIN on them adds no row
                keys = exp.Values(expressions=rows, alias=exp.TableAlias(
                    this=exp.to_identifier(name), columns=[exp.to_identifier(n) for n in ("v", "lo", "hi")]))
                joins.append((keys, exp.EQ(this=exp.column("v", name), expression=value)))
                test = exp.and_(exp.GT(this=column("t_us"), expression=exp.column("lo", name)),
                                exp.LTE(this=column("t_us"), expression=exp.column("hi", name)))
            else:
                test = exp.In(this=value, expressions=[literal(k) for k in sorted(spans)])
            if fold:  # Python folds a non-ASCII address (casefold, not SQL's lower): such rows are kept
                test = exp.or_(exp.NEQ(this=exp.Anonymous(this="strlen", expressions=[column(b)]),
                                       expression=exp.Length(this=column(b))), test)
            # A value of the wrong type (its column null) is compared by Python as it is: kept.
            tests.append(exp.paren(exp.or_(test, wrong_type(b, DIALECTS["duckdb"]))))
        return exp.and_(*tests)

    def problem(self, log_source: str) -> SourceError | None:
        """The data problem of a log the engine could not load."""
        return SourceError(self._problems[log_source]) if log_source in self._problems else None

    def read(self, fetch: Fetch, index: int) -> Iterator[Part]:
        """The log's rows (narrowed for `then`-only logs), as records."""
        wanted = self._columns.get(fetch.source)
        if wanted is None:
            query = exp.select("r.*")
        else:  # t_us, the columns read or shown, and _odd (the values of the wrong type among them)
            query = exp.select(exp.column("t_us", "r"), *(exp.column(f, "r", quoted=True) for f in
                                                          SOURCES[fetch.source].fields if f in wanted),
                               exp.column(ODD, "r"))
        query = query.from_(exp.to_table(table_name(fetch.source), alias="r"))
        for keys, on in self._joins.get(fetch.source, ()):
            query = query.join(keys, on=on, join_type="left")
        where = self._where.get(fetch.source)
        if where is not None:
            query = query.where(where)
        yield Part(f"{fetch.source} (DuckDB)", self._rows(query.sql("duckdb"), fetch.source))

    def _rows(self, sql: str, source: str) -> Iterator[Timed]:
        cursor = self._con.execute(sql)
        names = [d[0] for d in cursor.description or ()]
        fields = [n for n in names[1:] if n not in EXTRAS]
        yield from records_of(names, iter(lambda: cursor.fetchmany(10000), []), fields, SOURCES[source].time_field)


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
