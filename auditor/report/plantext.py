"""The human-readable plan `auditor plan` prints: each fetch, its filters and fields, and the rules it serves."""

from __future__ import annotations

from auditor.compile.plan import Plan
from auditor.core.timeutil import format_time


def _fetches(n: int) -> str:
    return f"{n} fetch{'es' if n != 1 else ''}"


def _headline(plan: Plan) -> list[str]:
    if plan.period is None:
        return [f"Plan at {format_time(plan.reference_us)}: {len(plan.rules)} rules, {_fetches(len(plan.fetches))} "
                f"(pushdown: {plan.pushdown})", ""]
    p = plan.period
    return [f"Plan for period {p.label} ({p.tz}): {len(p.steps)} step{'s' if len(p.steps) != 1 else ''} of "
            f"{p.step} at {format_time(p.steps[0])} .. {format_time(p.steps[-1])}; {len(plan.rules)} rules, "
            f"{_fetches(len(plan.fetches))} for the whole period (pushdown: {plan.pushdown})",
            "Each rule's window is evaluated at every step; rules below show the span of all steps.", ""]


def plan_text(plan: Plan) -> str:
    """The plan as text: one block per fetch, then what `api:` and `local:` mean."""
    lines = _headline(plan)
    for f in plan.fetches:
        rules = plan.rules_of(f.key)
        lines.append(f"fetch {f.key}  {f.source}  {format_time(f.since_us)} .. {format_time(f.until_us)}")
        params = " ".join(f"{k}={v}" for k, v in f.filter_params()) or "(none)"
        lines.append(f"  api filters: {params}")
        lines.append(f"  fields:      {','.join(f.fields)}")
        shared = " (shared)" if len(rules) > 1 else ""
        lines.append(f"  rules{shared}:")
        for r in rules:
            for side, pushed, local in r.parts(f.key):  # a correlation rule: its `first` or `then` side
                what = f"  (correlation: {side} side)" if side else ""
                lines.append(f"    {r.rule.id}  [{format_time(r.since_us)} .. {format_time(r.until_us)}){what}")
                if pushed:
                    lines.append(f"      api:   {'; '.join(c.describe() for c in pushed)}")
                if local:
                    lines.append(f"      local: {'; '.join(c.describe() for c in local)}")
        lines.append("")
    lines.append("api: sent to the API and re-checked locally; local: checked by auditor only.")
    if plan.narrows():
        lines.append("Over the API the fetches of correlation first sides are read first; the other fetches are "
                     "then planned again, each then side only from its earliest matching first record on "
                     "(not with run --plan, which makes exactly these fetches).")
    return "\n".join(lines)
