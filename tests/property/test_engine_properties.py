"""Properties of the evaluation engine's fast paths, against their plain definitions.

- compile_all's generated predicate and compile_feed's generated feed answer exactly what testing each
  condition (compile_condition) in turn answers, for any operands and any record values, odd types included.
- The router calls exactly the feeds whose window holds a record's time, in the order given, as testing
  every window would.
- An answer does not depend on the order records arrive in (evidence included): the same records
  shuffled give the same results JSON.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.evaluate.router import Router
from auditor.language.codegen import Gate, compile_all, compile_fanout, compile_feed
from auditor.language.conditions import compile_condition
from tests.helpers import write_ndjson
from tests.property.model import ACCESS, NETWORKS, PATTERNS, TEXT, examples, scenarios, workspace

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

FIELDS = ["user_email", "allowed", "country", "ip_address"]
odd_values = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 2), st.floats(allow_nan=False, width=16), st.text(max_size=6),
    st.sampled_from([v for values in ACCESS.values() for v in values if isinstance(v, str | bool)]),
    st.lists(st.sampled_from(["a", "US"]), max_size=2), st.dictionaries(st.sampled_from(["x"]), st.integers(0, 1)),
)
scalars = st.one_of(st.sampled_from(["US", "alice@example.com", "10.1.2.3", "", "a"]), st.booleans(),
                    st.integers(0, 2))
operands = {
    "eq": scalars, "neq": scalars,
    "in": st.lists(scalars, min_size=1, max_size=3), "not_in": st.lists(scalars, min_size=1, max_size=3),
    "contains": st.sampled_from(TEXT), "not_contains": st.sampled_from(TEXT),
    "matches": st.sampled_from(PATTERNS), "not_matches": st.sampled_from(PATTERNS),
    "cidr": st.sampled_from(NETWORKS), "not_cidr": st.lists(st.sampled_from(NETWORKS), min_size=1, max_size=2),
    "exists": st.booleans(),
}
condition = st.sampled_from(sorted(operands)).flatmap(
    lambda op: st.tuples(st.sampled_from(FIELDS), st.just(op), operands[op]))
record = st.dictionaries(st.sampled_from(FIELDS), odd_values, max_size=4)


@settings(max_examples=examples(300))
@given(st.lists(condition, max_size=4), st.lists(record, min_size=1, max_size=8), st.integers(-3, 3))
def test_generated_filters_answer_as_each_condition_does(conds, records, t):
    tests = [compile_condition(*c) for c in conds]
    match = compile_all(conds)
    taken = []
    gate = compile_feed(Gate(tuple(conds), lambda r, t_us: taken.append((r, t_us))), -1, 2)
    for rec in records:
        expected = all(bool(test(rec)) for test in tests)
        assert match(rec) is expected
        gate(rec, t)
    assert taken == [(rec, t) for rec in records if -1 <= t < 2 and all(bool(test(rec)) for test in tests)]


def test_generated_filters_bind_operands_rather_than_write_them_as_code():
    hostile = "'); import os; os.system('false'); ('"
    match = compile_all([("user_email", "eq", hostile), ("user_email", "contains", '"""'),
                         ("country", "in", [hostile])])
    assert match({"user_email": hostile, "country": hostile}) is False  # '"""' not in it: evaluated, not run
    assert compile_all([("user_email", "eq", hostile)])({"user_email": hostile}) is True


windows = st.lists(st.tuples(st.integers(-5, 30), st.integers(-5, 30)), max_size=6)


@settings(max_examples=examples(200))
@given(windows, st.lists(st.integers(-10, 40), max_size=30))
def test_the_router_calls_the_feeds_whose_window_holds_the_time(spans, times):
    calls: list[tuple[int, int]] = []
    feeds = [(lo, hi, (lambda i: lambda record, t: calls.append((i, t)))(i)) for i, (lo, hi) in enumerate(spans)]
    route = Router(feeds)
    lo, hi, fanout = route.segment(0)
    for t in times:
        if not lo <= t < hi:
            lo, hi, fanout = route.segment(t)
        fanout({}, t)
    assert calls == [(i, t) for t in times for i, (a, b) in enumerate(spans) if a <= t < b]


@settings(max_examples=examples(200))
@given(st.lists(st.tuples(st.lists(condition, max_size=3), st.booleans()), max_size=5),
       st.lists(record, min_size=1, max_size=6))
def test_a_segments_generated_fanout_offers_records_as_each_feed_would(specs, records):
    # Rules' gates (inlined) and other feeds (called), in order: the same calls as feeding each in turn.
    calls: list[tuple[int, dict]] = []
    feeds = []
    for i, (conds, is_gate) in enumerate(specs):
        target = (lambda i: lambda r, t: calls.append((i, r)))(i)
        feeds.append(Gate(tuple(conds), target) if is_gate else target)
    fanout = compile_fanout(feeds)
    for rec in records:
        fanout(rec, 0)
    expected = []
    for rec in records:
        for i, (conds, is_gate) in enumerate(specs):
            if not is_gate or all(bool(compile_condition(*c)(rec)) for c in conds):
                expected.append((i, rec))
    assert calls == expected


@settings(max_examples=examples(15))
@given(scenarios(max_records=50), st.randoms(use_true_random=False))
def test_the_answer_does_not_depend_on_record_order(scenario, rng: random.Random):
    rule_list, data = scenario
    with workspace(rule_list, data) as ws:
        first = ws.files()
        for source, rows in data.items():
            shuffled = list(rows)
            rng.shuffle(shuffled)
            write_ndjson(ws.root / "data" / f"{source}.ndjson", shuffled)
        assert ws.files() == first
