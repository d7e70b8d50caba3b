"""Rule conditions -> SQL boolean expressions with Python's answers (auditor.language.conditions).

Each condition becomes an expression that is exact for the rows it decides, and an `undecided` expression
for the rows it cannot (they go to Python with the rule's other exact conditions applied first):
- a missing or null field gives the operator's `when_missing` answer, as in Python (`CASE WHEN v IS NULL`);
  so does a value of the wrong type (its column is null, auditor.sources.relation), as Python answers it
  alike, except for `exists` (it is present: `_wrong` names it) and `cidr` (Python reads a number as an
  address: the row goes to Python);
- operands of another type than the column's never match (Python compares `"5" == 5` as false);
- `contains` is a 1-based position test, exact and case-sensitive in every engine (never sqlglot's
  CONTAINS, which some dialects make case-insensitive);
- `matches` goes through auditor.evaluate.sql.regex when the engine's regex is RE2; otherwise Python decides;
- `cidr` is exact for values without `:` (strict dotted-quad IPv4 as Python's ipaddress reads it: no
  leading zeros, octets up to 255; anything else is no address, inside no network); a value with `:` (IPv6,
  IPv4-mapped, scoped) is undecided and goes to Python.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, cast

from sqlglot import exp

from auditor.core.fields import SOURCES, FieldType
from auditor.core.model import Condition
from auditor.evaluate.sql.dialects import Dialect
from auditor.evaluate.sql.regex import to_re2
from auditor.language.conditions import OPERATORS, parse_networks
from auditor.sources.relation import WRONG

_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"  # 0-255 without leading zeros, as Python reads it
DOTTED_QUAD = f"^{_OCTET}\\.{_OCTET}\\.{_OCTET}\\.{_OCTET}\\z"
TRUE, FALSE = exp.true(), exp.false()


@dataclass(frozen=True)
class SqlCondition:
    """A condition in SQL: `test` decides every row where `undecided` is false (None: never undecided);
    `test` None: the engine decides no row (Python applies the condition)."""

    condition: Condition
    test: exp.Expression | None
    undecided: exp.Expression | None = None

    @property
    def exact(self) -> bool:
        """True when the engine decides every row."""
        return self.test is not None and self.undecided is None


def column(name: str) -> exp.Column:
    """A quoted column reference (field names are identifiers from the fields table, never rule text)."""
    return exp.column(name, quoted=True)


def wrong_type(field: str, dialect: Dialect) -> exp.Expression:
    """True (never NULL) for a row whose `field` holds a value of the wrong type (its column is then null)."""
    names = column(WRONG)
    return exp.paren(exp.and_(exp.Not(this=exp.Is(this=names, expression=exp.Null())),
                              exp.GT(this=dialect.strpos(names, literal(f",{field},")),
                                     expression=exp.Literal.number(0))))


def literal(value: Any) -> exp.Expression:
    """A SQL literal of a string, boolean or integer value."""
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def compile_condition(cond: Condition, source: str, dialect: Dialect) -> SqlCondition:
    """One condition of a rule on `source` -> its SQL form."""
    field = SOURCES[source].fields[cond.field]
    col = column(cond.field)
    op, operand = cond.op, cond.operand
    if op == "exists":  # a value of the wrong type is present (its column is null: see auditor.sources.relation)
        present = exp.or_(exp.Not(this=exp.Is(this=col, expression=exp.Null())), wrong_type(cond.field, dialect))
        return SqlCondition(cond, exp.paren(present) if operand else exp.Not(this=exp.paren(present)))
    operator = OPERATORS[op]
    positive = op.removeprefix("not_") if op.startswith("not_") else ("eq" if op == "neq" else op)
    is_bool = field.type is FieldType.BOOL
    test, undecided = _test(positive, operand, col, is_bool, dialect)
    if test is None:
        return SqlCondition(cond, None, TRUE)
    if undecided is not None:  # cidr: Python reads a number as an address too (ip_address(167772161))
        undecided = exp.paren(exp.or_(undecided, wrong_type(cond.field, dialect)))
    if positive != op:
        test = exp.Not(this=exp.paren(test))
    when_missing = TRUE if operator.when_missing else FALSE
    case = exp.Case(ifs=[exp.If(this=exp.Is(this=col, expression=exp.Null()), true=when_missing)], default=test)
    return SqlCondition(cond, case, undecided)


def _of_type(value: Any, is_bool: bool) -> bool:
    return isinstance(value, bool) if is_bool else isinstance(value, str)


def _test(op: str, operand: Any, col: exp.Column, is_bool: bool,
          dialect: Dialect) -> tuple[exp.Expression | None, exp.Expression | None]:
    """The positive operator's test of a present, non-null value, and the rows it leaves undecided."""
    if op == "eq":
        return (exp.EQ(this=col, expression=literal(operand)) if _of_type(operand, is_bool) else FALSE), None
    if op == "in":
        members = sorted({v for v in operand if _of_type(v, is_bool)}, key=repr)
        if not members:
            return FALSE, None
        return exp.In(this=col, expressions=[literal(v) for v in members]), None
    if is_bool:
        return FALSE, None  # text operators on a boolean value: Python's isinstance(v, str) is false
    if op == "contains":
        return exp.GT(this=dialect.strpos(col, literal(operand)), expression=exp.Literal.number(0)), None
    if op == "matches":
        pattern = to_re2(operand) if dialect.regex is not None else None
        if pattern is None or dialect.regex is None:
            return None, TRUE
        return dialect.regex(col, literal(pattern)), None
    if op == "cidr":
        # Never NULL (a NULL would drop the row from both the engine's and Python's share): a missing value is
        # decided (when_missing), only a present one with `:` is not.
        has_colon = exp.GT(this=dialect.strpos(col, literal(":")), expression=exp.Literal.number(0))
        present = exp.Not(this=exp.Is(this=col, expression=exp.Null()))
        return _cidr(operand, col, dialect), exp.paren(exp.and_(present, has_colon))
    raise ValueError(f"no SQL form for operator {op!r}")  # pragma: no cover - the operator table is covered


