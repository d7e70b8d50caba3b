"""The filter operators: one table read by validation, evaluation, pushdown and the schema test."""

from __future__ import annotations

import ipaddress
import re
import re._constants as sre_constants  # type: ignore[import-not-found]  # the stdlib regex parser: only to
import re._parser as sre_parse  # type: ignore[import-not-found]  # spot nested quantifiers (W306)
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import regex

from auditor.core.fields import FieldType

Test = Callable[[Any], bool]
Predicate = Callable[[dict[str, Any]], bool]


class ValueKind(StrEnum):
    """What an operator's operand must be."""

    SCALAR = "scalar"  # string, number or boolean, of the field's type
    SCALARS = "scalars"  # non-empty list of scalars
    TEXT = "text"  # a string
    REGEX = "regex"  # a string that compiles as a Python regex
    NETWORKS = "networks"  # a CIDR or a list of CIDRs
    BOOL = "bool"


@dataclass(frozen=True)
class Operator:
    """One operator: the field types it fits, its operand, its answer on a missing field, its test."""

    name: str
    types: frozenset[FieldType]
    value: ValueKind
    when_missing: bool
    build: Callable[[Any], Test]  # operand -> test of a present, non-null field value


_ALL = frozenset(FieldType)
_TEXTUAL = frozenset({FieldType.STRING, FieldType.IP, FieldType.TIME})


def _eq(operand: Any) -> Test:
    if isinstance(operand, bool):
        return lambda v: v is operand
    return lambda v: v == operand and not isinstance(v, bool)


def _in(operand: list[Any]) -> Test:
    bools = {o for o in operand if isinstance(o, bool)}
    others = frozenset(o for o in operand if not isinstance(o, bool))

    def test(v: Any) -> bool:
        if isinstance(v, bool):
            return v in bools
        try:
            return v in others
        except TypeError:  # an unhashable value (list/object) in the record
            return False

    return test


def _contains(operand: str) -> Test:
    return lambda v: isinstance(v, str) and operand in v


# Each regex match may take this long; a pattern that backtracks exponentially on a crafted log value
# (`^(a+)+$` on "aaaa...b") then fails its rule instead of stalling the run. Matched by `regex`, whose
# matches can time out, over the same syntax `re` accepts.
MATCH_TIMEOUT_S = 0.25
_REMEMBERED = 1 << 16  # answers remembered per regex or cidr condition (see _remembered)


class MatchTimeout(Exception):
    """A regex match ran out of time (MATCH_TIMEOUT_S) on a value: the rule cannot be decided."""

    def __init__(self, pattern: str, value: str):
        super().__init__(f"regex {pattern!r} ran out of time (over {MATCH_TIMEOUT_S} s) on {value[:80]!r}")
        self.pattern = pattern
        self.value = value


def nested_quantifier(pattern: str) -> bool:
    """True when a repeated part of the regex repeats itself (`(a+)+`, `([a-z]+\\.?)*`): the shape that can
    backtrack exponentially. Possessive and atomic parts never backtrack and are left out."""
    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, OverflowError, RecursionError):
        return False
    stack: list[tuple[Any, bool]] = [(parsed, False)]
    while stack:
        items, repeated = stack.pop()
        for op, av in items:
            if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
                _, hi, sub = av
                if hi > 1 and repeated:
                    return True
                stack.append((sub, repeated or hi > 1))
            elif op == sre_constants.SUBPATTERN:
                stack.append((av[3], repeated))
            elif op == sre_constants.BRANCH:
                stack.extend((branch, repeated) for branch in av[1])
            elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
                stack.append((av[1], repeated))
    return False


def _matches(operand: str) -> Test:
    search = regex.compile(operand).search

    def match(v: Any) -> bool:
        if not isinstance(v, str):
            return False
        try:
            return search(v, timeout=MATCH_TIMEOUT_S) is not None
        except TimeoutError:
            raise MatchTimeout(operand, v) from None

    return _remembered(match)  # the timeout costs microseconds per match


def _remembered(answer: Test) -> Test:
    """`answer`, remembering what it said for each text value (logs repeat their values: addresses, e-mails),
    up to _REMEMBERED values per condition; other values are asked each time."""
    answers: dict[str, bool] = {}

    def test(v: Any) -> bool:
        if v.__class__ is not str:
            return answer(v)
        known = answers.get(v)
        if known is None:
            if len(answers) >= _REMEMBERED:
                answers.clear()
            known = answers[v] = answer(v)
        return known

    return test


