"""Orchestration only: a plan and a record source -> RunResult, isolating failures per fetch."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from auditor.compile.compiler import compile_plan
from auditor.compile.plan import CompiledRule, Fetch, Plan
from auditor.core.diagnostics import display_path
from auditor.core.fields import SOURCES
from auditor.core.model import Waiver
from auditor.core.timeutil import EPOCH, MICROSECOND, parse_epoch
from auditor.decide.baseline import mark_baseline
from auditor.decide.period import finish as finish_period
from auditor.decide.waivers import apply_waivers
from auditor.evaluate import parallel
from auditor.evaluate.correlate import Correlations
from auditor.evaluate.periodic import correlation_evaluator, evaluator
from auditor.evaluate.results import RuleResult, RunResult
from auditor.evaluate.router import Router
from auditor.sources.cloudflare.client import ApiClient, FetchError
from auditor.sources.files import DataError, find_source_files, iter_records


@dataclass(frozen=True)
class RunOptions:
    """Run settings that are not part of the plan."""

    fail_on: str = "info"
    rules_sha256: str = ""
    config_sha256: str | None = None
    waivers: tuple[Waiver, ...] = ()
    waivers_sha256: str | None = None  # set when a waivers file is in effect (even an empty one)
    baseline: dict[str, Any] | None = None  # an earlier run's results JSON (--baseline)
    fail_on_new: bool = False
    retention_days: int = 30  # periodic runs over the API warn when they read further back (config)
    exact_plan: bool = False  # `run --plan`: make exactly the plan's fetches, no re-planning of `then` sides


@dataclass
class _Unit:
    """One stream of records and the rules that read it (a fetch, or a source's files)."""

    source: str
    rules: list[CompiledRule]
    open: Callable[[], Iterable[tuple[str, Iterator[dict[str, Any]]]]]
    # Correlation sides reading this unit: (since, until, feed); told when the unit ends (error or None).
    extra: list[tuple[int, int, Callable[[dict[str, Any], int], None]]] = field(default_factory=list)
    done: Callable[[str | None], None] = lambda error: None
    size: int = 0  # bytes of files behind `open` (0: a stream that cannot be read twice, e.g. the API)


def _evaluate_unit(unit: _Unit, plan: Plan) -> tuple[list[RuleResult], int]:
    """One pass over a unit's records feeding every rule; any data error makes all its rules `error`."""
    evaluators = [evaluator(r) for r in unit.rules]  # per step for a periodic plan
    describe = {r.rule.id: plan.fetch(r.fetch_key).describe(plan.account_id) for r in unit.rules}
    # Large exported logs: a forked helper evaluates some of the rules in its own pass (auditor.evaluate.parallel).
    ctx = parallel.context(unit.size)
    handed = [evaluators[i] for i in parallel.share([_span(e) for e in evaluators],
                                                   sum(_span(x) for x in unit.extra))] if ctx else []
    helper = parallel.Helper(ctx, lambda: _helper_pass(unit, handed)) if handed and ctx else None
    kept = [e for e in evaluators if all(e is not h for h in handed)]
    records = 0
    started = time.monotonic()
    try:
        records = _feed(unit, [(e.since_us, e.until_us, e.feed) for e in kept] + unit.extra)
        outcomes = {id(e): e.outcome() for e in kept}
        if handed:
            # The helper's pass is about as long as ours: one far longer is stuck, and we do its work.
            wait_s = max(60.0, 3 * (time.monotonic() - started))
            outcomes.update(zip(map(id, handed), _helped(unit, handed, helper, wait_s), strict=True))
    except BaseException as exc:
        if helper is not None:
            helper.close()  # also on Ctrl-C: the helper ends with the run
        if not isinstance(exc, DataError):
            raise
        message = f"data error, rule not evaluated: {exc}"
        unit.done(message)
        return [RuleResult(r, "error", message, describe[r.rule.id]) for r in unit.rules], records
    unit.done(None)
    results = []
    for e in evaluators:
        o = outcomes[id(e)]
        results.append(RuleResult(e.compiled, o.status, o.message, describe[e.rule.id], o.measurements,
                                  o.violations, o.evidence, groups=o.groups, steps=o.steps))
    return results, records


def _feed(unit: _Unit, feeds: list[tuple[int, int, Callable[[dict[str, Any], int], None]]]) -> int:
    """One pass over the unit's records, each offered to the feeds whose window holds its time; the number
    of records. DataError for a record without a valid time (and from the source)."""
    # Records outside a rule's window cost no call at all: the router knows which windows are open.
    route = Router(feeds)
    lo, hi, fanout = route.segment(0)
    time_field = SOURCES[unit.source].time_field
    fromisoformat = datetime.fromisoformat  # parse_time, inlined: this runs once per record
    records = 0
    for origin, stream in unit.open():
        first = records
        for record in stream:
            raw = record.get(time_field)
            try:
                t_us = (fromisoformat(raw) - EPOCH) // MICROSECOND if isinstance(raw, str) else parse_epoch(raw)
            except (ValueError, TypeError, OverflowError):
                raise DataError(Path(origin), None, f"record {records - first + 1}: invalid {time_field} {raw!r} "
                                "(expected an RFC 3339 timestamp)") from None
            records += 1
            if not lo <= t_us < hi:  # left the span where the same feeds are open (auditor.evaluate.router)
                lo, hi, fanout = route.segment(t_us)
            fanout(record, t_us)
    return records


def _span(feed: Any) -> float:
    """How much of a pass a feed (an evaluator, or a (since, until, feed) triple) is expected to cost: the span
    of its window, up to 31 days."""
    since, until = (feed[0], feed[1]) if isinstance(feed, tuple) else (feed.since_us, feed.until_us)
    return float(min(until - since, 31 * 86400 * 1_000_000))


def _helper_pass(unit: _Unit, handed: list[Any]) -> tuple[str, Any]:
    """In the helper process: feed the handed evaluators, return their outcomes (or the data error)."""
    try:
        _feed(unit, [(e.since_us, e.until_us, e.feed) for e in handed])
    except DataError as exc:
        return "data", (str(exc.path), exc.line, exc.message)
    return "ok", [e.outcome() for e in handed]


def _helped(unit: _Unit, handed: list[Any], helper: parallel.Helper | None, wait_s: float) -> list[Any]:
    """The handed evaluators' outcomes from the helper; if it failed, from a pass of our own."""
    got = helper.result(wait_s) if helper is not None else None
    if got is None:
        _feed(unit, [(e.since_us, e.until_us, e.feed) for e in handed])
        return [e.outcome() for e in handed]
    kind, value = got
    if kind == "data":  # the files changed between the two passes, or the helper read them differently
        raise DataError(Path(value[0]), value[1], value[2])
    return value


def _file_units(plan: Plan, data: Path, source: str | None,
                correlations: Correlations) -> tuple[list[_Unit], list[RuleResult]]:
    """Files: one pass per source over all its files, feeding every rule of that source (and every
    correlation side reading it)."""
    by_source: dict[str, list[CompiledRule]] = {name: [] for name in sorted(correlations.units())}
    for r in plan.rules:
        if not r.sides:
            by_source.setdefault(r.rule.source, []).append(r)
    units: list[_Unit] = []
    errors: list[RuleResult] = []
    problem: str | None = None
    try:
        files = find_source_files(data, source)
    except DataError as exc:
        files, problem = {}, str(exc)
    for name, rules in by_source.items():
        paths = files.get(name)
        if not paths:
            why = problem or f"no {name} file in {display_path(data)} (expected {name}.ndjson, .jsonl or .json)"
            errors.extend(RuleResult(r, "error", f"data error, rule not evaluated: {why}",
                                     plan.fetch(r.fetch_key).describe(plan.account_id)) for r in rules)
            correlations.finished(name, f"data error, rule not evaluated: {why}")
            continue

        def opener(paths: list[Path] = paths, name: str = name) -> Iterator[tuple[str, Iterator[dict]]]:
            for p in paths:
                yield display_path(p), iter_records(p, name)

        units.append(_Unit(name, rules, opener, correlations.feeds(name),
                           functools.partial(correlations.finished, name), _size(paths)))
    return units, errors


def _size(paths: list[Path]) -> int:
    try:
        return sum(p.stat().st_size for p in paths)
    except OSError:
        return 0


def run_files(plan: Plan, data: Path, source: str | None, options: RunOptions) -> RunResult:
    """Evaluate a plan over exported log files (no network)."""
    started = time.monotonic()
    correlations = Correlations(plan.rules, lambda side: side.source, correlation_evaluator)
    units, results = _file_units(plan, data, source, correlations)
    total = 0
    for unit in correlations.ordered(units, lambda u: u.source):  # `first` sides before the `then` sides
        unit_results, records = _evaluate_unit(unit, plan)
        results.extend(unit_results)
        total += records
    results.extend(_correlation_results(plan, correlations))
    return _collect(plan, "files", results, total, options, started)


def run_api(plan: Plan, client: ApiClient, options: RunOptions) -> RunResult:
    """Evaluate a plan over the live API: one unit per fetch, fetched in parallel; a failed fetch errors
    only the rules that read it.

    When the plan `narrows` (and is not a saved plan to run exactly), the fetches of correlation `first`
    sides are read first and the rest of the plan is compiled again with each `then` side fetched only over
    the times a record of it can match: after the earliest matching `first` record (and within `within` of
    the latest). A leaver rule over 30 days then reads the sign-ins since the first deprovisioning, not 30
    days of them.
    """
    started = time.monotonic()
    correlations = Correlations(plan.rules, lambda side: side.fetch_key, correlation_evaluator)
    described: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=client.concurrency, thread_name_prefix="auditor-fetch") as pool:
        try:
            if plan.narrows() and not options.exact_plan:
                firsts = [f for f in plan.fetches if f.key in plan.first_keys()]
                outcomes = _fetch(plan, firsts, pool, client, correlations, 0)
                rest, described = _replan(plan, correlations)
                client.expect_fetches(len(firsts) + len(rest.fetches))
                outcomes += _fetch(rest, list(rest.fetches), pool, client, correlations, len(plan.fetches))
            else:
                outcomes = _fetch(plan, list(plan.fetches), pool, client, correlations, 0)
        except BaseException:
            client.cancel()  # Ctrl-C: requests and waits give up, so the pool's shutdown is quick
            raise
    results = [r for unit_results, _ in outcomes for r in unit_results]
    results.extend(_correlation_results(plan, correlations, described))
    total = sum(records for _, records in outcomes)
    return _collect(plan, "api", results, total, options, started, requests=client.requests())


