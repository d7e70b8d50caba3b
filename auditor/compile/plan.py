"""The compiled plan: fetches (a log source over a time range, with the filters and projection its backend
takes) and which rule reads which fetch.

A plan is source-neutral: how a backend asks for a fetch (the Cloudflare API's paths, pages, `limit` and
`direction`) is the backend's (auditor.sources.cloudflare.parts); only the filters are written as the backend
takes them, by the pushdown table the planner asked (auditor.compile.pushdown), whose name the plan carries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from auditor.core.model import Condition, PushdownScope, Rule
from auditor.core.period import Period
from auditor.core.timeutil import format_time

if TYPE_CHECKING:
    from auditor.compile.pushdown import Target

PLAN_VERSION = 1  # of the `plan --json` document's shape as SPEC'd: its keys keep their meaning
# Of what `plan -o` saves for `run --plan` (a document without "format" was saved in the format its "version" says):
# 2: fetches source-neutral, the request per backend.
PLAN_FORMAT = 2


@dataclass(frozen=True)
class PushedFilter:
    """One field's condition pushed down to the backend, as the backend's parameters (for the Cloudflare API
    its query parameters, e.g. user_email eq -> email, email_exact)."""

    field: str
    params: tuple[tuple[str, str], ...]
    array: bool = False  # SCIM repeated keys: a one-of, so a narrower value set implies a wider one

    def implies(self, other: PushedFilter) -> bool:
        """True when every record passing self also passes other."""
        if self.field != other.field:
            return False
        if self.array and other.array:
            return {v for _, v in self.params} <= {v for _, v in other.params}
        return self.params == other.params


@dataclass(frozen=True)
class Fetch:
    """What one read of a log asks for: source, time range, pushed-down filters and field projection."""

    source: str
    since_us: int
    until_us: int
    filters: tuple[PushedFilter, ...]
    fields: tuple[str, ...] = ()  # the fields its rules read (empty: every field)

    @property
    def key(self) -> str:
        """Stable identity of the records this fetch returns (projection excluded)."""
        pushed = tuple((p.field, p.params, p.array) for p in self.filters)  # not the class: keys survive renames
        text = repr((self.source, self.since_us, self.until_us, pushed))
        return f"{self.source}:{hashlib.sha256(text.encode()).hexdigest()[:10]}"

    def contains(self, other: Fetch) -> bool:
        """True when every record of `other` is among this fetch's records."""
        return (
            self.source == other.source
            and self.since_us <= other.since_us
            and other.until_us <= self.until_us
            and all(any(o.implies(mine) for o in other.filters) for mine in self.filters)
        )

    def filter_params(self) -> list[tuple[str, str]]:
        """The pushed-down filter parameters only."""
        return [pair for p in self.filters for pair in p.params]

    def describe(self) -> str:
        """`access_requests 2026-11-14T00:00:00Z .. 2026-11-15T00:00:00Z` (and its pushed filters), for messages
        of a source that names no request of its own."""
        pushed = " ".join(f"{k}={v}" for k, v in self.filter_params())
        return (f"{self.source} {format_time(self.since_us)} .. {format_time(self.until_us)}"
                + (f" where {pushed}" if pushed else ""))

    def to_json(self) -> dict[str, Any]:
        """The fetch as plans show it: what is read, whatever the backend."""
        return {"key": self.key, "source": self.source, "since": format_time(self.since_us),
                "until": format_time(self.until_us), "filters": [list(pair) for pair in self.filter_params()],
                "fields": list(self.fields)}


@dataclass(frozen=True)
class CompiledSide:
    """One side ("first" or "then") of a compiled correlation rule: its fetch and where its filter runs."""

    name: str
    source: str
    fetch_key: str
    pushed: tuple[Condition, ...]
    local: tuple[Condition, ...]


@dataclass(frozen=True)
class CompiledRule:
    """A rule bound to a reference time: its window, its fetch and the conditions checked locally.

    A correlation rule reads two fetches: `sides` holds both; `fetch_key`, `pushed` and `local` are its
    `then` side's (the records it measures).
    """

    rule: Rule
    since_us: int
    until_us: int
    fetch_key: str
    pushed: tuple[Condition, ...]
    local: tuple[Condition, ...]
    sides: tuple[CompiledSide, ...] = ()
    # Periodic plans: (T_i, since_i, until_i) of every step; since_us/until_us then span all of them.
    windows: tuple[tuple[int, int, int], ...] = ()

    @property
    def fetch_keys(self) -> tuple[str, ...]:
        """Every fetch the rule reads (two for a correlation rule, unless one fetch serves both sides)."""
        if not self.sides:
            return (self.fetch_key,)
        return tuple(dict.fromkeys(s.fetch_key for s in self.sides))

    def parts(self, key: str) -> list[tuple[str | None, tuple[Condition, ...], tuple[Condition, ...]]]:
        """(side name or None, pushed, local) for what the rule reads from one fetch."""
        if not self.sides:
            return [(None, self.pushed, self.local)] if key == self.fetch_key else []
        return [(s.name, s.pushed, s.local) for s in self.sides if s.fetch_key == key]


