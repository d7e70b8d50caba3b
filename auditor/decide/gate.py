"""The exit gate: how a command's outcome becomes its exit code, for every command.

0 passed, 1 failed, 2 could not decide. Undecided outranks failed: a rule in error, a problem in the input or
a case that could not run makes 2, whatever failed beside it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sized
from dataclasses import dataclass

from auditor.core.decisions import Mark
from auditor.core.exitcodes import ExitCode
from auditor.core.status import Severity, Status
from auditor.evaluate.results import RuleResult, RunResult


def decide(*, undecided: bool = False, failed: bool = False) -> ExitCode:
    """The one rule every command's exit code follows: undecided (2) > failed (1) > passed (0)."""
    if undecided:
        return ExitCode.UNDECIDED
    return ExitCode.FAILED if failed else ExitCode.OK


@dataclass(frozen=True)
class Gate:
    """What fails a run (`run --fail-on`, `--fail-on-new`): a failing rule at or above `fail_on`; with
    `only_new`, only those a baseline marks new."""

    fail_on: Severity = Severity.INFO
    only_new: bool = False

    def fails(self, result: RuleResult) -> bool:
        """True when this result fails the gate."""
        return (result.status is Status.FAIL and result.compiled.rule.severity.rank >= self.fail_on.rank
                and (not self.only_new or result.baseline is Mark.NEW))

    def exit_code(self, results: Iterable[RuleResult]) -> ExitCode:
        """2 if any rule errored, 1 if a rule fails the gate, else 0."""
        results = list(results)
        return decide(undecided=any(r.status is Status.ERROR for r in results),
                      failed=any(self.fails(r) for r in results))

    def apply(self, run: RunResult) -> RunResult:
        """The run with its exit code decided (the last step of a run, after waivers and baseline marks)."""
        return dataclasses.replace(run, exit_code=self.exit_code(run.results))


def for_problems(problems: Sized) -> ExitCode:
    """`validate` and every command that stops on input problems: 2 when there are any, else 0."""
    return decide(undecided=len(problems) > 0)


def for_cases(held: Iterable[bool], undecided: int) -> ExitCode:
    """`test`: 2 when a case could not run (or errored), 1 when a case did not hold, else 0."""
    return decide(undecided=undecided > 0, failed=not all(held))