def parse_networks(operand: str | list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """A CIDR or list of CIDRs -> networks (raises ValueError on a bad one)."""
    items = [operand] if isinstance(operand, str) else operand
    return [ipaddress.ip_network(item, strict=False) for item in items]


def _cidr(operand: str | list[str]) -> Test:
    networks = parse_networks(operand)
    v4 = tuple(n for n in networks if n.version == 4)
    v6 = tuple(n for n in networks if n.version == 6)

    def inside(v: Any) -> bool:
        try:
            ip = ipaddress.ip_address(v)
        except ValueError:
            return False  # malformed address: inside no network, so `not_cidr` flags it
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in n for n in (v4 if ip.version == 4 else v6))

    return _remembered(inside)  # parsing an address costs microseconds


def _negate(build: Callable[[Any], Test]) -> Callable[[Any], Test]:
    def negated(operand: Any) -> Test:
        test = build(operand)
        return lambda v: not test(v)

    return negated


def _exists(operand: bool) -> Test:
    # Only reached for present, non-null values.
    return lambda v: operand


OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in (
        Operator("eq", _ALL, ValueKind.SCALAR, False, _eq),
        Operator("neq", _ALL, ValueKind.SCALAR, True, _negate(_eq)),
        Operator("in", _ALL, ValueKind.SCALARS, False, _in),
        Operator("not_in", _ALL, ValueKind.SCALARS, True, _negate(_in)),
        Operator("contains", _TEXTUAL, ValueKind.TEXT, False, _contains),
        Operator("not_contains", _TEXTUAL, ValueKind.TEXT, True, _negate(_contains)),
        Operator("matches", _TEXTUAL, ValueKind.REGEX, False, _matches),
        Operator("not_matches", _TEXTUAL, ValueKind.REGEX, True, _negate(_matches)),
        Operator("cidr", frozenset({FieldType.IP}), ValueKind.NETWORKS, False, _cidr),
        Operator("not_cidr", frozenset({FieldType.IP}), ValueKind.NETWORKS, True, _negate(_cidr)),
        # exists: false is true exactly when the field is missing, hence when_missing is set per operand.
        Operator("exists", _ALL, ValueKind.BOOL, False, _exists),
    )
}


def _fast(field: str, op: str, operand: Any) -> Predicate | None:
    """Single-lookup predicates for the hottest cases (string/boolean equality and membership).

    Each gives exactly the generic answer: operands are non-null scalars, so a missing field (None)
    never equals them, which is the SPEC's answer for eq/in (false) and neq/not_in (true).
    """
    if op == "eq" and isinstance(operand, bool):
        return lambda record: record.get(field) is operand
    if op == "neq" and isinstance(operand, bool):
        return lambda record: record.get(field) is not operand
    if op == "eq" and isinstance(operand, str):
        return lambda record: record.get(field) == operand
    if op == "neq" and isinstance(operand, str):
        return lambda record: record.get(field) != operand
    if op in ("in", "not_in") and all(isinstance(o, str) for o in operand):
        members = frozenset(operand)
        inside = op == "in"

        def member(record: dict) -> bool:
            v = record.get(field)
            if v.__class__ is str:
                return (v in members) is inside
            return not inside  # missing, null, or not text: never one of the strings
        return member
    return None


def compile_condition(field: str, op: str, operand: Any) -> Predicate:
    """One condition -> a predicate over a record (a dict with API field names)."""
    fast = _fast(field, op, operand)
    if fast is not None:
        return fast
    operator = OPERATORS[op]
    when_missing = (operand is False) if op == "exists" else operator.when_missing
    test = operator.build(operand)

    def predicate(record: dict) -> bool:
        v = record.get(field)
        if v is None:
            return when_missing
        return test(v)

    return predicate


def compile_all(conditions: list[tuple[str, str, Any]]) -> Predicate:
    """Conditions that must all hold -> one predicate (true for an empty list)."""
    return _generate(conditions, "match(record)", "return False", "return True")


Feed = Callable[[dict[str, Any], int], None]


