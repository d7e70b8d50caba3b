"""auditor.decide.gate: one exit rule (undecided > failed > passed) for run, test, validate."""

from __future__ import annotations

import dataclasses

import pytest

from auditor.core.decisions import Mark
from auditor.core.exitcodes import ExitCode
from auditor.core.status import Severity, Status
from auditor.decide import gate
from auditor.decide.gate import Gate
from auditor.evaluate.results import RuleResult
from tests.helpers import compiled, rule_yaml


@pytest.fixture
def rule(tmp_path):
    (compiled_rule,) = compiled(tmp_path, rule_yaml(severity="medium")).rules
    return compiled_rule


def result(rule, status, mark=None) -> RuleResult:
    return RuleResult(rule, status, "", "", baseline=mark)


@pytest.mark.parametrize(("undecided", "failed", "code"), [
    (False, False, ExitCode.OK), (False, True, ExitCode.FAILED), (True, False, ExitCode.UNDECIDED),
    (True, True, ExitCode.UNDECIDED),
])
def test_undecided_outranks_failed(undecided, failed, code):
    assert gate.decide(undecided=undecided, failed=failed) == code


def test_run_gate_by_severity(rule):
    failing = [result(rule, Status.PASS), result(rule, Status.FAIL)]
    assert Gate().exit_code(failing) == ExitCode.FAILED
    assert Gate(Severity.MEDIUM).exit_code(failing) == ExitCode.FAILED
    assert Gate(Severity.HIGH).exit_code(failing) == ExitCode.OK  # a medium failure under --fail-on high
    assert Gate(Severity.CRITICAL).exit_code([*failing, result(rule, Status.ERROR)]) == ExitCode.UNDECIDED
    assert Gate().exit_code([result(rule, Status.WAIVED)]) == ExitCode.OK


def test_run_gate_only_new(rule):
    assert Gate(only_new=True).exit_code([result(rule, Status.FAIL, Mark.STILL)]) == ExitCode.OK
    assert Gate(only_new=True).exit_code([result(rule, Status.FAIL, Mark.NEW)]) == ExitCode.FAILED


def test_apply_sets_the_runs_exit_code_and_summary(rule):
    from auditor.evaluate.results import RunResult

    run = RunResult(reference_us=0, account_id=None, source="files", results=(result(rule, Status.FAIL),))
    assert run.exit_code == ExitCode.UNDECIDED  # not gated yet: nothing decided
    gated = Gate().apply(run)
    assert gated.exit_code == ExitCode.FAILED and gated.to_json()["summary"]["exit_code"] == 1
    assert Gate(Severity.CRITICAL).apply(dataclasses.replace(gated)).exit_code == ExitCode.OK


def test_problems_and_cases():
    assert gate.for_problems([]) == ExitCode.OK
    assert gate.for_problems(["a problem"]) == ExitCode.UNDECIDED
    assert gate.for_cases([True, True], 0) == ExitCode.OK
    assert gate.for_cases([True, False], 0) == ExitCode.FAILED
    assert gate.for_cases([True, False], 1) == ExitCode.UNDECIDED
