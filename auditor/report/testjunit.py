"""JUnit XML of `auditor test`: one testcase per rule test case, so CI shows the rule tests like unit tests."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CaseOutcome:
    """One rule test case as the report shows it."""

    rule_id: str
    name: str
    outcome: str  # held | failed | error
    message: str  # the case's line (what was expected, what came out, where the case is)
    file: str | None = None


def render_test_junit(cases: Sequence[CaseOutcome], problems: Sequence[str] = ()) -> str:
    """The cases (and problems that stopped cases from running, as errors) as a JUnit XML document."""
    failures = sum(1 for c in cases if c.outcome == "failed")
    errors = sum(1 for c in cases if c.outcome == "error") + len(problems)
    suites = ET.Element("testsuites", name="auditor test")
    suite = ET.SubElement(suites, "testsuite", name="rule tests", tests=str(len(cases) + len(problems)),
                          failures=str(failures), errors=str(errors), skipped="0")
    for c in cases:
        case = ET.SubElement(suite, "testcase", classname=c.rule_id, name=c.name)
        if c.file:
            case.set("file", c.file)
        if c.outcome == "failed":
            ET.SubElement(case, "failure", message=c.message, type="failed").text = c.message
        elif c.outcome == "error":
            ET.SubElement(case, "error", message=c.message, type="error").text = c.message
    for i, problem in enumerate(problems, 1):
        case = ET.SubElement(suite, "testcase", classname="auditor", name=f"problem {i}")
        ET.SubElement(case, "error", message=problem, type="error").text = problem
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
