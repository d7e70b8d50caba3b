"""A rule whose regex match runs out of time is `error`, alone: the other rules fed the same records go on.

A match that times out raises MatchTimeout out of the rule's filter. Caught around that rule's feed, it stops
the rule (later records are not offered to it) and becomes its outcome, naming the rule, the pattern and the
record; an uncaught one would end the whole pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from auditor.core.model import Rule
from auditor.core.status import Status
from auditor.core.timeutil import format_time
from auditor.evaluate.outcome import Outcome
from auditor.language.conditions import MatchTimeout

_REGEX_OPS = frozenset({"matches", "not_matches"})


def uses_regex(rule: Rule) -> bool:
    """True when any condition of the rule (filter or a ratio's `where`) is matches/not_matches."""
    conditions = [*rule.conditions, *(c for e in rule.expectations for c in e.where)]
    return any(c.op in _REGEX_OPS for c in conditions)


def filter_fields(rule: Rule) -> list[str]:
    """The fields a rule's filter (and its ratios' `where`) compare."""
    return [c.field for c in (*rule.conditions, *(c for e in rule.expectations for c in e.where))]


class TimeoutGuard:
    """An evaluator (RuleEvaluator or StepEvaluator) whose regex timeouts make its outcome `error`."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.stopped: str | None = None  # why the rule was stopped: its outcome's message

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def gate(self) -> Callable[[dict[str, Any], int], None]:
        """What the runner's router offers records to: this guarded feed, called rather than written inline
        (codegen.compile_fanout inlines a Gate's filter, which would take the timeout past the guard)."""
        return self.feed

    def feed(self, record: dict[str, Any], t_us: int) -> None:
        """Offer one record to the rule, unless a timeout has stopped it."""
        if self.stopped is not None:
            return
        try:
            self.inner.feed(record, t_us)
        except MatchTimeout as exc:
            field = next((k for k, v in record.items() if v is exc.value), "a value")
            self.stopped = (f"rule {self.inner.rule.id} not evaluated: {exc} in {field} of the record at "
                            f"{format_time(t_us)}; simplify the pattern (see auditor validate)")

    def snapshot(self) -> tuple[str | None, Any]:
        """What was fed, as plain data: why the rule stopped (if it did) and the evaluator's own snapshot."""
        return self.stopped, self.inner.snapshot()

    def merge(self, snapshot: tuple[str | None, Any]) -> None:
        """Add what another pass was fed; a rule stopped in either pass is stopped."""
        stopped, inner = snapshot
        self.stopped = self.stopped or stopped
        self.inner.merge(inner)

    def outcome(self) -> Outcome:
        """The rule's outcome, `error` when a match ran out of time."""
        if self.stopped is not None:
            return Outcome(Status.ERROR, self.stopped, (), 0, (), 0)
        return self.inner.outcome()


def guard(evaluator: Any) -> Any:
    """The evaluator, wrapped in a TimeoutGuard when its rule matches regexes."""
    return TimeoutGuard(evaluator) if uses_regex(evaluator.rule) else evaluator
