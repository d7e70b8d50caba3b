"""Command-line interface: parses options, calls one function per command, maps outcomes to exit codes."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from auditor import __version__
from auditor.compile.compiler import compile_plan
from auditor.compile.plan import Plan
from auditor.core.diagnostics import Diagnostic
from auditor.core.exitcodes import ExitCode
from auditor.core.model import SEVERITIES, Config
from auditor.core.period import Period
from auditor.core.timeutil import format_time, now_us, parse_time
from auditor.load.validate import Inputs, Project, load_project


class UsageProblem(Exception):
    """A one-line `error: ...` for the user, exit 2."""


def _fail(message: str) -> NoReturn:
    raise UsageProblem(message)


def _guard(func: Callable[..., int]) -> Callable[..., None]:
    """Run a command: one-line errors instead of tracebacks (unless --debug), exit with its code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        debug = bool(kwargs.get("debug"))
        try:
            code = func(*args, **kwargs)
        except UsageProblem as exc:
            click.echo(f"error: {exc}", err=True)
            code = ExitCode.UNDECIDED
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            code = ExitCode.UNDECIDED
        except click.exceptions.Exit:
            raise
        except Exception as exc:
            if debug:
                raise
            click.echo(f"error: internal error ({type(exc).__name__}: {exc}); rerun with --debug for details",
                       err=True)
            code = ExitCode.UNDECIDED
        sys.exit(int(code))

    return wrapper


