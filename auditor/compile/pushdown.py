"""Pushdown tables: how each backend expresses a condition, per field kind and operator (pySigma style).

A backend's table maps a field's parameter style (`core.fields.ParamStyle`, declared per field with the API
parameter it uses) and an operator to a function writing the condition as that backend's filter
parameters; an operator missing from the table (or mapped to None) is one the backend cannot express, and
the condition is checked locally only. The planner asks `express`; it never tests operators itself.
Every condition is re-checked locally anyway, so a table may only leave conditions out, never loosen one.

Adding a backend: a `PushdownTable` here. Changing what the Cloudflare API is sent: edit `CLOUDFLARE`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from auditor.compile.plan import PushedFilter
from auditor.core.fields import Field
from auditor.core.fields import ParamStyle as Kind
from auditor.core.model import Condition
from auditor.language.conditions import canonical

Params = tuple[tuple[str, str], ...]
Express = Callable[[str, Any], Params]  # (the field's API parameter, operand) -> query parameters


def _text(value: object) -> str:
    """An operand as API text: booleans lower case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class PushdownTable:
    """One backend's pushdown: per field kind, per operator, how the condition is sent (None: it cannot be)."""

    name: str
    operators: Mapping[Kind, Mapping[str, Express | None]] = field(default_factory=dict)
    # Kinds whose several values for one field form a one-of (a narrower set implies a wider one).
    arrays: frozenset[Kind] = frozenset()
    # Kinds sent even for a parameter the backend's public schema does not declare (for the others,
    # `express` asks whether such a parameter may be sent).
    undeclared_ok: frozenset[Kind] = frozenset()

    def express(self, fld: Field, cond: Condition,
                undeclared: Callable[[str], bool] = lambda param: True) -> PushedFilter | None:
        """The condition as this backend's parameters, or None when only local evaluation can check it.
        `undeclared(param)`: whether a parameter the public schema does not declare may be sent (the config's
        `pushdown:` scope and the API profile decide)."""
        op, operand = canonical(cond.op, cond.operand)
        write = self.operators.get(fld.param_style, {}).get(op)
        if fld.api_param is None or write is None:
            return None  # no parameter for this field, or none for this operator
        if not fld.documented and fld.param_style not in self.undeclared_ok and not undeclared(fld.api_param):
            return None
        return PushedFilter(fld.name, write(fld.api_param, operand), array=fld.param_style in self.arrays)


CLOUDFLARE = PushdownTable(
    "cloudflare",
    {
        # scim_updates: repeated keys name=a&name=b, a one-of.
        Kind.ARRAY: {
            "eq": lambda param, v: ((param, _text(v)),),
            "in": lambda param, vs: tuple((param, v) for v in sorted({_text(v) for v in vs})),
        },
        # access_requests' e-mail: email with email_exact=true (equal), emailOp=neq (negated), emailOp=contains.
        Kind.EMAIL: {
            "eq": lambda param, v: ((param, v), (f"{param}_exact", "true")),
            "neq": lambda param, v: ((param, v), (f"{param}_exact", "true"), (f"{param}Op", "neq")),
            # Said explicitly: a server reading a bare `email` as the older schema's default `eq` would return
            # nothing, and a refusing one (400) makes the client read again without it (parts.fallback).
            "contains": lambda param, v: ((param, v), (f"{param}Op", "contains")),
        },
        # access_requests: name=value&nameOp=eq|neq.
        Kind.OP_PAIR: {
            "eq": lambda param, v: ((param, _text(v)), (f"{param}Op", "eq")),
            "neq": lambda param, v: ((param, _text(v)), (f"{param}Op", "neq")),
        },
    },
    arrays=frozenset({Kind.ARRAY}),
    undeclared_ok=frozenset({Kind.ARRAY}),
)

FILES = PushdownTable("files")  # exported files are read whole: every condition is checked locally
