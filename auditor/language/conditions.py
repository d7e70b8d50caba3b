"""The filter operators: one table read by validation, evaluation (auditor.language.codegen), pushdown tables
(auditor.compile.pushdown) and the schema test. A new operator is one entry in OPERATORS."""

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


Const = Callable[[Any], str]  # binds a value in generated code's namespace, returns the name it is bound to
# (operand, v, const) -> a Python expression over `v` (the field's value, None when missing) giving exactly the
# operator's answer, or None when this operand has no inline form (the generic `build` test is called then).
Inline = Callable[[Any, str, Const], str | None]


@dataclass(frozen=True)
class Operator:
    """One operator, all its semantics: the field types it fits, its operand, its answer on a missing field,
    its test, its inline form for generated code (auditor.language.codegen) and the operator it amounts to
    with a one-value operand (for backends' pushdown tables)."""

    name: str
    types: frozenset[FieldType]
    value: ValueKind
    when_missing: bool
    build: Callable[[Any], Test]  # operand -> test of a present, non-null field value
    inline: Inline | None = None
    singular: str | None = None  # `in [x]` is `eq x`

    def missing(self, operand: Any) -> bool:
        """The answer for a missing or null field."""
        return (operand is False) if self.name == "exists" else self.when_missing


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


def _negated(inline: Inline) -> Inline:
    def write(operand: Any, v: str, const: Const) -> str | None:
        test = inline(operand, v, const)
        return None if test is None else f"not ({test})"

    return write


def _inline_eq(operand: Any, v: str, const: Const) -> str | None:
    # Operands are non-null scalars, so a missing field (None) never equals them: the SPEC's `false` for eq.
    if isinstance(operand, bool):
        return f"{v} is {const(operand)}"
    if isinstance(operand, str):
        return f"{v} == {const(operand)}"
    return None


def _inline_in(operand: Any, v: str, const: Const) -> str | None:
    if all(isinstance(o, str) for o in operand):
        return f"{v}.__class__ is str and {v} in {const(frozenset(operand))}"
    return None


def _inline_contains(operand: Any, v: str, const: Const) -> str | None:
    return f"isinstance({v}, str) and {const(operand)} in {v}"


def _inline_exists(operand: Any, v: str, const: Const) -> str | None:
    if not isinstance(operand, bool):
        return None
    return f"{v} is not None" if operand else f"{v} is None"


OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in (
        Operator("eq", _ALL, ValueKind.SCALAR, False, _eq, _inline_eq),
        Operator("neq", _ALL, ValueKind.SCALAR, True, _negate(_eq), _negated(_inline_eq)),
        Operator("in", _ALL, ValueKind.SCALARS, False, _in, _inline_in, singular="eq"),
        Operator("not_in", _ALL, ValueKind.SCALARS, True, _negate(_in), _negated(_inline_in), singular="neq"),
        Operator("contains", _TEXTUAL, ValueKind.TEXT, False, _contains, _inline_contains),
        Operator("not_contains", _TEXTUAL, ValueKind.TEXT, True, _negate(_contains), _negated(_inline_contains)),
        Operator("matches", _TEXTUAL, ValueKind.REGEX, False, _matches),
        Operator("not_matches", _TEXTUAL, ValueKind.REGEX, True, _negate(_matches)),
        Operator("cidr", frozenset({FieldType.IP}), ValueKind.NETWORKS, False, _cidr),
        Operator("not_cidr", frozenset({FieldType.IP}), ValueKind.NETWORKS, True, _negate(_cidr)),
        # exists: false is true exactly when the field is missing, hence `Operator.missing` per operand.
        Operator("exists", _ALL, ValueKind.BOOL, False, _exists, _inline_exists),
    )
}


def canonical(op: str, operand: Any) -> tuple[str, Any]:
    """The simplest equal form of a condition: `in`/`not_in` with one value are `eq`/`neq` of it."""
    singular = OPERATORS[op].singular
    if singular is not None and isinstance(operand, list | tuple) and len(operand) == 1:
        return singular, operand[0]
    return op, operand


def compile_condition(field: str, op: str, operand: Any) -> Predicate:
    """One condition -> a predicate over a record (a dict with API field names), straight from the operator's
    test: the reference the generated code (auditor.language.codegen) is checked against."""
    operator = OPERATORS[op]
    when_missing = operator.missing(operand)
    test = operator.build(operand)

    def predicate(record: dict) -> bool:
        v = record.get(field)
        if v is None:
            return when_missing
        return test(v)

    return predicate


def expression(op: str, operand: Any, v: str, const: Const) -> str:
    """The condition as a Python expression over `v` (the field's value, None when missing): the operator's
    inline form, else its test called on present values."""
    operator = OPERATORS[op]
    inline = operator.inline(operand, v, const) if operator.inline is not None else None
    if inline is not None:
        return inline
    return f"({operator.missing(operand)} if {v} is None else {const(operator.build(operand))}({v}))"
