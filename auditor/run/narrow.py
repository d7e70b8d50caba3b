"""Narrowing correlation `then` sides once their `first` sides are read (see `auditor.run.runner.run`)."""

from __future__ import annotations

from collections.abc import Callable

from auditor.compile.compiler import compile_plan
from auditor.compile.plan import Fetch, Plan
from auditor.evaluate.correlate import Correlations


def narrowed(plan: Plan, correlations: Correlations,
             unit_of: Callable[[Fetch], str]) -> tuple[Plan, dict[str, str]]:
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
            correlations.rebind_then(r.rule.id, unit_of(rest.fetch(side.fetch_key)))
            then = rest.fetch(side.fetch_key).describe(plan.account_id)
            described[r.rule.id] = f"first: {first_query[r.rule.id]}; then: {then}"
    return rest, described
