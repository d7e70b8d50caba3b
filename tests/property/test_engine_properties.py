"""Properties of the evaluation engine's fast paths, against their plain definitions.

- compile_all's generated predicate and compile_feed's generated feed answer exactly what testing each
  condition (compile_condition) in turn answers, for any operands and any record values, odd types included.
- A fanout reading records kept in Logpush's names hands each rule what it hands the renamed record.
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

from auditor.core.fields import LOGPUSH_NAMES
from auditor.evaluate.router import Router
from auditor.language.codegen import Gate, compile_all, compile_fanout, compile_feed
from auditor.language.conditions import compile_condition
from auditor.sources.records import LogpushNames
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


STAMPS = [(1_794_000_000_000_000_000, 1_794_000_000_000_000), (1_794_000_000_123_456_000, 1_794_000_000_123_456),
          ("2026-11-14T08:00:00Z", 1_794_643_200_000_000)]  # CreatedAt (epoch ns, or text) and its time
time_operands = {"eq": st.sampled_from(["2026-11-14T08:00:00Z", "2026-11-12T22:40:00Z"]),
                 "contains": st.sampled_from(["2026-11", ".123456Z", "08:00"]),
                 "matches": st.sampled_from([r"\.\d+Z$", "^2026-11-14"]), "exists": st.booleans()}
time_condition = st.sampled_from(sorted(time_operands)).flatmap(
    lambda op: st.tuples(st.just("created_at"), st.just(op), time_operands[op]))
logpush_record = st.tuples(record, st.sampled_from(STAMPS), st.sampled_from(["us", "De", "GB", None]))


@settings(max_examples=examples(300))
@given(st.lists(st.lists(st.one_of(condition, time_condition), max_size=3), min_size=1, max_size=3),
       st.lists(logpush_record, min_size=1, max_size=6), st.booleans())
def test_a_fanout_over_logpush_names_answers_as_over_the_renamed_records(gates, records, plain_feed):
    """Records kept in Logpush's names (records.LogpushNames): each rule is offered the record renaming makes,
    exactly when its filter passes on that record; and renamed once, however many filters pass."""
    names = LogpushNames()
    seen: list[tuple[str, int, dict, int]] = []

    def collecting(shape, i):
        return lambda r, t_us: seen.append((shape, i, r, t_us))

    def feeds(shape):
        out = [Gate(tuple(conds), collecting(shape, i)) for i, conds in enumerate(gates)]
        return [*out, collecting(shape, -1)] if plain_feed else out

    to_logpush = {api: logpush for logpush, api in LOGPUSH_NAMES.items()}
    api_fanout = compile_fanout(feeds("api"))
    lp_fanout = compile_fanout(feeds("logpush"), names.renaming())
    for fields, (stamp, t_us), country in records:
        raw = {to_logpush.get(k, k): v for k, v in fields.items() if k != "country"}
        raw["CreatedAt"] = stamp
        if country is not None:
            raw["Country"] = country
        seen.clear()
        api_fanout(LogpushNames()(raw, t_us), t_us)
        lp_fanout(raw, t_us)
        api = [(i, r, t) for shape, i, r, t in seen if shape == "api"]
        logpush = [(i, r, t) for shape, i, r, t in seen if shape == "logpush"]
        assert logpush == api
        assert len({id(r) for _, r, _ in logpush}) <= 1  # renamed once, whichever rules take it


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