def _project_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by every command that reads rules."""
    for decorator in reversed([
        click.argument("paths", nargs=-1, type=click.Path(path_type=Path)),
        click.option("--config", "config_path", type=click.Path(path_type=Path),
                     help="auditor.yaml to use (default: ./auditor.yaml if present)."),
        click.option("--var", "cli_vars", multiple=True, metavar="NAME=VALUE",
                     help="Set a variable (VALUE parsed as YAML); repeatable; wins over every other source."),
        click.option("--var-file", "var_files", multiple=True, type=click.Path(path_type=Path),
                     help="YAML mapping of variables; repeatable."),
        click.option("--waivers", "waivers_path", type=click.Path(path_type=Path),
                     help="Waivers file (default: waivers: in auditor.yaml)."),
        click.option("--debug", is_flag=True, help="Show tracebacks for internal errors."),
    ]):
        func = decorator(func)
    return func


def _load(paths: tuple[Path, ...], config_path: Path | None, cli_vars: tuple[str, ...],
          var_files: tuple[Path, ...], waivers_path: Path | None = None) -> Project:
    inputs = Inputs(paths=paths, config_path=config_path, var_files=var_files, cli_vars=cli_vars,
                    env=dict(os.environ), waivers_path=waivers_path)
    return load_project(inputs)


def _report_problems(problems: list[Diagnostic] | tuple[Diagnostic, ...]) -> None:
    for d in problems:
        click.echo(d.format(), err=True)


def _reference_time(at: str | None) -> int:
    if at is None:
        return now_us()
    try:
        t = parse_time(at)
    except ValueError:
        _fail(f"--at {at!r} is not an RFC 3339 timestamp (e.g. 2026-11-15T00:00:00Z)")
    return t - t % 1_000_000  # whole seconds, as the SPEC says


_PERIOD_HELP = ("Evaluate every rule at each step of a period: 2026-11, 2026-Q4, 2026-W47, 2026 or START/END "
                "(RFC 3339); the data is fetched once.")


def _period_options(func: Callable[..., Any], period_help: str = _PERIOD_HELP) -> Callable[..., Any]:
    """--period, --tz and --step (SPEC section 3, periodic audits)."""
    for decorator in reversed([
        click.option("--period", "period_text", metavar="PERIOD", help=period_help),
        click.option("--tz", help="IANA time zone of a calendar --period and of day steps (default UTC)."),
        click.option("--step", help="Time between the period's reference times (default 1d)."),
    ]):
        func = decorator(func)
    return func


def _selection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """What plan and run both select: reference time or period, account, rules by id or tag."""
    func = click.option("--tag", "tags", multiple=True, help="Only rules with this tag; repeatable.")(func)
    func = click.option("--rule", "rule_ids", multiple=True, help="Only this rule id; repeatable.")(func)
    func = click.option("--account-id", envvar="CLOUDFLARE_ACCOUNT_ID",
                        help="Cloudflare account id (also shown in planned paths).")(func)
    func = _period_options(func)
    return click.option("--at", help="Reference time T (RFC 3339; default now).")(func)


def _report_period_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """`report --period`: a check of the saved results, not an evaluation."""
    return _period_options(func, "Refuse (exit 2) unless the results are of this period (with --tz, --step); "
                                 "the timeline is never recomputed.")


def _period(text: str | None, tz: str | None, step: str | None, at: str | None = None) -> Period | None:
    """The parsed --period (None without one); --at, and --tz/--step without --period, are usage errors."""
    from auditor.core.period import PeriodError, parse_period

    if text is None:
        given = [name for name, value in (("--tz", tz), ("--step", step)) if value]
        if given:
            _fail(f"{' and '.join(given)} only appl{'y' if len(given) > 1 else 'ies'} with --period")
        return None
    if at is not None:
        _fail("--at cannot be combined with --period: each step's reference time comes from the period")
    try:
        return parse_period(text, tz=tz or "UTC", step=step or "1d")
    except PeriodError as exc:
        _fail(str(exc))


def _select(project: Project, rule_ids: tuple[str, ...], tags: tuple[str, ...]) -> list:
    rules = list(project.rules)
    if not rule_ids and not tags:
        return rules
    known = {r.id for r in rules}
    unknown = [r for r in rule_ids if r not in known]
    if unknown:
        from auditor.load.schema import did_you_mean

        hint = did_you_mean(unknown[0], known)
        _fail(f"--rule {unknown[0]!r}: no such rule" + (f"; {hint}" if hint else ""))
    selected = [r for r in rules if r.id in rule_ids or set(r.tags) & set(tags)]
    if not selected:
        _fail("--tag selected no rules" + (f" (tags in use: {', '.join(sorted({t for r in rules for t in r.tags}))})"
                                          if rules else ""))
    return selected


def _compile(project: Project, rules: list, at: str | None, account_id: str | None,
             period: Period | None = None) -> Plan:
    reference_us = period.end_us if period is not None else _reference_time(at)
    plan, problems = compile_plan(rules, project.config, reference_us, account_id, period=period)
    if problems:
        _report_problems(problems)
        raise click.exceptions.Exit(int(ExitCode.UNDECIDED))
    return plan


def _saved_plan(path: Path | None, *, at: str | None, rule_ids: tuple[str, ...], tags: tuple[str, ...],
                per_page: int | None, period: str | None = None) -> dict[str, Any] | None:
    """`run --plan`: the saved plan document; the options it fixes cannot be given again."""
    if path is None:
        return None
    from auditor.compile.savedplan import SavedPlanError, load

    given = [name for name, value in (("--at", at), ("--period", period), ("--rule", rule_ids), ("--tag", tags),
                                      ("--per-page", per_page))
             if value]
    if given:
        _fail(f"{', '.join(given)} cannot be combined with --plan: the saved plan fixes the reference time, "
              "the selection and the fetches")
    try:
        return load(path)
    except SavedPlanError as exc:
        _fail(str(exc))


def _compile_saved(saved: dict[str, Any], project: Project, account_id: str | None, path: Path) -> Plan:
    from auditor.compile.savedplan import SavedPlanError, compile_saved

    try:
        return compile_saved(saved, project, account_id, path)
    except SavedPlanError as exc:
        _fail(str(exc))


def _baseline(path: Path | None, fail_on_new: bool) -> dict[str, Any] | None:
    """`run --baseline`: the earlier results document."""
    if path is None:
        if fail_on_new:
            _fail("--fail-on-new needs --baseline PREVIOUS.json (the run to compare with)")
        return None
    from auditor.decide.baseline import BaselineError, load_baseline

    try:
        return load_baseline(path)
    except BaselineError as exc:
        _fail(str(exc))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="auditor")
def main() -> None:
    """auditor: declarative audit checks for Cloudflare Zero Trust Access logs.

    validate the rule files, plan what will be asked of the API, run it, gate on the exit code
    (0 pass, 1 a rule failed, 2 could not decide).
    """


@main.command()
@_project_options
@_guard
def validate(paths: tuple[Path, ...], config_path: Path | None, cli_vars: tuple[str, ...],
             var_files: tuple[Path, ...], waivers_path: Path | None, debug: bool) -> int:
    """Check rule files, config, variables and waivers; no network."""
    project = _load(paths, config_path, cli_vars, var_files, waivers_path)
    if project.diagnostics:
        _report_problems(project.diagnostics)
        n = len(project.diagnostics)
        click.echo(f"{n} problem{'s' if n != 1 else ''} found", err=True)
        return ExitCode.UNDECIDED
    files = len(project.rule_files)
    waivers = "" if project.waivers_sha256 is None else (
        f", {len(project.waivers)} waiver{'s' if len(project.waivers) != 1 else ''}")
    click.echo(f"ok: {len(project.rules)} rules in {files} file{'s' if files != 1 else ''}{waivers}")
    return ExitCode.OK


def _plan_text(plan: Plan) -> str:
    lines = [f"Plan at {format_time(plan.reference_us)}: {len(plan.rules)} rules, "
             f"{len(plan.fetches)} fetch{'es' if len(plan.fetches) != 1 else ''} (pushdown: {plan.pushdown})", ""]
    if plan.period is not None:
        p = plan.period
        lines[0] = (f"Plan for period {p.label} ({p.tz}): {len(p.steps)} step{'s' if len(p.steps) != 1 else ''} of "
                    f"{p.step} at {format_time(p.steps[0])} .. {format_time(p.steps[-1])}; {len(plan.rules)} rules, "
                    f"{len(plan.fetches)} fetch{'es' if len(plan.fetches) != 1 else ''} for the whole period "
                    f"(pushdown: {plan.pushdown})")
        lines.insert(1, "Each rule's window is evaluated at every step; rules below show the span of all steps.")
    for f in plan.fetches:
        rules = plan.rules_of(f.key)
        lines.append(f"fetch {f.key}  {f.source}  {format_time(f.since_us)} .. {format_time(f.until_us)}")
        params = " ".join(f"{k}={v}" for k, v in f.filter_params()) or "(none)"
        lines.append(f"  api filters: {params}")
        lines.append(f"  fields:      {','.join(f.fields)}")
        shared = " (shared)" if len(rules) > 1 else ""
        lines.append(f"  rules{shared}:")
        for r in rules:
            for side, pushed, local in r.parts(f.key):  # a correlation rule: its `first` or `then` side
                what = f"  (correlation: {side} side)" if side else ""
                lines.append(f"    {r.rule.id}  [{format_time(r.since_us)} .. {format_time(r.until_us)}){what}")
                if pushed:
                    lines.append(f"      api:   {'; '.join(c.describe() for c in pushed)}")
                if local:
                    lines.append(f"      local: {'; '.join(c.describe() for c in local)}")
        lines.append("")
    lines.append("api: sent to the API and re-checked locally; local: checked by auditor only.")
    if plan.narrows():
        lines.append("Over the API the fetches of correlation first sides are read first; the other fetches are "
                     "then planned again, each then side only from its earliest matching first record on "
                     "(not with run --plan, which makes exactly these fetches).")
    return "\n".join(lines)


@main.command()
@_project_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Save the plan (JSON with digests of its inputs) for run --plan.")
@_selection_options
@_guard
def plan(paths: tuple[Path, ...], config_path: Path | None, cli_vars: tuple[str, ...],
         var_files: tuple[Path, ...], waivers_path: Path | None, debug: bool, as_json: bool, output: Path | None,
         at: str | None, period_text: str | None, tz: str | None, step: str | None, account_id: str | None,
         rule_ids: tuple[str, ...], tags: tuple[str, ...]) -> int:
    """Show each rule's compiled fetch and what runs locally; no network."""
    from auditor.compile import savedplan

    period = _period(period_text, tz, step, at)
    project = _load(paths, config_path, cli_vars, var_files, waivers_path)
    if project.diagnostics:
        _report_problems(project.diagnostics)
        return ExitCode.UNDECIDED
    compiled = _compile(project, _select(project, rule_ids, tags), at, account_id or project.config.account_id,
                        period)
    if period is not None:
        from auditor.decide.period import retention_warning

        warning = retention_warning(compiled, project.config.retention_days)
        if warning:
            click.echo(f"warning: over the API, {warning}", err=True)
    document = json.dumps(savedplan.document(compiled, project, paths), indent=2) + "\n"
    if output:
        _emit(document, output)
    if as_json:
        click.echo(document, nl=False)
    elif not output:
        click.echo(_plan_text(compiled))
    return ExitCode.OK


