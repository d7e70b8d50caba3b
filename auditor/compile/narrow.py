"""Narrowing a plan once its correlation `first` sides are read: the planner step a run asks for.

Over the API a `then` side (often 30 days of sign-ins) can only match after the earliest matching `first`
record (and, with `within`, at most that long after the latest). Once the `first` sides' fetches are read the
runner knows those spans and asks `narrow` for the rest of the plan: each `then` side fetched only over its
span, the other rules as planned, all shared and served again (auditor.compile.compiler.assemble).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from auditor.compile.compiler import PAD_US, assemble
from auditor.compile.plan import Plan
from auditor.core.timeutil import US


def narrow(plan: Plan, spans: Mapping[str, tuple[int, int]]) -> Plan:
    """The rest of `plan` after its `first` sides' fetches: the rules those fetches did not serve, and the
    `then` side of each correlation rule named in `spans`, fetched over [lo, hi) within its window (widened
    to whole seconds: sub-second since/until are undocumented). A correlation rule not in `spans` has no
    `then` record that can match, and no fetch."""
    firsts = plan.first_keys()
    served = {r.rule.id: r.fetch_key for r in plan.rules}
    rest = []
    for c in plan.candidates:
        if c.side is None and served[c.rule.id] not in firsts:
            rest.append(c)
        elif c.side == "then" and c.rule.id in spans:
            lo, hi = spans[c.rule.id]
            since, until = max(c.since_us, lo // US * US), min(c.until_us, -(-hi // US) * US)
            rest.append(replace(c, fetch=replace(c.fetch, since_us=since - PAD_US, until_us=until + PAD_US)))
    return replace(assemble(rest, plan.reference_us, plan.account_id, plan.period, plan.target), proven=plan.proven)