def compile_gate(conditions: list[tuple[str, str, Any]], since_us: int, until_us: int, then: Feed) -> Feed:
    """A feed(record, t_us) calling then(record, t_us) when t_us is in [since_us, until_us) and every condition
    holds: a rule's window and filter in one call, for the per-record hot path."""
    head = ("if not SINCE <= t_us < UNTIL:", "    return")
    gate = _generate(conditions, "gate(record, t_us)", "return", "THEN(record, t_us)", head,
                     {"SINCE": since_us, "UNTIL": until_us, "THEN": then})
    gate.auditor_gate = (tuple(conditions), then)  # type: ignore[attr-defined]  # for compile_fanout
    return gate


def compile_fanout(feeds: list[Feed]) -> Feed:
    """One feed(record, t_us) offering each record to every feed in turn, for records known to be inside
    all of their windows: compile_gate's feeds are written inline (their filter, without the window test,
    then their target), the others are called. A record passing through it is what passing it to each feed
    in order would do."""
    namespace: dict[str, Any] = {"isinstance": isinstance, "str": str}

    def const(value: Any) -> str:
        name = f"c{len(namespace)}"
        namespace[name] = value
        return name

    lines = ["def fanout(record, t_us):"]
    for feed in feeds:
        spec = getattr(feed, "auditor_gate", None)
        if spec is None:
            lines.append(f"    {const(feed)}(record, t_us)")
            continue
        conditions, then = spec
        values: dict[str, str] = {}
        terms = []
        for field, op, operand in conditions:
            v = values.get(field)
            if v is None:  # read each field once per feed, in the conjunction (short-circuit keeps it lazy)
                v = values[field] = f"v{len(namespace)}"
                terms.append(f"(({v} := record.get({const(field)})) or True)")
            terms.append(f"({_expression(field, op, operand, v, const)})")
        call = f"{const(then)}(record, t_us)"
        lines.append(f"    if {' and '.join(terms)}:\n        {call}" if terms else f"    {call}")
    lines.append("    return None")
    code = compile("\n".join(lines) + "\n", "<auditor fanout>", "exec")
    exec(code, namespace)  # noqa: S102 - generated from the operator table only; values are bound, as in _generate
    return namespace["fanout"]


def _generate(conditions: list[tuple[str, str, Any]], signature: str, fail: str, success: str,
              head: tuple[str, ...] = (), bound: dict[str, Any] | None = None) -> Callable[..., Any]:
    """One Python function testing all conditions in order: each field read once, the common operators
    inline, the others through their compiled tests. Its answers are exactly compile_condition's (the
    property tests compare them). Every operand, field name and test is bound in the function's namespace,
    never written into its source, so no rule text can become code."""
    namespace: dict[str, Any] = {"isinstance": isinstance, "str": str, **(bound or {})}
    values: dict[str, str] = {}

    def const(value: Any) -> str:
        name = f"c{len(namespace)}"
        namespace[name] = value
        return name

    lines = [f"def {signature}:", *(f"    {line}" for line in head)]
    for field, op, operand in conditions:
        v = values.get(field)
        if v is None:
            v = values[field] = f"v{len(values)}"
            lines.append(f"    {v} = record.get({const(field)})")
        lines.append(f"    if not ({_expression(field, op, operand, v, const)}):")
        lines.append(f"        {fail}")
    lines.append(f"    {success}")
    code = compile("\n".join(lines) + "\n", "<auditor filter>", "exec")
    exec(code, namespace)  # noqa: S102 - generated from the operator table only; values are bound, see above
    return namespace[signature.partition("(")[0]]


def _expression(field: str, op: str, operand: Any, v: str, const: Callable[[Any], str]) -> str:
    """The condition as an expression over `v` (the field's value, None when missing)."""
    if op in ("eq", "neq") and isinstance(operand, bool):
        return f"{v} is {'not ' if op == 'neq' else ''}{const(operand)}"
    if op in ("eq", "neq") and isinstance(operand, str):
        return f"{v} {'!=' if op == 'neq' else '=='} {const(operand)}"
    if op in ("in", "not_in") and all(isinstance(o, str) for o in operand):
        test = f"{v}.__class__ is str and {v} in {const(frozenset(operand))}"
        return test if op == "in" else f"not ({test})"
    if op in ("contains", "not_contains"):
        test = f"isinstance({v}, str) and {const(operand)} in {v}"
        return test if op == "contains" else f"not ({test})"
    if op == "exists" and isinstance(operand, bool):
        return f"{v} is not None" if operand else f"{v} is None"
    operator = OPERATORS[op]
    test = const(operator.build(operand))
    return f"({operator.when_missing} if {v} is None else {test}({v}))"
