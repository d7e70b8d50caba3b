"""Saved plans: `plan -o PLAN.json` records what the plan was made from; `run --plan` runs exactly it.

The saved document is the `plan --json` document plus `inputs` (rule paths and the selected rule ids) and
`digests` of the rule files, the config, the resolved variables and the waivers file. `run --plan`
recompiles the recorded selection at the recorded reference time and refuses to run (exit 2) when any
digest differs or the recompiled fetches are not the saved ones, so what runs is what was reviewed.

It also records the backend it was planned for (the API or files) and what the API profile had proved and
disproved (`proof`), so a plan whose fetches no longer come out the same can say why: the profile changed.
A saved plan of another format (PLAN_FORMAT) is refused with one line saying to plan again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from auditor.compile.compiler import compile_plan
from auditor.compile.plan import PLAN_FORMAT, Fetch, Plan
from auditor.compile.pushdown import CLOUDFLARE, FILES, Proof, Target
from auditor.core.period import PeriodError
from auditor.core.period import from_json as period_from_json
from auditor.core.timeutil import parse_time
from auditor.load.validate import Project

DIGESTS = ("rules_sha256", "config_sha256", "variables_sha256", "waivers_sha256")
_WHAT = {"rules_sha256": "the rule files", "config_sha256": "the config (auditor.yaml)",
         "variables_sha256": "the variables", "waivers_sha256": "the waivers file"}


Request = Callable[[Fetch], dict[str, Any]]  # what a backend sends for a fetch (over the API: path and query)


class SavedPlanError(Exception):
    """The saved plan cannot be run; the message is one line."""


def variables_sha256(project: Project) -> str:
    """Digest of the resolved variable values (from config, var files, environment and --var)."""
    text = json.dumps(project.variables.values, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def digests(project: Project) -> dict[str, str | None]:
    """What a saved plan depends on."""
    return {
        "rules_sha256": project.rules_sha256,
        "config_sha256": project.config_sha256,
        "variables_sha256": variables_sha256(project),
        "waivers_sha256": project.waivers_sha256,
    }


def document(plan: Plan, project: Project, paths: tuple[Path, ...], request: Request | None = None) -> dict[str, Any]:
    """The plan JSON (with each fetch's `request` when the backend sends one) and the inputs, digests and
    profile proof `run --plan` checks."""
    out = plan.to_json(request)
    out["inputs"] = {"paths": [str(p) for p in paths], "rule_ids": [r.rule.id for r in plan.rules]}
    out["digests"] = digests(project)
    proof = plan.target.proof
    out["proof"] = {"proven": sorted(proof.proven), "refused": sorted(proof.refused), "measured_at": proof.measured_at}
    return out


def load(path: Path) -> dict[str, Any]:
    """Read a saved plan; SavedPlanError when it is missing or not one."""
    try:
        saved = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SavedPlanError(f"--plan {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SavedPlanError(f"--plan {path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise SavedPlanError(f"--plan {path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None
    rerun = f"make a new plan with: auditor plan -o {path}"
    # Plans saved before "format" existed carried it in "version".
    fmt = saved.get("format", saved.get("version")) if isinstance(saved, dict) else None
    if isinstance(fmt, int) and fmt != PLAN_FORMAT and isinstance(saved.get("digests"), dict):
        raise SavedPlanError(f"--plan {path}: a saved plan of format {fmt}, made by "
                             f"{'an older' if fmt < PLAN_FORMAT else 'a newer'} auditor (this one reads format "
                             f"{PLAN_FORMAT}); {rerun}")
    ok = (isinstance(saved, dict) and fmt == PLAN_FORMAT and isinstance(saved.get("reference_time"), str)
          and isinstance(saved.get("fetches"), list) and isinstance(saved.get("inputs"), dict)
          and isinstance(saved["inputs"].get("rule_ids"), list) and isinstance(saved.get("digests"), dict))
    if not ok:
        raise SavedPlanError(f"--plan {path}: not a saved plan; write one with: auditor plan -o {path}")
    return saved


def stale_reasons(saved: dict[str, Any], project: Project) -> list[str]:
    """What changed since the plan was saved (empty: the inputs are the same)."""
    now = digests(project)
    return [_WHAT[k] for k in DIGESTS if saved["digests"].get(k) != now[k]]


def _fetch_identity(doc: dict[str, Any]) -> tuple[Any, Any]:
    fetches = [(f.get("key"), f.get("source"), f.get("since"), f.get("until"), f.get("filters"), f.get("fields"),
                f.get("rules")) for f in doc.get("fetches", [])]
    rules = [(r.get("id"), r.get("fetch"), r.get("window")) for r in doc.get("rules", [])]
    return fetches, rules


def same_fetches(saved: dict[str, Any], plan: Plan, request: Request | None = None) -> bool:
    """True when the recompiled plan reads exactly what the saved one does, and with `request` (a run over the
    API) asks it with the saved queries (paths aside: the account id)."""
    if _fetch_identity(saved) != _fetch_identity(plan.to_json()):
        return False
    return request is None or [f.get("query") for f in saved["fetches"]] == [request(f)["query"] for f in plan.fetches]


def _saved_proof(saved: dict[str, Any]) -> Proof | None:
    proof = saved.get("proof")
    if not isinstance(proof, dict):
        return None
    try:
        return Proof(frozenset(map(str, proof.get("proven", ()))), frozenset(map(str, proof.get("refused", ()))),
                     proof.get("measured_at") if isinstance(proof.get("measured_at"), str) else None)
    except TypeError:
        return None


def compile_saved(saved: dict[str, Any], project: Project, account_id: str | None, path: Path,
                  target: Target | None = None, request: Request | None = None) -> Plan:
    """The saved plan, recompiled from the current inputs for `target` (by default the API without a profile),
    asking each fetch with the saved query (`request`: over the API); SavedPlanError when it is stale."""
    target = target if target is not None else Target(scope=project.config.pushdown)
    rerun = f"make a new plan with: auditor plan -o {path}"
    planned_for = saved.get("backend")
    if planned_for == FILES.name and target.table is not FILES:
        raise SavedPlanError(f"{path} was planned for exported files (plan --data), not the API; {rerun}")
    if planned_for == CLOUDFLARE.name and target.table is not CLOUDFLARE:
        # The plan reviewed for the API, run over files: they ignore its filters (every condition is checked
        # locally), so it is recompiled as it was saved, with the profile's findings it was made with.
        target = Target(CLOUDFLARE, project.config.pushdown, _saved_proof(saved) or Proof())
    reasons = stale_reasons(saved, project)
    if reasons:
        raise SavedPlanError(f"{path} is stale: {', '.join(reasons)} changed since it was saved; {rerun}")
    by_id = {r.id: r for r in project.rules}
    missing = [i for i in saved["inputs"]["rule_ids"] if i not in by_id]
    if missing:
        raise SavedPlanError(f"{path} is stale: rule '{missing[0]}' is not in the rule files; {rerun}")
    planned = saved.get("account_id")
    if planned and account_id and account_id != planned:
        raise SavedPlanError(f"{path} was planned for account {planned}, not {account_id}; {rerun}")
    try:
        reference_us = parse_time(saved["reference_time"])
    except ValueError:
        raise SavedPlanError(f"--plan {path}: invalid reference_time {saved['reference_time']!r}") from None
    rules = [by_id[i] for i in saved["inputs"]["rule_ids"]]
    try:  # a periodic plan (plan --period -o) is recompiled for the same steps
        period = period_from_json(saved["period"]) if saved.get("period") else None
    except (PeriodError, KeyError, TypeError):
        raise SavedPlanError(f"--plan {path}: invalid period {saved.get('period')!r}; {rerun}") from None
    plan, problems = compile_plan(rules, project.config, reference_us, planned or account_id, period=period,
                                  target=target)
    if not problems and not same_fetches(saved, plan):
        proof = _saved_proof(saved)
        if proof is not None and proof != target.proof:
            then, _ = compile_plan(rules, project.config, reference_us, planned or account_id, period=period,
                                   target=replace(target, proof=proof))
            if same_fetches(saved, then):
                raise SavedPlanError(f"{path} is stale: the API profile changed since it was saved (planned with "
                                     f"{proof.describe()}, now {target.proof.describe()}), so other pushdowns "
                                     f"would be sent; re-plan with: auditor plan -o {path}")
    if problems or not same_fetches(saved, plan, request if target.table is CLOUDFLARE else None):
        raise SavedPlanError(f"{path} is stale: the rules no longer compile to the saved fetches "
                             f"(another auditor version?); {rerun}")
    return plan

