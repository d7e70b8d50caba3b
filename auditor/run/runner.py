"""Orchestration only: a plan and its record sources -> RunResult, isolating failures per unit.

`run(plan, sources, options)` is the one way a plan is evaluated, over exported files, the API or records in
memory alike (auditor.sources.base). The fetches a source reads in one pass form a unit (auditor.run.unit);
correlation sides are keyed by unit, so a `first` side is complete before the `then` sides that need it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from auditor.compile.plan import CompiledRule, Fetch, Plan
from auditor.core.coverage import Coverage, Seen
from auditor.core.model import Waiver
from auditor.core.status import Severity, Status
from auditor.decide.baseline import mark_baseline
from auditor.decide.coverage import apply as apply_coverage
from auditor.decide.coverage import inferred_warnings
from auditor.decide.gate import Gate
from auditor.decide.period import finish as finish_period
from auditor.decide.waivers import apply_waivers
from auditor.evaluate.correlate import Correlations
from auditor.evaluate.periodic import correlation_evaluator
from auditor.evaluate.results import RuleResult, RunResult
from auditor.run.narrow import narrowed
from auditor.run.unit import Unit, UnitOutcome, evaluate
from auditor.sources.base import Source


@dataclass(frozen=True)
class RunOptions:
    """Run settings that are not part of the plan."""

    fail_on: Severity = Severity.INFO
    rules_sha256: str = ""
    config_sha256: str | None = None
    waivers: tuple[Waiver, ...] = ()
    waivers_sha256: str | None = None  # set when a waivers file is in effect (even an empty one)
    baseline: dict[str, Any] | None = None  # an earlier run's results JSON (--baseline)
    fail_on_new: bool = False
    # Said before the run (a window beyond what the API serves), kept in the results' warnings.
    warnings: tuple[str, ...] = ()
    exact_plan: bool = False  # `run --plan`: make exactly the plan's fetches, no narrowing of `then` sides
    coverage: Coverage | None = None  # instead of what the source states it covers (auditor.core.coverage)


class _Units:
    """The run's units: which source reads each fetch, and the unit (key) each fetch belongs to."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self.sources = sources
        self.key: dict[str, str] = {}  # fetch key -> unit key

    def source_of(self, fetch: Fetch) -> Source:
        """The first source able to read the fetch's log source (else the first, whose problem is reported)."""
        return next((s for s in self.sources if s.problem(fetch.source) is None), self.sources[0])

    def bind(self, fetches: Sequence[Fetch]) -> None:
        """Key each fetch by its unit (a fetch already bound keeps its unit)."""
        for f in fetches:
            if f.key not in self.key:
                source = self.source_of(f)
                self.key[f.key] = f"{self.sources.index(source)}:{source.unit(f)}"

    def unit_of(self, fetch: Fetch) -> str:
        """The unit a fetch belongs to."""
        self.bind([fetch])
        return self.key[fetch.key]

    def make(self, plan: Plan, fetches: Sequence[Fetch], correlations: Correlations,
             offset: int = 0) -> tuple[list[Unit], list[RuleResult]]:
        """Units for `fetches` (of `plan`), and error results for the rules of fetches no source can read."""
        self.bind(fetches)
        units: dict[str, Unit] = {}
        failed: dict[str, str] = {}  # unit key -> the message its rules error with
        errors: list[RuleResult] = []
        for index, f in enumerate(fetches, offset):
            key = self.key[f.key]
            rules = [r for r in plan.rules_of(f.key) if not r.sides]
            if key not in units and key not in failed:
                source = self.source_of(f)
                problem = source.problem(f.source)
                if problem is None:
                    units[key] = Unit(key, source, f, index, [], functools.partial(_describe, plan, source=source),
                                      correlations.feeds(key), functools.partial(correlations.finished, key))
                else:
                    failed[key] = problem.rule_message()
                    correlations.finished(key, failed[key])
            if key in failed:
                errors.extend(RuleResult(r, Status.ERROR, failed[key], _describe(plan, r, units=self)) for r in rules)
            else:
                units[key].rules.extend(r for r in rules if r not in units[key].rules)
        return list(units.values()), errors


def run(plan: Plan, sources: Source | Sequence[Source], options: RunOptions) -> RunResult:
    """Evaluate a plan over record sources (each fetch read by the first source that can); a source that fails
    errors only the rules that read what it failed to deliver.

    When the source `narrows` (the API) and the plan has correlation `then` sides on fetches of their own (and
    is not a saved plan to run exactly), the `first` sides' fetches are read first and the planner narrows the
    rest of the plan (auditor.compile.narrow): each `then` side fetched only over the times a record of it can
    match, after the earliest matching `first` record (and within `within` of the latest). A leaver rule over
    30 days then reads the sign-ins since the first deprovisioning, not 30 days of them.
    """
    started = time.monotonic()
    chosen: Sequence[Source] = (sources,) if not isinstance(sources, Sequence) else sources
    units = _Units(chosen)
    units.bind(plan.fetches)
    correlations = Correlations(plan.rules, lambda side: units.key[side.fetch_key], correlation_evaluator)
    described: dict[str, str] = {}
    concurrency = max(s.concurrency for s in chosen)
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="auditor-fetch") if concurrency > 1 else None
    try:
        if chosen[0].narrows and plan.narrows() and not options.exact_plan:
            firsts = [f for f in plan.fetches if f.key in plan.first_keys()]
            outcomes = _read(plan, firsts, units, correlations, pool)
            rest, described = narrowed(plan, correlations, units.unit_of,
                                       lambda f: units.source_of(f).describe(f, plan.account_id))
            for s in chosen:
                s.expect(len(firsts) + len(rest.fetches))
            outcomes += _read(rest, list(rest.fetches), units, correlations, pool, len(plan.fetches))
        else:
            outcomes = _read(plan, list(plan.fetches), units, correlations, pool)
    except BaseException:
        for s in chosen:
            s.cancel()  # Ctrl-C: requests and waits give up, so the pool's shutdown is quick
        raise
    finally:
        if pool is not None:
            pool.shutdown()
    results = [r for o in outcomes for r in o.results]
    results.extend(_correlation_results(plan, units, correlations, described))
    records = sum(o.records for o in outcomes)
    notes = tuple(n for o in outcomes for n in o.notes) + tuple(n for s in chosen for n in s.notes())
    requests = tuple(q for s in chosen for q in s.requests())
    coverage = options.coverage if options.coverage is not None else chosen[0].coverage(_seen(plan, outcomes))
    files = tuple(f for s in chosen for f in s.files())
    return _collect(plan, chosen[0].kind, results, records, options, started, requests, notes, coverage, files)


