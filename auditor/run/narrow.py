"""The run side of narrowing: once the `first` sides are read, ask the planner for the rest of the plan
(auditor.compile.narrow) and point each correlation rule's `then` side at its new fetch."""

from __future__ import annotations

from collections.abc import Callable

from auditor.compile.narrow import narrow
from auditor.compile.plan import Fetch, Plan
from auditor.evaluate.correlate import Correlations


def narrowed(plan: Plan, correlations: Correlations, unit_of: Callable[[Fetch], str],
             describe: Callable[[Fetch], str]) -> tuple[Plan, dict[str, str]]:
    """The plan for what the `first` sides' fetches did not cover, each `then` side narrowed to where it can
    match (and rebound in `correlations`); and, per correlation rule, the queries its data came from (as the
    source names them: `describe`)."""
    spans: dict[str, tuple[int, int]] = {}
    first_query: dict[str, str] = {}
    described: dict[str, str] = {}
    for e in correlations.evaluators:
        rule_id = e.rule.id
        first_query[rule_id] = describe(next(plan.fetch(s.fetch_key) for s in e.compiled.sides
                                             if s.name == "first"))
        span = None if e.error is not None else e.then_span()
        if span is None:
            why = "its first side failed" if e.error is not None else "no first record matched"
            described[rule_id] = f"first: {first_query[rule_id]}; then: not fetched ({why})"
        else:
            spans[rule_id] = span
    rest = narrow(plan, spans)
    for r in rest.rules:
        for side in r.sides:  # the `then` side only
            correlations.rebind_then(r.rule.id, unit_of(rest.fetch(side.fetch_key)))
            then = describe(rest.fetch(side.fetch_key))
            described[r.rule.id] = f"first: {first_query[r.rule.id]}; then: {then}"
    return rest, described