def _parse_reports(specs: tuple[str, ...], results_path: Path | None) -> list[tuple[str, Path | None]]:
    from auditor.report.render import FORMATS

    out: list[tuple[str, Path | None]] = []
    for spec in specs:
        fmt, sep, path = spec.partition("=")
        if fmt not in FORMATS:
            _fail(f"--report {spec!r}: unknown format {fmt!r} (formats: {', '.join(FORMATS)})")
        out.append((fmt, Path(path) if sep and path else None))
    if results_path is not None:
        out.append(("json", results_path))
    if not any(path is None for _, path in out):
        out.insert(0, ("text", None))
    return out


def _parse_templates(specs: tuple[str, ...]) -> list[tuple[Path, Path | None]]:
    out: list[tuple[Path, Path | None]] = []
    for spec in specs:
        template, sep, path = spec.partition("=")
        if not Path(template).is_file():
            _fail(f"--template {spec!r}: template file {template!r} not found")
        out.append((Path(template), Path(path) if sep and path else None))
    return out


def _use_color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def _emit(text: str, path: Path | None) -> None:
    if path is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write report {path}: {exc.strerror or exc}")


def _write_reports(document: dict[str, Any], reports: list[tuple[str, Path | None]],
                   templates: list[tuple[Path, Path | None]], *, quiet: bool, redact: bool) -> None:
    from auditor.report.render import ReportError, render, render_template_file

    try:
        for fmt, path in reports:
            if quiet and fmt == "text" and path is None:
                continue
            _emit(render(document, fmt, color=path is None and _use_color(), redact=redact), path)
        for template, path in templates:
            _emit(render_template_file(template, document, redact=redact), path)
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            # GitHub Actions shows this file on the job page; append, as other steps may write too.
            with open(summary, "a", encoding="utf-8") as fh:
                fh.write(render(document, "markdown", redact=redact))
    except ReportError as exc:
        raise UsageProblem(str(exc).removeprefix("error: ")) from None


