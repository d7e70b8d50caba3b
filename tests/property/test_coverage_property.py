"""Coverage, as a property: cutting the data short (truncation at either end, or a gap inside, stated as such)
never yields a `pass` or a `fail` that the full data would not give; it may only make a rule `error`."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from auditor.compile.compiler import compile_plan
from auditor.core.coverage import Coverage, Interval, stated
from auditor.core.model import Config
from auditor.core.timeutil import US, format_time, parse_time
from auditor.decide.coverage import apply
from auditor.evaluate.periodic import evaluator
from auditor.evaluate.results import RuleResult
from tests.helpers import access, rule_yaml
from tests.helpers import project as load

T = parse_time("2026-11-15T12:00:00Z")
H = 3600 * US
USERS = ("a@x.com", "b@x.com", "c@x.com")

bounds = st.fixed_dictionaries({}, optional={"min": st.integers(0, 4), "max": st.integers(0, 4)}).filter(
    lambda b: bool(b) and b.get("min", 0) <= b.get("max", 4))
expectations = st.one_of(
    st.builds(lambda b: {"count": b}, bounds),
    st.builds(lambda b: {"distinct": {"field": "user_email", **b}}, bounds),
    st.builds(lambda lo: {"ratio": {"where": {"allowed": True}, "min": lo}}, st.sampled_from([0.0, 0.5, 1.0])),
)
records = st.lists(st.tuples(st.integers(0, 24 * 60 - 1), st.sampled_from(USERS), st.booleans()), max_size=12)


def _outcome(compiled: Any, rows: list[tuple[int, str, bool]], keep: tuple[Interval, ...] = ()) -> RuleResult:
    e = evaluator(compiled)
    for minute, user, allowed in rows:
        t = T - 24 * H + minute * 60 * US
        if not keep or any(i.since_us <= t < i.until_us for i in keep):
            e.feed(access(created_at=format_time(t), user_email=user, allowed=allowed), t)
    o = e.outcome()
    return RuleResult(compiled, o.status, o.message, "GET", o.measurements, o.violations, o.evidence, groups=o.groups)


@given(expect=expectations, group=st.booleans(), rows=records, cut=st.tuples(st.integers(0, 24), st.integers(0, 24)),
       kind=st.sampled_from(["truncate-end", "truncate-start", "gap"]))
def test_less_data_never_gives_a_pass_or_fail_the_full_data_would_not(tmp_path_factory, expect, group, rows, cut,
                                                                       kind):
    root = tmp_path_factory.mktemp("r")
    project = load(root, rule_yaml(window="24h", expect=expect, **({"group_by": "user_email"} if group else {})))
    assert project.ok, [d.format() for d in project.diagnostics]
    plan, _ = compile_plan(list(project.rules), Config(), T)
    (compiled,) = plan.rules
    full = apply(_outcome(compiled, rows), Coverage({"access_requests": stated("access_requests",
                                                                              (Interval(T - 24 * H, T),))}))
    a, b = sorted(cut)
    lo, hi = T - 24 * H + a * H, T - 24 * H + b * H
    if kind == "truncate-end":
        covered = (Interval(T - 24 * H, lo),)
    elif kind == "truncate-start":
        covered = (Interval(hi, T),)
    else:  # a gap [lo, hi): the records there are lost, and the coverage says so
        covered = (Interval(T - 24 * H, lo), Interval(hi, T))
    # Only the records the partial data holds are read.
    partial = apply(_outcome(compiled, rows, covered),
                    Coverage({"access_requests": stated("access_requests", covered)}))
    assert full.status in ("pass", "fail")
    assert partial.status in ("error", full.status), (expect, group, rows, kind, cut, partial.message)
