"""Baselines: mark each result against an earlier run's results JSON (`run --baseline PREVIOUS.json`).

- `new`: the rule fails now and did not fail in the baseline, or it fails for a group (e.g. an address or a
  user) that was not among the baseline's violating groups for that rule;
- `still`: the rule fails now, and failed in the baseline with every group that violates now;
- `fixed`: the rule passes now and failed in the baseline;
- none (null): anything else (passing both times, waived, error).
Only `fail` in the baseline counts as a known finding: a waived finding whose waiver has expired comes
back as `new`. Compare unredacted results (`--redact` masks the group values compared here).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from auditor.core.decisions import BaselineMarks, Mark
from auditor.core.status import Status
from auditor.evaluate.results import ResultsFileError, RunResult, load_results_file

# A baseline is a results file; its problems are results-file problems, named for the option.
BaselineError = ResultsFileError


def load_baseline(path: Path) -> dict[str, Any]:
    """An earlier run's results JSON, checked against the results schema."""
    return load_results_file(path, f"--baseline {path}")


def _group_key(group: dict[str, Any] | None) -> str:
    return json.dumps(group, sort_keys=True, default=str)


def mark_baseline(run: RunResult, baseline: dict[str, Any]) -> RunResult:
    """The run with every result marked new / still / fixed (or None) against the baseline document."""
    before: dict[str, tuple[str, set[str]]] = {}
    for item in baseline.get("results", []):
        failing = {_group_key(m.get("group")) for m in item.get("measurements", []) if not m.get("ok", True)}
        before[item["id"]] = (item["status"], failing)
    marked = []
    lists: dict[Mark, list[str]] = {mark: [] for mark in Mark}
    for result in run.results:
        rule_id = result.compiled.rule.id
        status, groups = before.get(rule_id, (None, set()))
        mark = None
        if result.status is Status.FAIL:
            now = {_group_key(m.group) for m in result.measurements if not m.ok}
            mark = Mark.STILL if status == Status.FAIL and now <= groups else Mark.NEW
        elif result.status is Status.PASS and status == Status.FAIL:
            mark = Mark.FIXED
        if mark:
            lists[mark].append(rule_id)
        marked.append(dataclasses.replace(result, baseline=mark))
    info = BaselineMarks(baseline["reference_time"], baseline.get("provenance", {}).get("rules_sha256"),
                         new=tuple(lists[Mark.NEW]), still=tuple(lists[Mark.STILL]), fixed=tuple(lists[Mark.FIXED]))
    return dataclasses.replace(run, results=tuple(marked), baseline=info)