def _fetch(plan: Plan, fetches: list[Fetch], pool: ThreadPoolExecutor, client: ApiClient,
           correlations: Correlations, offset: int) -> list[tuple[list[RuleResult], int]]:
    """Read `fetches` (of `plan`) in parallel, each evaluated as it streams; their outcomes in order."""
    # A fetch feeding correlation `then` sides starts once the fetches of their `first` sides are done, so
    # the `then` records stream against a complete index instead of being buffered.
    futures: dict[str, Future[tuple[list[RuleResult], int]]] = {}
    for index, fetch in correlations.ordered(enumerate(fetches, offset), lambda item: item[1].key):
        wait([futures[k] for k in correlations.depends(fetch.key) if k in futures])
        futures[fetch.key] = pool.submit(_api_unit, plan, client, index, fetch, correlations)
    return [futures[f.key].result() for f in fetches]


def _replan(plan: Plan, correlations: Correlations) -> tuple[Plan, dict[str, str]]:
    """The plan for what the `first` sides' fetches did not cover, each `then` side narrowed to where it can
    match (and rebound in `correlations`); and, per correlation rule, the queries its data came from."""
    firsts = plan.first_keys()
    evaluators = {e.rule.id: e for e in correlations.evaluators}
    rules, spans, first_query, described = [], {}, {}, {}
    for r in plan.rules:
        if not r.sides:
            if r.fetch_key not in firsts:
                rules.append(r.rule)
            continue
        e = evaluators[r.rule.id]
        first_query[r.rule.id] = next(plan.fetch(s.fetch_key) for s in r.sides
                                      if s.name == "first").describe(plan.account_id)
        span = None if e.error is not None else e.then_span()
        if span is None:
            why = "its first side failed" if e.error is not None else "no first record matched"
            described[r.rule.id] = f"first: {first_query[r.rule.id]}; then: not fetched ({why})"
        else:
            spans[r.rule.id] = span
            rules.append(r.rule)
    config = plan.config
    if config is None:
        raise ValueError("a plan without its config cannot be re-planned")  # plan.narrows() rules this out
    rest, _ = compile_plan(rules, config, plan.reference_us, plan.account_id, plan.period, then_spans=spans)
    for r in rest.rules:
        for side in r.sides:  # the `then` side only
            correlations.rebind_then(r.rule.id, side.fetch_key)
            then = rest.fetch(side.fetch_key).describe(plan.account_id)
            described[r.rule.id] = f"first: {first_query[r.rule.id]}; then: {then}"
    return rest, described


