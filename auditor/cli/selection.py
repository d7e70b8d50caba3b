"""What plan and run select and compile: reference time or period, rules, a fresh or saved plan, a baseline."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from auditor.cli.common import fail, fail_with
from auditor.compile.compiler import compile_plan
from auditor.compile.plan import Fetch, Plan
from auditor.compile.pushdown import Target, api_target, files_target
from auditor.core.period import Period
from auditor.core.selection import Selection, is_glob
from auditor.core.timeutil import TimeRangeError, now_us, parse_time
from auditor.load.profile import ApiProfile
from auditor.load.validate import Project


def option_time(option: str, text: str) -> int:
    """A time option's value in microseconds since the epoch (a one-line usage error when it is not one)."""
    try:
        return parse_time(text)
    except TimeRangeError as exc:
        fail(f"{option}: {exc}")
    except ValueError:
        fail(f"{option} {text!r} is not an RFC 3339 timestamp (e.g. 2026-11-15T00:00:00Z)")


def reference_time(at: str | None) -> int:
    """--at in whole microseconds since the epoch, truncated to the second (default now)."""
    if at is None:
        return now_us()
    t = option_time("--at", at)
    return t - t % 1_000_000  # whole seconds, as the SPEC says


def period(text: str | None, tz: str | None, step: str | None, at: str | None = None) -> Period | None:
    """The parsed --period (None without one); --at, and --tz/--step without --period, are usage errors."""
    from auditor.core.period import PeriodError, parse_period

    if text is None:
        given = [name for name, value in (("--tz", tz), ("--step", step)) if value]
        if given:
            fail(f"{' and '.join(given)} only appl{'y' if len(given) > 1 else 'ies'} with --period")
        return None
    if at is not None:
        fail("--at cannot be combined with --period: each step's reference time comes from the period")
    try:
        return parse_period(text, tz=tz or "UTC", step=step or "1d")
    except PeriodError as exc:
        fail(str(exc))


_ACCOUNT_ID = re.compile(r"[0-9a-fA-F]{32}")


def account(account_id: str | None) -> str | None:
    """The account id (--account-id, CLOUDFLARE_ACCOUNT_ID or auditor.yaml), checked before any request."""
    if account_id is not None and not _ACCOUNT_ID.fullmatch(account_id):
        fail(f"account id {account_id!r} is not a Cloudflare account id (32 hexadecimal digits, as in the "
             "dashboard URL); check --account-id, CLOUDFLARE_ACCOUNT_ID or account_id in auditor.yaml")
    return account_id


def select(project: Project, chosen: Selection) -> list:
    """The rules chosen by --rule/--tag (all without either) less --skip-rule/--skip-tag."""
    rules = list(project.rules)
    known = {r.id for r in rules}
    for option, pattern in chosen.unmatched(rules):
        if option.endswith("rule") and not is_glob(pattern):
            from auditor.load.schema import did_you_mean

            hint = did_you_mean(pattern, known)
            fail(f"{option} {pattern!r}: no such rule" + (f"; {hint}" if hint else ""))
        if option.endswith("rule"):
            fail(f"{option} {pattern!r} matches no rule id")
    selected = chosen.apply(rules)
    if not selected:
        in_use = sorted({t for r in rules for t in r.tags})
        what = "--skip-rule/--skip-tag left" if not chosen.tags else "--tag selected"
        fail(f"{what} no rules" + (f" (tags in use: {', '.join(in_use)})" if in_use else ""))
    return selected


def with_api_profile(project: Project, account_id: str | None) -> tuple[Project, ApiProfile | None]:
    """The project with a fresh API profile's findings applied (`auditor doctor`); a warning on stderr for
    a profile that exists but cannot be used (too old, another account, unreadable)."""
    from dataclasses import replace

    from auditor.load.profile import apply_profile, load_profile

    profile, _, why = load_profile(project.config, account_id, now_us())
    if why is not None:
        click.echo(f"warning: {why}", err=True)
    if profile is None:
        return project, None
    return replace(project, config=apply_profile(project.config, profile)), profile


def target(project: Project, profile: ApiProfile | None, over_files: bool) -> Target:
    """The backend the plan is for: exported files (nothing pushed down), or the API under the `pushdown:` scope
    with what the API profile proved."""
    return files_target() if over_files else api_target(project.config.pushdown, profile)


def api_request(project: Project, account_id: str | None) -> Callable[[Fetch], dict[str, Any]]:
    """What the API is sent for each fetch (path and query, as `plan --json` shows them)."""
    from auditor.sources.cloudflare.parts import Ask

    return lambda fetch: Ask.of(fetch, project.config.per_page).to_json(account_id)


def compile_rules(project: Project, rules: list, at: str | None, account_id: str | None,
                  in_period: Period | None = None, to: Target | None = None) -> Plan:
    """The plan of the selected rules at --at (or over the period) for backend `to` (default: the API without a
    profile), or stop with the compiler's diagnostics."""
    reference_us = in_period.end_us if in_period is not None else reference_time(at)
    plan, problems = compile_plan(rules, project.config, reference_us, account_id, period=in_period, target=to)
    if problems:
        fail_with(problems)
    return plan


def saved_plan(path: Path | None, *, at: str | None, chosen: Selection, per_page: int | None,
               period_text: str | None = None) -> dict[str, Any] | None:
    """`run --plan`: the saved plan document; the options it fixes cannot be given again."""
    if path is None:
        return None
    from auditor.compile.savedplan import SavedPlanError, load

    given = [name for name, value in (("--at", at), ("--period", period_text), ("--rule", chosen.rule_ids),
                                      ("--tag", chosen.tags), ("--skip-rule", chosen.skip_rule_ids),
                                      ("--skip-tag", chosen.skip_tags), ("--per-page", per_page))
             if value]
    if given:
        fail(f"{', '.join(given)} cannot be combined with --plan: the saved plan fixes the reference time, "
             "the selection and the fetches")
    try:
        return load(path)
    except SavedPlanError as exc:
        fail(str(exc))


def compile_saved(saved: dict[str, Any], project: Project, account_id: str | None, path: Path,
                  to: Target | None = None) -> Plan:
    """The saved plan made runnable again for backend `to` (asking the API what it saved), or stop when its
    inputs changed."""
    from auditor.compile.savedplan import SavedPlanError
    from auditor.compile.savedplan import compile_saved as compile_document

    try:
        return compile_document(saved, project, account_id, path, to, api_request(project, account_id))
    except SavedPlanError as exc:
        fail(str(exc))


def baseline(path: Path | None, fail_on_new: bool) -> dict[str, Any] | None:
    """`run --baseline`: the earlier results document."""
    if path is None:
        if fail_on_new:
            fail("--fail-on-new needs --baseline PREVIOUS.json (the run to compare with)")
        return None
    from auditor.decide.baseline import BaselineError, load_baseline

    try:
        return load_baseline(path)
    except BaselineError as exc:
        fail(str(exc))
