"""The human-readable plan `auditor plan` prints: each fetch, its filters and fields, and the rules it serves."""

from __future__ import annotations

from auditor.compile.plan import Fetch, Plan
from auditor.compile.pushdown import OPTIONAL_FIELDS
from auditor.core.fields import SOURCES
from auditor.core.model import PushdownScope
from auditor.core.timeutil import format_time
from auditor.load.profile import ApiProfile


def _fetches(n: int) -> str:
    return f"{n} fetch{'es' if n != 1 else ''}"


def _rules(n: int) -> str:
    return f"{n} rule{'s' if n != 1 else ''}"


def _headline(plan: Plan) -> list[str]:
    how = f"pushdown: {plan.pushdown}" if plan.pushdown is not None else "over exported files: nothing pushed down"
    if plan.period is None:
        return [f"Plan at {format_time(plan.reference_us)}: {_rules(len(plan.rules))}, {_fetches(len(plan.fetches))} "
                f"({how})", ""]
    p = plan.period
    return [f"Plan for period {p.label} ({p.tz}): {len(p.steps)} step{'s' if len(p.steps) != 1 else ''} of "
            f"{p.step} at {format_time(p.steps[0])} .. {format_time(p.steps[-1])}; {_rules(len(plan.rules))}, "
            f"{_fetches(len(plan.fetches))} for the whole period ({how})",
            "Each rule's window is evaluated at every step; rules below show the span of all steps.", ""]


def plan_text(plan: Plan) -> str:
    """The plan as text: one block per fetch, then what `api:` and `local:` mean."""
    lines = _headline(plan)
    api = plan.pushdown is not None
    for f in plan.fetches:
        rules = plan.rules_of(f.key)
        lines.append(f"fetch {f.key}  {f.source}  {format_time(f.since_us)} .. {format_time(f.until_us)}")
        if api:
            params = " ".join(f"{k}={v}" for k, v in f.filter_params()) or "(none)"
            lines.append(f"  api filters: {params}")
            lines.append(f"  fields:      {','.join(f.fields) or '(all fields)'}")
            proven = _resting(plan, f)
            if proven:
                lines.append(f"  proven by the API profile (undeclared by the API schema): {', '.join(proven)}")
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
    if not api:
        lines.append("local: checked by auditor; exported files are read whole.")
        return "\n".join(lines)
    lines.append("api: sent to the API and re-checked locally; local: checked by auditor only.")
    if plan.narrows():
        lines.append("Over the API the fetches of correlation first sides are read first; the other fetches are "
                     "then planned again, each then side only from its earliest matching first record on "
                     "(not with run --plan, which makes exactly these fetches).")
    return "\n".join(lines)


def _resting(plan: Plan, fetch: Fetch) -> list[str]:
    """The undeclared pushdowns a fetch sends only because the API profile proved them."""
    names = [k for p in fetch.filters for k, _ in p.params[:1] if k in plan.proven]
    if OPTIONAL_FIELDS in plan.proven and any(SOURCES[fetch.source].fields[n].optional for n in fetch.fields):
        names.append(OPTIONAL_FIELDS)
    return list(dict.fromkeys(names))


def resting_pushdowns(plan: Plan) -> dict[str, list[str]]:
    """Undeclared pushdowns the plan sends because the API profile proved them -> the fetches sending them."""
    resting: dict[str, list[str]] = {}
    for f in plan.fetches:
        for name in _resting(plan, f):
            resting.setdefault(name, []).append(f.key)
    return dict(sorted(resting.items()))


def profile_text(plan: Plan, profile: ApiProfile) -> str:
    """Which of the plan's pushdowns rest on the API profile, and the retention it measured."""
    resting = resting_pushdowns(plan)
    retention = profile.retention_days("access_requests")
    lines = [f"API profile measured {profile.measured_at} on account {profile.account_id}"
             + (f": access_requests serves {retention} days" if retention is not None else "")]
    if resting:
        lines.append("pushdowns resting on the profile (undeclared by the API schema, proven on this account):")
        lines.extend(f"  {name}: {', '.join(keys)}" for name, keys in resting.items())
    elif plan.pushdown is PushdownScope.ALL:
        lines.append("no pushdown rests on the profile (pushdown: all sends what it does not disprove)")
    else:
        lines.append("no pushdown rests on the profile")
    return "\n".join(lines)
