"""The human-readable plan `auditor plan` prints: each fetch, its filters and fields, and the rules it serves."""

from __future__ import annotations

from auditor.compile.plan import Plan
from auditor.core.fields import SOURCES
from auditor.core.timeutil import format_time
from auditor.load.profile import ApiProfile


def _fetches(n: int) -> str:
    return f"{n} fetch{'es' if n != 1 else ''}"


def _rules(n: int) -> str:
    return f"{n} rule{'s' if n != 1 else ''}"


def _headline(plan: Plan) -> list[str]:
    if plan.period is None:
        return [f"Plan at {format_time(plan.reference_us)}: {_rules(len(plan.rules))}, {_fetches(len(plan.fetches))} "
                f"(pushdown: {plan.pushdown})", ""]
    p = plan.period
    return [f"Plan for period {p.label} ({p.tz}): {len(p.steps)} step{'s' if len(p.steps) != 1 else ''} of "
            f"{p.step} at {format_time(p.steps[0])} .. {format_time(p.steps[-1])}; {_rules(len(plan.rules))}, "
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
        lines.append(f"  fields:      {','.join(f.fields) or '(all fields)'}")
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


def resting_pushdowns(plan: Plan, profile: ApiProfile) -> dict[str, list[str]]:
    """Undeclared parameters the plan sends because the API profile proved them -> the fetches sending them."""
    undeclared = {f.api_param for source in SOURCES.values() for f in source.fields.values()
                  if not f.documented and f.api_param}
    resting: dict[str, list[str]] = {}
    for f in plan.fetches:
        for name, _ in f.filter_params():
            if name in undeclared and name in profile.proven():
                keys = resting.setdefault(name, [])
                if f.key not in keys:
                    keys.append(f.key)
    if "fields=country" in profile.proven():
        projected = [f.key for f in plan.fetches if any(SOURCES[f.source].fields[n].optional for n in f.fields)]
        if projected:
            resting["fields=country"] = projected
    return dict(sorted(resting.items()))


def profile_text(plan: Plan, profile: ApiProfile) -> str:
    """Which of the plan's pushdowns rest on the API profile, and the retention it measured."""
    resting = resting_pushdowns(plan, profile)
    retention = profile.retention_days("access_requests")
    lines = [f"API profile measured {profile.measured_at} on account {profile.account_id}"
             + (f": access_requests serves {retention} days" if retention is not None else "")]
    if resting:
        lines.append("pushdowns resting on the profile (undeclared by the API schema, proven on this account):")
        lines.extend(f"  {name}: {', '.join(keys)}" for name, keys in resting.items())
    else:
        lines.append("no pushdown rests on the profile")
    return "\n".join(lines)
