"""Rules -> Plan: resolve windows, push down what the backend can take, share and serve fetches."""

from __future__ import annotations

from dataclasses import replace

from auditor.compile.plan import Candidate, CompiledRule, CompiledSide, Fetch, Plan, PushedFilter
from auditor.compile.pushdown import OPTIONAL_FIELDS, Target
from auditor.core.diagnostics import Code, Diagnostic
from auditor.core.fields import SOURCES
from auditor.core.model import Condition, Config, Rule
from auditor.core.period import Period
from auditor.core.timeutil import US, format_time

# The API's since/until inclusivity is undocumented: ask one second wider on both sides and cut the
# exact window [since, until) locally, so a boundary record is never lost.
PAD_US = US


def _candidate(rule: Rule, since_us: int, until_us: int, config: Config,
               target: Target) -> tuple[Fetch, tuple[Condition, ...]]:
    source = SOURCES[rule.source]
    by_field: dict[str, PushedFilter] = {}
    pushed: list[Condition] = []
    for cond in rule.conditions:
        if cond.field in by_field:
            continue  # one condition per API parameter; the rest stay local
        push = target.express(source.fields[cond.field], cond)
        if push is not None:
            by_field[cond.field] = push
            pushed.append(cond)
    if "idp_id" in source.requires and "idp_id" not in by_field and target.table.required:
        # The configured IdPs, plus any a `for_each: {idp_id: [...]}` heartbeat declares.
        ids = sorted(set(config.scim_idp_ids) | {str(v) for k, vs in rule.for_each if k == "idp_id" for v in vs})
        by_field["idp_id"] = PushedFilter("idp_id", tuple(("idp_id", i) for i in ids), array=True)
    fetch = Fetch(
        source=rule.source,
        since_us=since_us - PAD_US,
        until_us=until_us + PAD_US,
        filters=tuple(sorted(by_field.values(), key=lambda p: p.params)),
    )
    return fetch, tuple(pushed)


def evidence_fields(rule: Rule) -> set[str]:
    """Fields a rule's results show: what it reads, plus the source's identifying fields."""
    source = SOURCES[rule.source]
    shown = {f.name for f in source.fields.values() if f.evidence} if rule.evidence else set()
    return set(rule.needed_fields()) | shown | {source.time_field}


def _broad(push: PushedFilter) -> bool:
    """A filter that keeps most of an Access log: `allowed` true (allowed sign-ins are the bulk of it)."""
    return dict(push.params) in ({"allowed": "true", "allowedOp": "eq"}, {"allowed": "false", "allowedOp": "neq"})


def _coalesce(fetches: list[Fetch]) -> list[Fetch]:
    """Merge fetches whose union costs fewer requests than they do apart; every condition is re-checked
    locally, so merging never changes an answer.

    - SCIM fetches over the same IdPs whose ranges lie inside the longest one's merge into it: provisioning
      logs are small (one page of 1000 usually holds days of them), so one wider query beats several.
    - An access fetch G whose filters are all among F's, where F's other filters are broad (`_broad`) and
      their ranges overlap or touch, widens to cover F's range and then serves F: the records F would
      read are G's minus a few denied ones, so one query reads the overlap once instead of twice and
      saves F's pagination overhead (its last, partial page and the empty page that proves the end).
    """
    groups: dict[tuple, list[Fetch]] = {}
    for f in fetches:
        if f.source == "scim_updates":
            idp = tuple(p for p in f.filters if p.field == "idp_id")
            groups.setdefault(idp, []).append(f)
    out = _widen([f for f in fetches if f.source != "scim_updates"])
    for idp, members in groups.items():
        longest = max(members, key=lambda f: (f.until_us - f.since_us, -f.since_us))
        nested = [f for f in members if longest.since_us <= f.since_us and f.until_us <= longest.until_us]
        if len(nested) > 1:
            common = tuple(p for p in longest.filters if all(p in f.filters for f in nested))
            out.append(replace(longest, filters=tuple(dict.fromkeys(idp + common))))
            out.extend(f for f in members if f not in nested)
        else:
            out.extend(members)
    return sorted(out, key=lambda f: (f.source, f.since_us, -f.until_us, f.key))


def _widen(fetches: list[Fetch]) -> list[Fetch]:
    """Access fetches after widening (see `_coalesce`), until no pair qualifies; deterministic."""
    out = sorted(fetches, key=lambda f: (f.source, f.since_us, -f.until_us, f.key))
    while True:
        pair = next(((g, f) for g in out for f in out
                     if f is not g and f.source == g.source and f.since_us <= g.until_us
                     and g.since_us <= f.until_us and set(g.filters) <= set(f.filters)
                     and all(_broad(p) for p in set(f.filters) - set(g.filters))), None)
        if pair is None:
            return out
        g, f = pair
        wide = replace(g, since_us=min(g.since_us, f.since_us), until_us=max(g.until_us, f.until_us))
        out = sorted([wide, *(h for h in out if h is not g and not wide.contains(h))],
                     key=lambda h: (h.source, h.since_us, -h.until_us, h.key))