def _api_unit(plan: Plan, client: ApiClient, index: int, fetch: Fetch,
              correlations: Correlations) -> tuple[list[RuleResult], int]:
    rules = [r for r in plan.rules_of(fetch.key) if not r.sides]
    delivered = 0  # records handed to the evaluators, also counted when the fetch fails half-way

    def opener() -> Iterator[tuple[str, Iterator[dict[str, Any]]]]:
        nonlocal delivered
        for origin, records in client.stream(fetch, index):
            delivered += len(records)
            yield origin, iter(records)

    def done(error: str | None) -> None:
        correlations.finished(fetch.key, error)

    try:
        return _evaluate_unit(_Unit(fetch.source, rules, opener, correlations.feeds(fetch.key), done), plan)
    except FetchError as exc:
        describe = fetch.describe(plan.account_id)
        done(f"rule not evaluated, data missing: {exc}")
        return [RuleResult(r, "error", f"rule not evaluated, data missing: {exc}", describe) for r in rules], delivered


def _describe(plan: Plan, r: CompiledRule) -> str:
    """The fetch(es) that fed a rule: `GET ...`, or `first: GET ...; then: GET ...` for a correlation rule."""
    if not r.sides:
        return plan.fetch(r.fetch_key).describe(plan.account_id)
    return "; ".join(f"{s.name}: {plan.fetch(s.fetch_key).describe(plan.account_id)}" for s in r.sides)


