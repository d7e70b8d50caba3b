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

from auditor.results import RunResult
from auditor.schema import validator


class BaselineError(Exception):
    """The baseline file cannot be used; the message is one line."""


def load_baseline(path: Path) -> dict[str, Any]:
    """An earlier run's results JSON, checked against the results schema."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaselineError(f"--baseline {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"--baseline {path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BaselineError(f"--baseline {path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); "
                            "pass a file written by run --results") from None
    problem = next(iter(sorted(validator("results").iter_errors(document), key=lambda e: list(e.path))), None)
    if problem is not None:
        where = "/".join(str(p) for p in problem.absolute_path) or "top level"
        raise BaselineError(f"--baseline {path}: not an auditor results document ({where}: {problem.message}); "
                            "pass a file written by run --results")
    return document


def _group_key(group: dict[str, Any] | None) -> str:
    return json.dumps(group, sort_keys=True, default=str)


def mark_baseline(run: RunResult, baseline: dict[str, Any]) -> RunResult:
    """The run with every result marked new / still / fixed (or None) against the baseline document."""
    before: dict[str, tuple[str, set[str]]] = {}
    for item in baseline.get("results", []):
        failing = {_group_key(m.get("group")) for m in item.get("measurements", []) if not m.get("ok", True)}
        before[item["id"]] = (item["status"], failing)
    marked = []
    lists: dict[str, list[str]] = {"new": [], "still": [], "fixed": []}
    for result in run.results:
        rule_id = result.compiled.rule.id
        status, groups = before.get(rule_id, (None, set()))
        mark = None
        if result.status == "fail":
            now = {_group_key(m.group) for m in result.measurements if not m.ok}
            mark = "still" if status == "fail" and now <= groups else "new"
        elif result.status == "pass" and status == "fail":
            mark = "fixed"
        if mark:
            lists[mark].append(rule_id)
        marked.append(dataclasses.replace(result, baseline=mark))
    info = {
        "reference_time": baseline["reference_time"],
        "rules_sha256": baseline.get("provenance", {}).get("rules_sha256"),
        **lists,
    }
    return dataclasses.replace(run, results=tuple(marked), baseline=info)