def compile_plan(rules: list[Rule], config: Config, reference_us: int,
                 account_id: str | None = None, period: Period | None = None,
                 target: Target | None = None) -> tuple[Plan, list[Diagnostic]]:
    """Compile rules for reference time T: equal fetches shared, contained fetches served by wider ones.

    With `period` (reference_us is then its end), each rule's window is resolved at every step T_i and
    its fetch spans all of them, so the whole period is fetched once (auditor.evaluate.periodic evaluates the steps).
    `target`: the backend's pushdown table and what it may be sent (auditor.compile.pushdown); by default the
    Cloudflare API under the config's `pushdown:` scope, without a profile.
    """
    target = target if target is not None else Target(scope=config.pushdown)
    problems: list[Diagnostic] = []
    # A correlation rule compiles into two candidates, its `first` side and its `then` side, shared and
    # served like any other fetch.
    candidates: list[Candidate] = []
    for rule in rules:
        since_us, until_us = rule.since.resolve(reference_us), rule.until.resolve(reference_us)
        windows: tuple[tuple[int, int, int], ...] = ()
        if period is not None:
            # Both bounds are absolute or T minus a duration, so neither decreases from step to step.
            windows = tuple((t, rule.since.resolve(t), rule.until.resolve(t)) for t in period.steps)
            empty = next((t for t, since, until in windows if since >= until), None)
            if empty is not None:
                problems.append(Diagnostic(Code.EMPTY_WINDOW,
                                           f"rule '{rule.id}': its window is empty at the period's step "
                                           f"{format_time(empty)} (since is not before until)", rule.location))
                continue
            since_us, until_us = windows[0][1], windows[-1][2]
        if since_us >= until_us:
            problems.append(Diagnostic(Code.EMPTY_WINDOW,
                                       f"rule '{rule.id}': its window is empty at the reference time "
                                       "(since is not before until)", rule.location))
            continue
        parts: list[tuple[str | None, Rule]] = (
            list(zip(("first", "then"), rule.sides(), strict=True)) if rule.correlation else [(None, rule)])
        for side, part in parts:
            fetch, pushed = _candidate(part, since_us, until_us, config, target)
            candidates.append(Candidate(rule, since_us, until_us, fetch, pushed, side, part, windows))
    plan = assemble(candidates, reference_us, account_id, period, target)
    return replace(plan, proven=_resting(plan, target)), problems


def _resting(plan: Plan, target: Target) -> tuple[str, ...]:
    """The undeclared pushdowns the plan sends only because the API profile proved them."""
    names = {k for f in plan.fetches for p in f.filters for k, _ in p.params[:1]}
    if any(SOURCES[f.source].fields[n].optional for f in plan.fetches for n in f.fields):
        names.add(OPTIONAL_FIELDS)
    return tuple(sorted(n for n in names if target.rests_on_profile(n)))


def assemble(candidates: list[Candidate], reference_us: int, account_id: str | None, period: Period | None,
             target: Target) -> Plan:
    """The plan for candidate fetches: equal ones shared, one contained in another served by it, some merged
    (`_coalesce`), each projected to the fields its rules need. Needs nothing but the candidates, so the
    planner can assemble again from narrowed ones (auditor.compile.narrow)."""
    by_key: dict[str, Fetch] = {}
    for c in candidates:
        by_key.setdefault(c.fetch.key, c.fetch)
    # A candidate contained in another is served by it: fewer requests, same answer (all conditions
    # are applied locally anyway). Serve from a maximal candidate, chosen in a deterministic order.
    ordered = sorted(by_key.values(), key=lambda f: (f.source, f.since_us, -f.until_us, f.key))
    maximal = _coalesce([f for f in ordered if not any(g.key != f.key and g.contains(f) for g in ordered)])
    server = {f.key: next(g for g in maximal if g.contains(f)).key for f in ordered}

    compiled: list[CompiledRule] = []
    needed: dict[str, set[str]] = {}
    sides: dict[str, list[CompiledSide]] = {}
    for c in candidates:
        rule, part, pushed = c.rule, c.part, c.pushed
        serving = server[c.fetch.key]
        if serving != c.fetch.key:
            pushed = ()  # the wider fetch does not apply this rule's filters: all of them run locally
        local = tuple(cond for cond in part.conditions if cond not in pushed)
        needed.setdefault(serving, set()).update(evidence_fields(part))
        if c.side is None:
            compiled.append(CompiledRule(rule, c.since_us, c.until_us, serving, pushed, local, windows=c.windows))
            continue
        needed[serving].update(rule.correlation.join_fields(c.side) if rule.correlation else ())
        sides.setdefault(rule.id, []).append(CompiledSide(c.side, part.source, serving, pushed, local))
        if c.side == "then":
            compiled.append(CompiledRule(rule, c.since_us, c.until_us, serving, pushed, local,
                                         tuple(sides.pop(rule.id)), windows=c.windows))
    fetches = []
    for f in maximal:
        if f.key in needed:
            source = SOURCES[f.source]
            wanted = (tuple(n for n in source.fields if n in needed[f.key])
                      if source.projection and target.table.projects else ())
            # Optional fields (country, app_type) are not in the API's record schema: listing one in `fields`
            # is an undeclared pushdown. Without it `fields` is not sent and every field comes back.
            if any(source.fields[n].optional for n in wanted) and not target.optional_fields():
                wanted = ()
            fetches.append(replace(f, fields=wanted))
    return Plan(reference_us, account_id, tuple(fetches), tuple(compiled), target, period=period,
                candidates=tuple(candidates))