def _run_api(plan: Plan, config: Config, options: Any, api_base: str | None, concurrency: int | None,
             no_progress: bool) -> Any:
    """`run` over the live API: settings checked (one-line error) before the first request."""
    from auditor.run.runner import run_api
    from auditor.sources.cloudflare.client import ApiClient, ProgressBar, SetupError, settings_from

    try:
        settings = settings_from(api_base or config.api_base, plan.account_id, os.environ,
                                 concurrency or config.concurrency)
    except SetupError as exc:
        _fail(str(exc))
    click.echo(settings.credentials.describe(), err=True)  # which scheme, never the secret
    progress = ProgressBar(sys.stderr, len(plan.fetches)) if sys.stderr.isatty() and not no_progress else None
    with ApiClient(settings, progress=progress) as client:
        return run_api(plan, client, options)


@main.command()
@_project_options
@click.option("--data", type=click.Path(path_type=Path),
              help="Read exported logs from a directory or file instead of the API.")
@click.option("--source", type=click.Choice(["access_requests", "scim_updates"]),
              help="Which log a single --data file holds.")
@_selection_options
@click.option("--fail-on", type=click.Choice(SEVERITIES), default="info", show_default=True,
              help="Lowest severity whose failure fails the gate (exit 1).")
@click.option("--report", "reports", multiple=True, metavar="FORMAT[=PATH]",
              help="Render a report (text, markdown, html, junit, sarif, csv, json); repeatable.")
