"""Rule and run results: the one structure the JSON report serialises and every template sees."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor import __version__
from auditor.compile.plan import CompiledRule
from auditor.core.compliance import rollup
from auditor.core.coverage import Coverage, RuleCoverage
from auditor.core.decisions import AppliedWaiver, BaselineMarks, Mark, TimelineStep, WaiverUse
from auditor.core.exitcodes import ExitCode
from auditor.core.period import Period
from auditor.core.provenance import FileRecord, RequestRecord
from auditor.core.status import Status
from auditor.core.timeutil import format_time
from auditor.evaluate.outcome import Measurement, Outcome


def group_key(group: dict[str, Any] | None) -> str:
    """A group's identity, for matching the measurements of one group ('' for the whole rule)."""
    return repr(sorted(group.items())) if group else ""


@dataclass(frozen=True)
class RuleResult:
    """What happened to one rule."""

    compiled: CompiledRule
    status: Status
    message: str
    fetch: str
    measurements: tuple[Measurement, ...] = ()
    violations: int = 0
    evidence: tuple[dict[str, Any], ...] = ()
    waiver: AppliedWaiver | None = None
    # Violating groups and their record counts (not serialised): what waivers cover.
    groups: tuple[tuple[dict[str, Any] | None, int], ...] = ()
    baseline: Mark | None = None  # with --baseline: new | still | fixed | None
    # A failing rule with some of its violating groups waived: each waived group and its waiver's ticket
    # (or owner); their measurements say so in the JSON (`waived`).
    waived_groups: tuple[tuple[dict[str, Any] | None, str], ...] = ()
    # Periodic runs: each step's status (serialised), and the per-step outcomes the evaluator produced before
    # waivers (not serialised; auditor.decide.period turns them into the timeline).
    timeline: tuple[TimelineStep, ...] | None = None
    steps: tuple[Outcome, ...] = ()
    coverage: RuleCoverage | None = None  # what data covers of the window (auditor.decide.coverage)

    def _measurements_json(self) -> list[dict[str, Any]]:
        waived = {group_key(g): ticket for g, ticket in self.waived_groups}
        out = []
        for m in self.measurements:
            item = m.to_json()
            if not m.ok and group_key(m.group) in waived:
                item["waived"] = waived[group_key(m.group)]
            out.append(item)
        if not waived:
            return out
        # Unwaived failing groups lead, then the waived ones, then the groups that hold.
        return sorted(out, key=lambda item: 2 if item["ok"] else 1 if "waived" in item else 0)

    def to_json(self) -> dict[str, Any]:
        """The results JSON form of one rule (SPEC section 4 key order)."""
        rule = self.compiled.rule
        out = {
            "id": rule.id,
            "title": rule.title,
            "description": rule.description,
            "remediation": rule.remediation,
            "severity": rule.severity.value,
            "tags": list(rule.tags),
            "source": rule.source,
            "file": rule.location.path,
            "line": rule.location.line,
            "status": self.status.value,
            "message": self.message,
            "window": {"since": format_time(self.compiled.since_us), "until": format_time(self.compiled.until_us)},
            "measurements": self._measurements_json(),
            "violations": self.violations,
            "evidence": list(self.evidence),
            "waiver": self.waiver.to_json() if self.waiver is not None else None,
            "fetch": self.fetch,
        }
        if rule.correlation is not None:
            c = rule.correlation
            out["correlate"] = {"first": c.first.source, "then": c.then.source, "join": dict(c.join),
                                "within": c.within}
        if self.timeline is not None:
            out["timeline"] = [step.to_json() for step in self.timeline]
        if self.coverage is not None:
            out["coverage"] = self.coverage.to_json()
        return out


@dataclass(frozen=True)
class RunResult:
    """A whole run: rule results, counters and warnings."""

    reference_us: int
    account_id: str | None
    source: str  # api | files
    results: tuple[RuleResult, ...]
    api_requests: int = 0
    records_fetched: int = 0
    duration_s: float = 0.0
    warnings: tuple[str, ...] = ()
    rules_sha256: str = ""
    waivers_sha256: str | None = None
    config_sha256: str | None = None
    requests: tuple[RequestRecord, ...] = field(default=())
    files: tuple[FileRecord, ...] = field(default=())  # the input files of a run over files
    # Each waiver of the waivers file with its state and the records it covered (auditor.load.waivers).
    waivers: tuple[WaiverUse, ...] | None = None
    # With --baseline: the earlier run and the rule ids marked new / still / fixed (auditor.decide.baseline).
    baseline: BaselineMarks | None = None
    period: Period | None = None  # periodic runs
    # Decided last, by the exit gate (auditor.decide.gate, after waivers and baseline marks); a run that was
    # never gated has decided nothing.
    exit_code: ExitCode = ExitCode.UNDECIDED
    coverage: Coverage | None = None  # what the data covers, per log (auditor.core.coverage)

    def to_json(self) -> dict[str, Any]:
        """The results JSON document (SPEC section 4), stable key order."""
        counts = {s.value: sum(1 for r in self.results if r.status is s) for s in Status}
        results = [r.to_json() for r in self.results]
        if self.baseline is not None:
            for item, r in zip(results, self.results, strict=True):
                item["baseline"] = r.baseline.value if r.baseline is not None else None
        document: dict[str, Any] = {
            "version": 1,
            "tool": {"name": "auditor", "version": __version__},
            "reference_time": format_time(self.reference_us),
            "account_id": self.account_id,
            "source": self.source,
            "summary": {
                "rules": len(self.results),
                **counts,
                "api_requests": self.api_requests,
                "records_fetched": self.records_fetched,
                "duration_s": round(self.duration_s, 3),
                "exit_code": int(self.exit_code),
            },
            "results": results,
            "compliance": rollup(results),
            "warnings": list(self.warnings),
            "provenance": {
                "rules_sha256": self.rules_sha256,
                "waivers_sha256": self.waivers_sha256,
                "config_sha256": self.config_sha256,
                "files": [f.to_json() for f in self.files],
                "requests": [q.to_json() for q in self.requests],
            },
        }
        if self.coverage is not None and self.coverage.logs:
            document["coverage"] = self.coverage.to_json()
        if self.waivers is not None:
            document["waivers"] = [use.to_json() for use in self.waivers]
        if self.period is not None:
            document["period"] = self.period.to_json()
        if self.baseline is not None:
            document["baseline"] = self.baseline.to_json()
        return document


class ResultsFileError(Exception):
    """A results JSON file cannot be used; the message is one line."""


def load_results_file(path: Path, label: str) -> dict[str, Any]:
    """A saved run's results JSON, checked against the results schema; `label` names it in messages."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsFileError(f"{label}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsFileError(f"{label}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ResultsFileError(f"{label}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); "
                               "pass a file written by run --results") from None
    from auditor.load.schema import validator  # jsonschema: imported by the commands that read results only

    problem = next(iter(sorted(validator("results").iter_errors(document), key=lambda e: list(e.path))), None)
    if problem is not None:
        where = "/".join(str(p) for p in problem.absolute_path) or "top level"
        raise ResultsFileError(f"{label}: not an auditor results document ({where}: {problem.message}); "
                               "pass a file written by run --results")
    return document

