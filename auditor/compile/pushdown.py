"""Pushdown tables: how each backend expresses a condition, per field kind and operator (pySigma style).

A backend's table maps a field's parameter style (`core.fields.ParamStyle`, declared per field with the API
parameter it uses) and an operator to a function writing the condition as that backend's filter
parameters; an operator missing from the table (or mapped to None) is one the backend cannot express, and
the condition is checked locally only. The planner asks `express`; it never tests operators itself.
Every condition is re-checked locally anyway, so a table may only leave conditions out, never loosen one.

Which table the planner asks is the run's: `CLOUDFLARE` over the API, `FILES` over exported files (and for the
SQL engines, which read the files themselves and evaluate every condition in their own query). A `Target` is a
table bound to what it may send beyond the public schema: the `pushdown:` scope and, for the Cloudflare API,
what an API profile (`auditor doctor`) proved or disproved on the account.

Adding a backend: a `PushdownTable` here. Changing what the Cloudflare API is sent: edit `CLOUDFLARE`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from auditor.compile.plan import PushedFilter
from auditor.core.fields import Field
from auditor.core.fields import ParamStyle as Kind
from auditor.core.model import Condition, PushdownScope
from auditor.language.conditions import canonical
from auditor.load.profile import ApiProfile

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
    projects: bool = False  # whether a fetch may name the fields it needs (the API's `fields`)
    required: bool = False  # whether a source's required parameters are sent (SCIM's idp_id: the configured IdPs)

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
    projects=True,
    required=True,
)

FILES = PushdownTable("files")  # exported files are read whole: every condition is checked locally

# The `fields` projection naming a field the API's record schema does not declare (country, app_type): an
# undeclared pushdown of its own, proven by a profile under this name (auditor.load.profile).
OPTIONAL_FIELDS = "fields=country"
CONTAINS = "emailOp=contains"


@dataclass(frozen=True)
class Proof:
    """What an API profile measured of the undeclared pushdowns (named as in load/profile.py): the ones that
    returned exactly what local filtering keeps, and the ones that did not."""

    proven: frozenset[str] = frozenset()
    refused: frozenset[str] = frozenset()
    measured_at: str | None = field(default=None, compare=False)  # when (None: no profile)
    # The letter case of the country codes the account serves: its country_code filter compares with that
    # (rules and records use upper case, ISO 3166 alpha-2).
    country_case: str = "upper"

    def describe(self) -> str:
        """`the profile measured 2026-11-14T08:00:00Z` or `no profile`, for messages."""
        return f"the profile measured {self.measured_at}" if self.measured_at else "no profile"


@dataclass(frozen=True)
class Target:
    """A backend as the planner asks it: its table, and which undeclared parameters it may be sent."""

    table: PushdownTable = CLOUDFLARE
    scope: PushdownScope = PushdownScope.DOCUMENTED
    proof: Proof = Proof()

    def may_send(self, name: str) -> bool:
        """Whether an undeclared pushdown may be sent: never once a profile disproved it; by default only when
        one proved it; with `pushdown: all` unless disproved."""
        if name in self.proof.refused:
            return False
        return self.scope is PushdownScope.ALL or name in self.proof.proven

    def rests_on_profile(self, name: str) -> bool:
        """Whether sending `name` is owed to the profile (sent by default only because it was proven)."""
        return self.scope is not PushdownScope.ALL and name in self.proof.proven and self.may_send(name)

    def express(self, fld: Field, cond: Condition) -> PushedFilter | None:
        """The condition as the backend's parameters, or None when only local evaluation checks it."""
        if fld.name == "country" and self.proof.country_case == "lower":
            lowered = cond.operand.lower() if isinstance(cond.operand, str) else \
                type(cond.operand)(str(v).lower() for v in cond.operand)
            cond = Condition(cond.field, cond.op, lowered)
        pushed = self.table.express(fld, cond, self.may_send)
        if pushed is not None and ("emailOp", "contains") in pushed.params and CONTAINS in self.proof.refused:
            return None  # declared by newer reference pages only: sent unless the account showed it wrong
        return pushed

    def optional_fields(self) -> bool:
        """Whether `fields` may name fields the record schema does not declare (else it is left out)."""
        return self.may_send(OPTIONAL_FIELDS)


def api_target(scope: PushdownScope, profile: ApiProfile | None = None) -> Target:
    """The Cloudflare API under the `pushdown:` scope, with what a usable API profile proved and disproved."""
    proof = (Proof(profile.proven(), profile.refused(), profile.measured_at, profile.country_case or "upper")
             if profile is not None else Proof())
    return Target(CLOUDFLARE, scope, proof)


def files_target() -> Target:
    """Exported files (read whole by auditor, or by a SQL engine that evaluates every condition itself), and
    records in memory (`auditor test`): nothing is pushed down."""
    return Target(FILES)