@click.option("--results", "results_path", type=click.Path(path_type=Path),
              help="Write the results JSON here (same as --report json=PATH).")
@click.option("--template", "templates", multiple=True, metavar="FILE.j2[=PATH]",
              help="Render your own Jinja template (sandboxed) with the results; repeatable.")
@click.option("--redact", is_flag=True, help="Mask emails and IP addresses in every report.")
@click.option("--quiet", is_flag=True, help="No text report on stdout.")
@click.option("--api-base", envvar="CLOUDFLARE_BASE_URL",
              help="API base URL (default https://api.cloudflare.com/client/v4; http:// only for loopback).")
@click.option("--concurrency", type=click.IntRange(1, 32), help="Requests in flight at once (default 4).")
@click.option("--per-page", type=click.IntRange(1, 1000), help="Records per page asked of the API (default 1000).")
@click.option("--no-progress", is_flag=True, help="No progress bar on stderr.")
@click.option("--plan", "plan_path", type=click.Path(path_type=Path),
              help="Run exactly this saved plan (from plan -o); refused (exit 2) when its inputs changed.")
@click.option("--baseline", "baseline_path", type=click.Path(path_type=Path),
              help="An earlier run's results JSON: mark each result new, still or fixed.")
@click.option("--fail-on-new", is_flag=True, help="With --baseline: exit 1 only for failures marked new.")
@_guard
def run(paths: tuple[Path, ...], config_path: Path | None, cli_vars: tuple[str, ...],
        var_files: tuple[Path, ...], waivers_path: Path | None, debug: bool, data: Path | None, source: str | None,
        at: str | None, period_text: str | None, tz: str | None, step: str | None,
        account_id: str | None, rule_ids: tuple[str, ...], tags: tuple[str, ...], fail_on: str,
        reports: tuple[str, ...], results_path: Path | None, templates: tuple[str, ...], redact: bool,
        quiet: bool, api_base: str | None,
        concurrency: int | None, per_page: int | None, no_progress: bool,
        plan_path: Path | None, baseline_path: Path | None, fail_on_new: bool) -> int:
    """Fetch, evaluate, report; exit 0 pass, 1 fail, 2 undecided."""
    from auditor.run.runner import RunOptions, run_files

    report_specs = _parse_reports(reports, results_path)
    template_specs = _parse_templates(templates)
    if source and not data:
        _fail("--source only applies with --data FILE")
    saved = _saved_plan(plan_path, at=at, rule_ids=rule_ids, tags=tags, per_page=per_page, period=period_text)
    period = _period(period_text, tz, step, at)
    if saved is not None and not paths:
        paths = tuple(Path(p) for p in saved["inputs"]["paths"])
    baseline = _baseline(baseline_path, fail_on_new)
    project = _load(paths, config_path, cli_vars, var_files, waivers_path)
    if project.diagnostics:
        _report_problems(project.diagnostics)
        return ExitCode.UNDECIDED
    selected = _select(project, rule_ids, tags)
    if per_page is not None:  # part of each fetch's query, so it must be known when compiling
        project = dataclasses.replace(project, config=dataclasses.replace(project.config, per_page=per_page))
    if saved is not None and plan_path is not None:
        compiled = _compile_saved(saved, project, account_id or project.config.account_id, plan_path)
    else:
        compiled = _compile(project, selected, at, account_id or project.config.account_id, period)
    options = RunOptions(fail_on=fail_on, rules_sha256=project.rules_sha256, config_sha256=project.config_sha256,
                         waivers=project.waivers, waivers_sha256=project.waivers_sha256, baseline=baseline,
                         fail_on_new=fail_on_new, retention_days=project.config.retention_days,
                         exact_plan=saved is not None)
    if data is None:
        result = _run_api(compiled, project.config, options, api_base, concurrency, no_progress)
    else:
        result = run_files(compiled, data, source, options)
    document = result.to_json()
    _write_reports(document, report_specs, template_specs, quiet=quiet, redact=redact)
    return result.exit_code