def _cidr(operand: str | list[str], col: exp.Column, dialect: Dialect) -> exp.Expression:
    """Dotted-quad IPv4 inside one of the operand's IPv4 networks (IPv6 networks hold no such address). The shape
    test leaves only valid addresses (octets 0-255 without leading zeros), so a network is its whole octets as a
    text prefix and, when its prefix length is not a multiple of 8, a range of the next octet: one piece of text
    taken per row at most, rather than the address's value computed from its four octets."""
    tests: list[exp.Expression] = []
    for net in parse_networks(operand):
        if not isinstance(net, ipaddress.IPv4Network):
            continue
        octets = str(net.network_address).split(".")
        whole, rest = divmod(net.prefixlen, 8)
        parts: list[exp.Expression] = []
        if whole == 4:
            parts.append(exp.EQ(this=col.copy(), expression=literal(".".join(octets))))
        elif whole:
            parts.append(exp.Like(this=col.copy(), expression=literal(".".join(octets[:whole]) + ".%")))
        if whole < 4 and rest:
            lo = int(octets[whole])
            piece = exp.TryCast(this=dialect.split_part(col.copy(), literal("."), exp.Literal.number(whole + 1)),
                                to=exp.DataType.build("BIGINT"))
            parts.append(exp.Between(this=piece, low=exp.Literal.number(lo),
                                     high=exp.Literal.number(lo + (1 << (8 - rest)) - 1)))
        tests.append(cast(exp.Expression, exp.and_(*parts)) if parts else TRUE)  # /0 holds every address
    if not tests:
        return FALSE
    shape = dialect.ascii_match(col, literal(DOTTED_QUAD))
    return exp.Case(ifs=[exp.If(this=shape, true=exp.paren(exp.or_(*tests)))], default=FALSE)
