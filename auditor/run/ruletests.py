"""`auditor test`: run each rule's `tests:` cases on their fixture records, without network.

A case's records (inline, or from `records_file` in any `--data` format) are evaluated by the same runner
as `auditor run --data`, from memory (auditor.sources.memory, checked as a file's records are), so a case
proves the rule exactly as it runs; `--engine duckdb|spark` runs them on that engine instead, read as `--data`
files are (auditor.run.sql.run_records). Waivers do not apply: a case tests the rule's logic.

Reference time of a case: its `at`; without `at`, one second after its latest record, moved later by the
rule's `until` offset (e.g. `until: 1h`) so that the latest record is inside the window; a case without
records and without `at` uses the current time.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.compile.compiler import compile_plan
from auditor.compile.pushdown import files_target
from auditor.core.diagnostics import Code, Diagnostic, SourceLocation, display_path
from auditor.core.fields import SOURCES
from auditor.core.model import Config, Rule, RuleTest
from auditor.core.status import Status
from auditor.core.timeutil import US, format_time, parse_epoch, parse_time
from auditor.run.runner import RunOptions, run
from auditor.sources.base import DataError
from auditor.sources.files import find_source_files, iter_records
from auditor.sources.memory import MemorySource

_SPARK_CASES_AT_ONCE = 4


@dataclass(frozen=True)
class CaseResult:
    """One case: the status the rule got on the fixture records, against the expected one."""

    rule: Rule
    case: RuleTest
    status: Status  # pass | fail | error
    message: str
    reference_us: int

    @property
    def held(self) -> bool:
        """True when the rule's status is the expected one."""
        return self.status == self.case.expect

    def line(self) -> str:
        """`PASS rule-id: case name`, or FAIL/ERROR with what was measured and where the case is."""
        head = f"{self.rule.id}: {self.case.name}"
        if self.held:
            return f"PASS {head}"
        if self.status is Status.ERROR:
            return f"ERROR {head}: {self.message} ({self.case.location})"
        return (f"FAIL {head}: expected {self.case.expect}, got {self.status} at {format_time(self.reference_us)}: "
                f"{self.message} ({self.case.location})")


def case_records(rule: Rule, case: RuleTest) -> dict[str, list[dict[str, Any]]]:
    """The case's records per source; DataError for a records_file that cannot be read."""
    if case.records is not None:
        return {name: list(records) for name, records in case.records.items()}
    path = Path(case.records_file or "")
    source = rule.source if rule.source in SOURCES and not path.is_dir() else None
    out: dict[str, list[dict[str, Any]]] = {}
    for name, files in find_source_files(path, source).items():
        for file in files:
            out.setdefault(name, []).extend(iter_records(file, name))
    return out


def _time(record: dict[str, Any], source: str) -> int | None:
    stamp = record.get(SOURCES[source].time_field)
    try:
        return parse_time(stamp) if isinstance(stamp, str) else parse_epoch(stamp)
    except (ValueError, TypeError, OverflowError):
        return None


def reference_time(rule: Rule, case: RuleTest, records: dict[str, list[dict[str, Any]]], now_us: int) -> int:
    """The case's reference time T (see the module documentation)."""
    if case.at_us is not None:
        return case.at_us - case.at_us % US
    times = [t for name, items in records.items() for r in items if (t := _time(r, name)) is not None]
    if not times:
        return now_us
    latest = max(times)
    return latest - latest % US + US + (rule.until.before_us or 0)


def run_case(rule: Rule, case: RuleTest, config: Config, now_us: int, engine: str = "python",
             spark_master: str = "local[*]") -> tuple[CaseResult | None, list[Diagnostic]]:
    """Evaluate one case on `engine`; diagnostics (exit 2) when its records or window cannot be used."""
    try:
        records = case_records(rule, case)
    except DataError as exc:
        location = SourceLocation(display_path(exc.path), exc.line or 0)
        return None, [Diagnostic(Code.TEST_RECORDS_UNREADABLE,
                                 f"test '{case.name}' of rule '{rule.id}': {exc.message}", location)]
    at = reference_time(rule, case, records, now_us)
    plan, problems = compile_plan([rule], config, at, None, target=files_target())  # records in memory: all local
    if problems:
        return None, [Diagnostic(d.code, f"test '{case.name}': {d.message}", case.location, d.hint) for d in problems]
    if engine == "python":
        result = run(plan, MemorySource(records), RunOptions()).results[0]
    else:
        from auditor.run.sql import run_records

        result = run_records(plan, records, engine, spark_master).results[0]
    return CaseResult(rule, case, result.status, result.message, at), []


def run_tests(rules: Iterable[Rule], config: Config, now_us: int, engine: str = "python",
              spark_master: str = "local[*]") -> tuple[list[CaseResult], list[Diagnostic]]:
    """Every case of every rule, in file order, on `engine` (python, duckdb or spark)."""
    cases = [(rule, case) for rule in rules for case in rule.tests]

    def one(item: tuple[Rule, RuleTest]) -> tuple[CaseResult | None, list[Diagnostic]]:
        return run_case(item[0], item[1], config, now_us, engine, spark_master)

    if engine == "spark":
        # Each Spark query of a tiny case is mostly waiting (planning, scheduling): cases go side by side.
        with ThreadPoolExecutor(_SPARK_CASES_AT_ONCE) as pool:
            outcomes = list(pool.map(one, cases))
    else:
        outcomes = [one(item) for item in cases]
    results: list[CaseResult] = []
    problems: list[Diagnostic] = []
    for result, found in outcomes:
        problems.extend(found)
        if result is not None:
            results.append(result)
    return results, problems