@main.command()
@click.argument("results_file", metavar="RESULTS.json", type=click.Path(path_type=Path))
@click.option("--format", "fmt", default="text", show_default=True,
              help="text, markdown, html, junit, sarif, csv or json.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write here instead of stdout.")
@click.option("--template", type=click.Path(path_type=Path), help="Render this Jinja template instead.")
@click.option("--redact", is_flag=True, help="Mask emails and IP addresses.")
@_report_period_options
@click.option("--debug", is_flag=True, help="Show tracebacks for internal errors.")
@_guard
def report(results_file: Path, fmt: str, output: Path | None, template: Path | None, redact: bool,
           period_text: str | None, tz: str | None, step: str | None, debug: bool) -> int:
    """Re-render a saved run's results JSON; no network.

    With --period (and --tz, --step) the results must be of exactly that period, else exit 2: a check that
    the report shows the period you asked for; the timeline is never recomputed.
    """
    from auditor.evaluate.results import ResultsFileError, load_results_file
    from auditor.report.render import FORMATS, ReportError, render, render_template_file

    if fmt not in FORMATS:
        _fail(f"--format {fmt!r}: unknown format (formats: {', '.join(FORMATS)})")
    try:
        document = load_results_file(results_file, str(results_file))
    except ResultsFileError as exc:
        raise UsageProblem(str(exc)) from None
    period = _period(period_text, tz, step)
    if period is not None:
        from auditor.decide.period import period_mismatch

        mismatch = period_mismatch(document, period)
        if mismatch:
            _fail(f"{results_file}: --period {period.label}: {mismatch}")
    try:
        text = (render_template_file(template, document, redact=redact) if template
                else render(document, fmt, color=output is None and _use_color(), redact=redact))
    except ReportError as exc:
        raise UsageProblem(str(exc).removeprefix("error: ")) from None
    _emit(text, output)
    return ExitCode.OK


@main.command()
@click.option("--data", required=True, type=click.Path(path_type=Path),
              help="Directory (access_requests.*, scim_updates.*) or file of records to serve.")
@click.option("--source", type=click.Choice(["access_requests", "scim_updates"]),
              help="Which log a single --data file holds (when its name does not say).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback only).")
@click.option("--port", default=8787, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port).")
@click.option("--allow-remote", is_flag=True, help="Allow a --host that is not a loopback address.")
@click.option("--account", "account_id", help="Only serve this account id (others get 404).")
@click.option("--token", help="Require 'Authorization: Bearer TOKEN' (never printed).")
@click.option("--email", help="Accept X-Auth-Email with --api-key.")
@click.option("--api-key", help="Accept X-Auth-Key with --email (never printed).")
@click.option("--latency", default=0.0, type=click.FloatRange(0), help="Seconds added to every request.")
@click.option("--rate-limit-first", default=0, type=click.IntRange(0), help="The first N requests answer 429.")
@click.option("--retry-after", default=1, type=click.IntRange(0), show_default=True,
              help="Retry-After seconds of those 429s.")
@click.option("--fail-page", "fail_pages", multiple=True, metavar="PAGE[:TIMES]",
              help="Answer 5xx for this page number TIMES times (default 1); repeatable.")
@click.option("--fail-status", default=503, type=click.IntRange(500, 599), show_default=True,
              help="Status of --fail-page answers (502/503/504 send an HTML edge page, 500 the JSON envelope).")
@click.option("--malformed-first", default=0, type=click.IntRange(0),
              help="The first N successful bodies are truncated JSON.")
