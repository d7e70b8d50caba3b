"""Frozen dataclasses for validated input: rules, their conditions and expectations, the config."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, ClassVar

from auditor.core.diagnostics import SourceLocation
from auditor.core.status import Severity, Status


@dataclass(frozen=True)
class Condition:
    """`field op operand`, e.g. user_email not_contains "@svc.example.com"."""

    field: str
    op: str
    operand: Any

    def describe(self) -> str:
        """Readable form used by `plan`."""
        return f"{self.field} {self.op} {_show(self.operand)}"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


@dataclass(frozen=True)
class Expectation:
    """A threshold on a measure: count, distinct values of a field, or the ratio satisfying `where`."""

    kind: str  # count | distinct | ratio
    min: float | None = None
    max: float | None = None
    field: str | None = None  # distinct
    where: tuple[Condition, ...] = ()  # ratio

    def bounds(self) -> str:
        """`min 1, max 5` style text."""
        parts = []
        if self.min is not None:
            parts.append(f"min {_num(self.min)}")
        if self.max is not None:
            parts.append(f"max {_num(self.max)}")
        return ", ".join(parts)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class TimeBound:
    """A window edge: an absolute instant, or an offset before the reference time (microseconds)."""

    absolute_us: int | None = None
    before_us: int | None = None

    def resolve(self, reference_us: int) -> int:
        """The instant in epoch microseconds for reference time `reference_us`."""
        if self.absolute_us is not None:
            return self.absolute_us
        return reference_us - (self.before_us or 0)


@dataclass(frozen=True)
class RuleTest:
    """One `tests:` case of a rule: fixture records, an optional reference time, the expected status."""

    name: str
    expect: Status  # pass | fail
    location: SourceLocation
    # Inline records per source ({source: (record, ...)}); None when they come from `records_file`.
    records: dict[str, tuple[dict[str, Any], ...]] | None = None
    records_file: str | None = None  # resolved against the rule file's folder
    at_us: int | None = None


@dataclass(frozen=True)
class Waiver:
    """One accepted exception from waivers.yaml: a rule (optionally some of its groups) until `expires`."""

    rule: str
    justification: str
    owner: str
    expires: str  # as written: a date (00:00 UTC that day) or an RFC 3339 timestamp
    expires_us: int
    location: SourceLocation
    match: tuple[tuple[str, Any], ...] = ()
    ticket: str | None = None

    def matches(self, group: dict[str, Any] | None) -> bool:
        """True when a violating group (None: the whole ungrouped rule) has every `match` value."""
        if not self.match:
            return True
        return group is not None and all(k in group and group[k] == v for k, v in self.match)

    def to_json(self) -> dict[str, Any]:
        """The waiver as results show it (schemas/results.schema.json#/$defs/waiver)."""
        return {"rule": self.rule, "match": dict(self.match) or None, "justification": self.justification,
                "owner": self.owner, "ticket": self.ticket, "expires": self.expires}


@dataclass(frozen=True)
class Side:
    """One side of a correlation rule: a log source and the filter its records must pass."""

    source: str
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class Correlation:
    """`correlate:` of a `source: correlation` rule: `then` records after a `first` record with equal join
    values (within `within_us` when set). Evaluated by auditor.evaluate.correlate."""

    first: Side
    then: Side
    join: tuple[tuple[str, str], ...]  # (first's field, then's field), ...
    within_us: int | None = None
    within: str | None = None  # as written (e.g. "30d"), for messages and results

    def join_fields(self, side: str) -> tuple[str, ...]:
        """The join fields of one side ("first" or "then")."""
        return tuple(pair[0 if side == "first" else 1] for pair in self.join)


@dataclass(frozen=True)
class Rule:
    """One validated rule, ready to compile. Its defaults (severity, evidence, `window`) are the only ones:
    the loader reads them, and a test checks that rules.schema.json documents the same."""

    window: ClassVar[str] = "24h"  # the window of a rule without window/since/until

    id: str
    title: str
    source: str
    since: TimeBound
    until: TimeBound
    conditions: tuple[Condition, ...]
    expectations: tuple[Expectation, ...]
    location: SourceLocation
    severity: Severity = Severity.MEDIUM
    description: str | None = None
    remediation: str | None = None
    tags: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()
    evidence: int = 5
    # Heartbeats: groups that must exist, ((field, (values...)), ...); a listed value with no records is a
    # group with count 0.
    for_each: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    # `auditor test` cases; not part of the rule's identity.
    tests: tuple[RuleTest, ...] = field(default=(), compare=False)
    # `source: correlation` rules only (source is then "correlation" and conditions are empty).
    correlation: Correlation | None = None

    def sides(self) -> tuple[Rule, Rule]:
        """A correlation rule as two single-source rules: `first` (its filter; the join fields are read too)
        and `then` (its filter, with the rule's group_by, expectations and evidence)."""
        c = self.correlation
        if c is None:
            raise ValueError(f"rule '{self.id}' is not a correlation rule")
        first = replace(self, source=c.first.source, conditions=c.first.conditions, group_by=(),
                        expectations=(Expectation("count", max=0),), for_each=(), tests=(), correlation=None)
        then = replace(self, source=c.then.source, conditions=c.then.conditions, tests=(), correlation=None)
        return first, then

    def needed_fields(self) -> frozenset[str]:
        """Every field the rule reads: filter, grouping, expectations."""
        names = {c.field for c in self.conditions} | set(self.group_by)
        for e in self.expectations:
            if e.field:
                names.add(e.field)
            names.update(c.field for c in e.where)
        return frozenset(names)


class PushdownScope(StrEnum):
    """`pushdown:` in auditor.yaml: which conditions may be sent to the API (the rest run locally)."""

    ALL = "all"  # every condition the API can express, unless an API profile disproved its parameter
    DOCUMENTED = "documented"  # the default: parameters the public API schema declares, and what a profile proved


# What evaluates the rules (`engine:` in auditor.yaml, `--engine` on run and test): `auto` lets auditor choose
# (the Python evaluator for the API and ordinary exports, DuckDB for a Parquet log lake); `plan --engine` also
# shows the SQL of engines auditor does not run (`trino`).
ENGINES = ("auto", "python", "duckdb", "spark")


@dataclass(frozen=True)
class Config:
    """`auditor.yaml`, validated; every key optional. The defaults here are the only ones: the loader, the
    compiler, the runner and the CLI's help read them (e.g. `Config.per_page`)."""

    path: str | None = None
    account_id: str | None = None
    api_base: str | None = None
    rules: tuple[str, ...] = ()
    waivers: str | None = None
    scim_idp_ids: tuple[str, ...] = ()
    per_page: int = 1000  # records per page asked of the API (its maximum)
    concurrency: int = 4  # requests in flight at once
    pushdown: PushdownScope = PushdownScope.DOCUMENTED
    max_waiver_days: int = 365
    retention_days: int = 30  # how far back the API serves logs; periodic runs over the API warn beyond it
    api_profile: str | None = None  # `auditor doctor`'s findings file, relative to auditor.yaml (load/profile.py)
    max_retry_wait: int = 300  # seconds: the longest Retry-After honoured (Cloudflare blocks for five minutes)
    request_deadline: int = 120  # seconds one API request may take in all before it is retried
    engine: str = "auto"  # one of ENGINES
    variables: dict[str, Any] = field(default_factory=dict)
