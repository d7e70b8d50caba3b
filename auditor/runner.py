"""Orchestration only: a plan and a record source -> RunResult, isolating failures per fetch."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.diagnostics import display_path
from auditor.evaluate import RuleEvaluator
from auditor.fields import SOURCES
from auditor.plan import CompiledRule, Plan
from auditor.results import RuleResult, RunResult
from auditor.sources.files import DataError, find_source_files, iter_records
from auditor.timeutil import parse_epoch, parse_time


@dataclass(frozen=True)
class RunOptions:
    """Run settings that are not part of the plan."""

    fail_on: str = "info"
    rules_sha256: str = ""
    config_sha256: str | None = None


@dataclass
class _Unit:
    """One stream of records and the rules that read it (a fetch, or a source's files)."""

    source: str
    rules: list[CompiledRule]
    open: Callable[[], Iterable[tuple[str, Iterator[dict[str, Any]]]]]


def _evaluate_unit(unit: _Unit, plan: Plan) -> tuple[list[RuleResult], int]:
    """One pass over a unit's records feeding every rule; any data error makes all its rules `error`."""
    evaluators = [RuleEvaluator(r) for r in unit.rules]
    feeds = [e.feed for e in evaluators]
    time_field = SOURCES[unit.source].time_field
    records = 0
    describe = {r.rule.id: plan.fetch(r.fetch_key).describe(plan.account_id) for r in unit.rules}
    try:
        for origin, stream in unit.open():
            for n, record in enumerate(stream, 1):
                raw = record.get(time_field)
                try:
                    t_us = parse_time(raw) if isinstance(raw, str) else parse_epoch(raw)
                except (ValueError, TypeError, OverflowError):
                    raise DataError(Path(origin), None, f"record {n}: invalid {time_field} {raw!r} "
                                    "(expected an RFC 3339 timestamp)") from None
                records += 1
                for feed in feeds:
                    feed(record, t_us)
    except DataError as exc:
        message = f"data error, rule not evaluated: {exc}"
        return [RuleResult(r, "error", message, describe[r.rule.id]) for r in unit.rules], records
    results = []
    for e in evaluators:
        o = e.outcome()
        results.append(RuleResult(e.compiled, o.status, o.message, describe[e.rule.id], o.measurements,
                                  o.violations, o.evidence))
    return results, records


def _file_units(plan: Plan, data: Path, source: str | None) -> tuple[list[_Unit], list[RuleResult]]:
    """Files: one pass per source over all its files, feeding every rule of that source."""
    by_source: dict[str, list[CompiledRule]] = {}
    for r in plan.rules:
        by_source.setdefault(r.rule.source, []).append(r)
    units: list[_Unit] = []
    errors: list[RuleResult] = []
    try:
        files = find_source_files(data, source)
    except DataError as exc:
        files, problem = {}, str(exc)
    else:
        problem = None
    for name, rules in by_source.items():
        paths = files.get(name)
        if not paths:
            why = problem or f"no {name} file in {display_path(data)} (expected {name}.ndjson, .jsonl or .json)"
            errors.extend(RuleResult(r, "error", f"data error, rule not evaluated: {why}",
                                     plan.fetch(r.fetch_key).describe(plan.account_id)) for r in rules)
            continue

        def opener(paths: list[Path] = paths, name: str = name) -> Iterator[tuple[str, Iterator[dict]]]:
            for p in paths:
                yield display_path(p), iter_records(p, name)

        units.append(_Unit(name, rules, opener))
    return units, errors


def run_files(plan: Plan, data: Path, source: str | None, options: RunOptions) -> RunResult:
    """Evaluate a plan over exported log files (no network)."""
    started = time.monotonic()
    units, results = _file_units(plan, data, source)
    total = 0
    for unit in units:
        unit_results, records = _evaluate_unit(unit, plan)
        results.extend(unit_results)
        total += records
    return _collect(plan, "files", results, total, options, started)


def _collect(plan: Plan, source: str, results: list[RuleResult], records: int, options: RunOptions,
             started: float, requests: tuple = ()) -> RunResult:
    order = {r.rule.id: i for i, r in enumerate(plan.rules)}
    results.sort(key=lambda r: order[r.compiled.rule.id])
    return RunResult(
        reference_us=plan.reference_us,
        account_id=plan.account_id,
        source=source,
        results=tuple(results),
        fail_on=options.fail_on,
        api_requests=len(requests),
        records_fetched=records,
        duration_s=time.monotonic() - started,
        rules_sha256=options.rules_sha256,
        config_sha256=options.config_sha256,
        requests=requests,
    )