@click.option("--cap-per-page", type=click.IntRange(1), help="Silently serve at most N records per page.")
@click.option("--cap-limit", type=click.IntRange(1),
              help="Silently return at most N entries per query, whatever limit asks.")
@click.option("--result-info/--no-result-info", default=False, show_default=True,
              help="Add result_info to access_requests answers too.")
@_guard
def emulate(data: Path, source: str | None, host: str, port: int, allow_remote: bool, account_id: str | None,
            token: str | None, email: str | None, api_key: str | None, latency: float, rate_limit_first: int,
            retry_after: int, fail_pages: tuple[str, ...], fail_status: int, malformed_first: int,
            cap_per_page: int | None, cap_limit: int | None, result_info: bool) -> int:
    """Serve both Cloudflare log endpoints locally from files, until Ctrl-C."""
    from auditor.sources.files import DataError
    from auditor.testing.emulator import Faults, parse_fail_pages, serve

    try:
        faults = Faults(latency=latency, rate_limit_first=rate_limit_first, retry_after=retry_after,
                        fail_pages=parse_fail_pages(fail_pages), fail_status=fail_status,
                        malformed_first=malformed_first, cap_per_page=cap_per_page, cap_limit=cap_limit,
                        result_info_access=result_info)
        serve(data, source=source, host=host, port=port, account_id=account_id, token=token, email=email,
              api_key=api_key, faults=faults, allow_remote=allow_remote, echo=lambda line: click.echo(line))
    except DataError as exc:
        click.echo(str(exc), err=True)
        return ExitCode.UNDECIDED
    except ValueError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    return ExitCode.OK


@main.command("test")
@_project_options
@click.option("--rule", "rule_ids", multiple=True, help="Only this rule's cases; repeatable.")
@_guard
def test_rules(paths: tuple[Path, ...], config_path: Path | None, cli_vars: tuple[str, ...],
               var_files: tuple[Path, ...], waivers_path: Path | None, debug: bool, rule_ids: tuple[str, ...]) -> int:
    """Run the rules' tests: cases on fixture records; no network. Exit 0 all hold, 1 one does not."""
    from auditor.run.ruletests import run_tests

    project = _load(paths, config_path, cli_vars, var_files, waivers_path)
    if project.diagnostics:
        _report_problems(project.diagnostics)
        return ExitCode.UNDECIDED
    rules = _select(project, rule_ids, ())
    results, problems = run_tests(rules, project.config, now_us())
    for case in results:
        click.echo(case.line())
    _report_problems(problems)
    held = sum(1 for c in results if c.held)
    errors = sum(1 for c in results if c.status == "error") + len(problems)
    untested = [r.id for r in rules if not r.tests]
    tested = len(rules) - len(untested)
    summary = (f"{len(results)} case{'s' if len(results) != 1 else ''} in {tested} rule{'s' if tested != 1 else ''}: "
               f"{held} held, {len(results) - held} did not")
    if untested:
        summary += f"; {len(untested)} rule{'s' if len(untested) != 1 else ''} without tests ({', '.join(untested)})"
    click.echo(summary)
    if errors:
        return ExitCode.UNDECIDED
    return ExitCode.OK if held == len(results) else ExitCode.FAILED


@main.command()
@click.argument("directory", metavar="[DIR]", default=".", type=click.Path(path_type=Path))
@click.option("--debug", is_flag=True, help="Show tracebacks for internal errors.")
@_guard
def init(directory: Path, debug: bool) -> int:
    """Scaffold a policy repo in DIR (default: here): config, rules, waivers, CI; never overwrites a file."""
    from auditor.cli.scaffold import ScaffoldError, scaffold

    try:
        written = scaffold(directory)
    except ScaffoldError as exc:
        _fail(str(exc))
    for path in written:
        click.echo(f"created {path}")
    where = "" if directory == Path(".") else f"cd {directory} && "
    click.echo(f"next: {where}auditor validate && auditor test && auditor run --data <exported logs> "
               "(or set CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID)")
    return ExitCode.OK