def _correlation_results(plan: Plan, correlations: Correlations,
                         described: dict[str, str] | None = None) -> list[RuleResult]:
    """Correlation rules, decided once both of their sides were read; an error on either side errors them.
    `described`: how a rule's data was read when its `then` side was re-planned (`_replan`)."""
    out = []
    for compiled, o, error in correlations.outcomes():
        query = (described or {}).get(compiled.rule.id) or _describe(plan, compiled)
        if o is None:
            out.append(RuleResult(compiled, "error", error or "rule not evaluated", query))
        else:
            out.append(RuleResult(compiled, o.status, o.message, query, o.measurements,
                                  o.violations, o.evidence, groups=o.groups, steps=o.steps))
    return out


def _collect(plan: Plan, source: str, results: list[RuleResult], records: int, options: RunOptions,
             started: float, requests: tuple = ()) -> RunResult:
    order = {r.rule.id: i for i, r in enumerate(plan.rules)}
    results.sort(key=lambda r: order[r.compiled.rule.id])
    run = RunResult(
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
        waivers_sha256=options.waivers_sha256,
        fail_on_new=options.fail_on_new,
    )
    if plan.period is not None:  # waivers per step, worst step, timeline
        waivers = options.waivers if options.waivers_sha256 is not None else None
        run = finish_period(run, plan, waivers, retention_days=options.retention_days)
    elif options.waivers_sha256 is not None:
        run = apply_waivers(run, options.waivers)
    if options.baseline is not None:
        run = mark_baseline(run, options.baseline)
    return run