def _seen(plan: Plan, outcomes: list[UnitOutcome]) -> dict[str, Seen]:
    """Per log the plan reads: the earliest and latest record time read (None when no record was)."""
    seen: dict[str, Seen] = {f.source: (None, None) for f in plan.fetches}
    for o in outcomes:
        if o.seen is not None:
            log, first, last = o.seen
            lo, hi = seen.get(log, (None, None))
            seen[log] = (first if lo is None else min(lo, first), last if hi is None else max(hi, last))
    return seen


def _read(plan: Plan, fetches: list[Fetch], units: _Units, correlations: Correlations,
          pool: ThreadPoolExecutor | None, offset: int = 0) -> list[UnitOutcome]:
    """Read the units of `fetches` (of `plan`), each evaluated as it streams; in parallel when there is a pool.

    A unit feeding correlation `then` sides starts once the units of their `first` sides are done, so the
    `then` records stream against a complete index instead of being buffered."""
    made, errors = units.make(plan, fetches, correlations, offset)
    out = [UnitOutcome(errors, 0)] if errors else []
    ordered = correlations.ordered(made, lambda u: u.key)
    if pool is None:
        return out + [evaluate(u) for u in ordered]
    futures: dict[str, Future[UnitOutcome]] = {}
    for unit in ordered:
        wait([futures[k] for k in correlations.depends(unit.key) if k in futures])
        futures[unit.key] = pool.submit(evaluate, unit)
    return out + [futures[u.key].result() for u in made]


def _describe(plan: Plan, r: CompiledRule, source: Source | None = None, units: _Units | None = None) -> str:
    """The fetch(es) that fed a rule: `GET ...`, or `first: GET ...; then: GET ...` for a correlation rule;
    a fetch the API refused as planned names the query it was read with instead."""
    def one(key: str) -> str:
        fetch = plan.fetch(key)
        # How the source names what it read: the request, or the files.
        reader = source if source is not None else units.source_of(fetch) if units is not None else None
        text = reader.describe(fetch, plan.account_id) if reader is not None else fetch.describe()
        instead = source.read_as(fetch) if source is not None else None
        return text if instead is None else f"{text} (refused with 400; read as {instead}, filtered locally)"

    if not r.sides:
        return one(r.fetch_key)
    return "; ".join(f"{s.name}: {one(s.fetch_key)}" for s in r.sides)


def _correlation_results(plan: Plan, units: _Units, correlations: Correlations,
                         described: dict[str, str]) -> list[RuleResult]:
    """Correlation rules, decided once both of their sides were read; an error on either side errors them.
    `described`: how a rule's data was read when its `then` side was narrowed."""
    out = []
    for compiled, o, error in correlations.outcomes():
        query = described.get(compiled.rule.id) or _describe(plan, compiled, units=units)
        if o is None:
            out.append(RuleResult(compiled, Status.ERROR, error or "rule not evaluated", query))
        else:
            out.append(RuleResult(compiled, o.status, o.message, query, o.measurements,
                                  o.violations, o.evidence, groups=o.groups, steps=o.steps))
    return out


def _collect(plan: Plan, source: str, results: list[RuleResult], records: int, options: RunOptions,
             started: float, requests: tuple = (), notes: tuple[str, ...] = (),
             coverage: Coverage | None = None, files: tuple = ()) -> RunResult:
    """The run's result: each rule decided against the coverage of its window, then periods, waivers, baseline."""
    notes = (*options.warnings, *notes)
    if coverage is not None:
        results = [apply_coverage(r, coverage) for r in results]
        notes = (*notes, *inferred_warnings(coverage))
    order = {r.rule.id: i for i, r in enumerate(plan.rules)}
    results.sort(key=lambda r: order[r.compiled.rule.id])
    run = RunResult(
        reference_us=plan.reference_us,
        account_id=plan.account_id,
        source=source,
        results=tuple(results),
        api_requests=len(requests),
        records_fetched=records,
        duration_s=time.monotonic() - started,
        warnings=notes,
        rules_sha256=options.rules_sha256,
        config_sha256=options.config_sha256,
        requests=requests,
        coverage=coverage,
        files=files,
        waivers_sha256=options.waivers_sha256,
    )
    if plan.period is not None:  # waivers per step, worst step, timeline
        waivers = options.waivers if options.waivers_sha256 is not None else None
        run = finish_period(run, plan, waivers)
    elif options.waivers_sha256 is not None:
        run = apply_waivers(run, options.waivers)
    if options.baseline is not None:
        run = mark_baseline(run, options.baseline)
    return Gate(Severity(options.fail_on), options.fail_on_new).apply(run)