@dataclass(frozen=True)
class Candidate:
    """What one rule (or one side of a correlation rule) asks for, before fetches are shared: its own fetch and
    the conditions that fetch pushes down. The planner assembles plans from candidates (auditor.compile)."""

    rule: Rule
    since_us: int
    until_us: int
    fetch: Fetch
    pushed: tuple[Condition, ...]
    side: str | None  # "first" | "then" for a correlation rule's side, None for a rule
    part: Rule  # the rule, or the side as a rule of its own source
    windows: tuple[tuple[int, int, int], ...] = ()  # periodic plans: (T_i, since_i, until_i) per step


@dataclass(frozen=True)
class Plan:
    """Fetches to make and rules to evaluate over them, for one reference time."""

    reference_us: int
    account_id: str | None
    fetches: tuple[Fetch, ...]
    rules: tuple[CompiledRule, ...]
    target: Target  # the backend's pushdown table and what it may be sent (auditor.compile.pushdown)
    notes: tuple[str, ...] = field(default=())
    period: Period | None = None  # periodic plans (--period): reference_us is the period's end
    # What the plan was assembled from, so the planner can narrow its correlation `then` sides (`narrows`).
    candidates: tuple[Candidate, ...] = field(default=(), compare=False, repr=False)
    # Undeclared pushdowns sent only because an API profile proved them (`auditor doctor`), for `plan`.
    proven: tuple[str, ...] = ()

    @property
    def backend(self) -> str:
        """The backend the plan was made for: `cloudflare` (the API) or `files`."""
        return self.target.table.name

    @property
    def pushdown(self) -> PushdownScope | None:
        """The `pushdown:` scope the plan was made under; None for a backend that takes no pushdown."""
        return self.target.scope if self.target.table.operators else None

    def fetch(self, key: str) -> Fetch:
        """The fetch with this key."""
        return next(f for f in self.fetches if f.key == key)

    def rules_of(self, key: str) -> list[CompiledRule]:
        """The rules that read one fetch."""
        return [r for r in self.rules if key in r.fetch_keys]

    def first_keys(self) -> frozenset[str]:
        """The fetches that feed correlation `first` sides."""
        return frozenset(s.fetch_key for r in self.rules for s in r.sides if s.name == "first")

    def narrows(self) -> bool:
        """Whether a run over the API reads the `first` sides' fetches before planning the rest: possible when
        no fetch feeds both a `first` and a `then` side."""
        thens = {s.fetch_key for r in self.rules for s in r.sides if s.name == "then"}
        return bool(self.candidates) and bool(thens) and not self.first_keys() & thens

    def to_json(self, request: Callable[[Fetch], dict[str, Any]] | None = None) -> dict[str, Any]:
        """The `plan --json` document (SPEC section 3). `request(fetch)`: what the backend sends for a fetch
        (over the API its `path` and `query`), added to each fetch; None for a backend that sends nothing."""
        return {
            "version": PLAN_VERSION,
            "format": PLAN_FORMAT,
            "reference_time": format_time(self.reference_us),
            **({"period": self.period.to_json()} if self.period is not None else {}),
            "account_id": self.account_id,
            "backend": self.backend,
            "pushdown": self.pushdown.value if self.pushdown is not None else None,
            "proven_pushdowns": list(self.proven),
            "fetches": [
                {**f.to_json(), **(request(f) if request is not None else {}),
                 "rules": [r.rule.id for r in self.rules_of(f.key)]}
                for f in self.fetches
            ],
            "rules": [
                {
                    "id": r.rule.id,
                    "fetch": r.fetch_key,
                    "window": {"since": format_time(r.since_us), "until": format_time(r.until_us)},
                    "pushed": [c.describe() for c in r.pushed],
                    "local": [c.describe() for c in r.local],
                    **({"correlate": {s.name: {"source": s.source, "fetch": s.fetch_key,
                                               "pushed": [c.describe() for c in s.pushed],
                                               "local": [c.describe() for c in s.local]} for s in r.sides}}
                       if r.sides else {}),
                }
                for r in self.rules
            ],
        }
