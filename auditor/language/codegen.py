"""Conditions as generated Python functions: the per-record hot path of evaluation.

One generator writes every function: a predicate (`compile_all`), a rule's windowed feed (`compile_feed`)
and a fanout offering a record to many feeds at once (`compile_fanout`). A `Gate` says what a feed is: its
conditions and the target a passing record goes to, so a fanout writes a gate's filter inline instead of
calling it. Each field is read once per conjunction; the common operators are written inline and the others
call their compiled tests (both from `auditor.language.conditions.OPERATORS`). Every operand, field name and
test is bound in the function's namespace, never written into its source, so no rule text can become code.
The generated answers are exactly `compile_condition`'s (the property tests compare them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from auditor.language.conditions import Predicate, expression

Feed = Callable[[dict[str, Any], int], None]
Rename = Callable[[dict[str, Any], int], dict[str, Any]]  # (record, t_us) -> the record as feeds name its fields
Adjust = Callable[[Any, int], Any]  # (value, t_us) -> the value a renamed record holds
Conditions = Sequence[tuple[str, str, Any]]  # (field, operator, operand), all of which must hold


@dataclass(frozen=True, eq=False)
class Gate:
    """A feed described: records for which every condition holds go on to `then(record, t_us)`."""

    conditions: tuple[tuple[str, str, Any], ...]
    then: Feed


@dataclass(frozen=True, eq=False)
class Renaming:
    """Records holding `key` name their fields otherwise: `rename(record, t_us)` gives one as feeds name its fields,
    and `reads` says how a filter reads a field of one unrenamed: field -> (its key there, and None or an
    adjust(value, t_us) giving the value the renamed record holds). A field not in `reads` has the same key."""

    key: str
    rename: Rename
    reads: Mapping[str, tuple[str, Adjust | None]]


class _Writer:
    """Source lines of one function and the namespace its values are bound in."""

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {"isinstance": isinstance, "str": str}
        self.lines: list[str] = []

    def const(self, value: Any) -> str:
        name = f"c{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def conjunction(self, conditions: Iterable[tuple[str, str, Any]],
                    reads: Mapping[str, tuple[str, Adjust | None]] | None = None) -> str:
        """Every condition as one `and` expression reading each field once, lazily; `True` for none. `reads`: how
        to read each field of a record in other names (Renaming.reads)."""
        values: dict[str, str] = {}
        terms = []
        for field, op, operand in conditions:
            v = values.get(field)
            if v is None:
                v = values[field] = f"v{len(self.namespace)}"
                key, adjust = reads.get(field, (field, None)) if reads is not None else (field, None)
                read = f"record.get({self.const(key)})"
                if adjust is not None:
                    read = f"{self.const(adjust)}({read}, t_us)"
                terms.append(f"(({v} := {read}) or True)")
            terms.append(f"({expression(op, operand, v, self.const)})")
        return " and ".join(terms) or "True"

    def deliver(self, feed: Gate | Feed, indent: str = "    ") -> None:
        """Offer the record to a feed: a gate's filter written inline, any other feed called."""
        if not isinstance(feed, Gate):
            self.lines.append(f"{indent}{self.const(feed)}(record, t_us)")
            return
        call = f"{self.const(feed.then)}(record, t_us)"
        if feed.conditions:
            self.lines.append(f"{indent}if {self.conjunction(feed.conditions)}:\n{indent}    {call}")
        else:
            self.lines.append(f"{indent}{call}")

    def compile(self, signature: str, filename: str) -> Callable[..., Any]:
        code = compile("\n".join([f"def {signature}:", *self.lines]) + "\n", filename, "exec")
        exec(code, self.namespace)  # noqa: S102 - generated from the operator table only; values are bound
        return self.namespace[signature.partition("(")[0]]


def compile_all(conditions: Conditions) -> Predicate:
    """Conditions that must all hold -> one predicate (true for an empty list)."""
    writer = _Writer()
    writer.lines.append(f"    return {writer.conjunction(conditions)}")  # each term is a bool, or a read
    return writer.compile("match(record)", "<auditor filter>")


def compile_feed(gate: Gate, since_us: int, until_us: int) -> Feed:
    """A feed(record, t_us) passing a record on through `gate` when t_us is in [since_us, until_us)."""
    writer = _Writer()
    writer.lines.append(f"    if not {writer.const(since_us)} <= t_us < {writer.const(until_us)}:\n        return")
    writer.deliver(gate)
    return writer.compile("gate(record, t_us)", "<auditor filter>")


def compile_fanout(feeds: Sequence[Gate | Feed], renaming: Renaming | None = None) -> Feed:
    """One feed(record, t_us) offering each record to every feed in turn, for records known to be inside all of
    their windows: gates' filters written inline, other feeds called. A record passing through it is what
    passing it to each feed in order would do. With `renaming`, a record in other names (holding its key) is
    renamed only for the feeds it is offered to: when every feed is a gate, their filters read it unrenamed
    (Renaming.reads) and it is renamed once, when the first filter passes; otherwise before any feed."""
    writer = _Writer()
    if renaming is not None:
        marked, rename = f"{writer.const(renaming.key)} in record", writer.const(renaming.rename)
        if all(isinstance(feed, Gate) for feed in feeds):
            writer.lines.append(f"    if {marked}:\n        named = None")
            for gate in feeds:
                assert isinstance(gate, Gate)
                condition = writer.conjunction(gate.conditions, renaming.reads)
                writer.lines.append(f"        if {condition}:\n"
                                    f"            named = {rename}(record, t_us) if named is None else named\n"
                                    f"            {writer.const(gate.then)}(named, t_us)")
            writer.lines.append("        return None")
        else:
            writer.lines.append(f"    if {marked}:\n        record = {rename}(record, t_us)")
    for feed in feeds:
        writer.deliver(feed)
    writer.lines.append("    return None")
    return writer.compile("fanout(record, t_us)", "<auditor fanout>")
