"""Command-line interface: parses options, calls one function per command, maps outcomes to exit codes."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from auditor import __version__
from auditor.compiler import compile_plan
from auditor.diagnostics import Diagnostic
from auditor.exitcodes import ExitCode
from auditor.model import SEVERITIES
from auditor.plan import Plan
from auditor.timeutil import format_time, now_us, parse_time
from auditor.validate import Inputs, Project, load_project


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
        click.option("--debug", is_flag=True, help="Show tracebacks for internal errors."),
    ]):
        func = decorator(func)
    return func


def _load(paths: tuple[Path, ...], config_path: Path | None, cli_vars: tuple[str, ...],
          var_files: tuple[Path, ...]) -> Project:
    inputs = Inputs(paths=paths, config_path=config_path, var_files=var_files, cli_vars=cli_vars,
                    env=dict(os.environ))
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


def _select(project: Project, rule_ids: tuple[str, ...], tags: tuple[str, ...]) -> list:
    rules = list(project.rules)
    if not rule_ids and not tags:
        return rules
    known = {r.id for r in rules}
    unknown = [r for r in rule_ids if r not in known]
    if unknown:
        from auditor.schema import did_you_mean

        hint = did_you_mean(unknown[0], known)
        _fail(f"--rule {unknown[0]!r}: no such rule" + (f"; {hint}" if hint else ""))
    selected = [r for r in rules if r.id in rule_ids or set(r.tags) & set(tags)]
    if not selected:
        _fail("--tag selected no rules" + (f" (tags in use: {', '.join(sorted({t for r in rules for t in r.tags}))})"
                                          if rules else ""))
    return selected


def _compile(project: Project, rules: list, at: str | None, account_id: str | None) -> Plan:
    plan, problems = compile_plan(rules, project.config, _reference_time(at), account_id)
    if problems:
        _report_problems(problems)
        raise click.exceptions.Exit(int(ExitCode.UNDECIDED))
    return plan


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
             var_files: tuple[Path, ...], debug: bool) -> int:
    """Check rule files, config and variables; no network."""
    project = _load(paths, config_path, cli_vars, var_files)
    if project.diagnostics:
        _report_problems(project.diagnostics)
        n = len(project.diagnostics)
        click.echo(f"{n} problem{'s' if n != 1 else ''} found", err=True)
        return ExitCode.UNDECIDED
    files = len(project.rule_files)
    click.echo(f"ok: {len(project.rules)} rules in {files} file{'s' if files != 1 else ''}")
    return ExitCode.OK


def _plan_text(plan: Plan) -> str:
    lines = [f"Plan at {format_time(plan.reference_us)}: {len(plan.rules)} rules, "
             f"{len(plan.fetches)} fetch{'es' if len(plan.fetches) != 1 else ''} (pushdown: {plan.pushdown})", ""]
    for f in plan.fetches:
        rules = plan.rules_of(f.key)
        lines.append(f"fetch {f.key}  {f.source}  {format_time(f.since_us)} .. {format_time(f.until_us)}")
        params = " ".join(f"{k}={v}" for k, v in f.filter_params()) or "(none)"
        lines.append(f"  api filters: {params}")
        lines.append(f"  fields:      {','.join(f.fields)}")
        shared = " (shared)" if len(rules) > 1 else ""
        lines.append(f"  rules{shared}:")
        for r in rules:
            lines.append(f"    {r.rule.id}  [{format_time(r.since_us)} .. {format_time(r.until_us)})")
            if r.pushed:
                lines.append(f"      api:   {'; '.join(c.describe() for c in r.pushed)}")
            if r.local:
                lines.append(f"      local: {'; '.join(c.describe() for c in r.local)}")
        lines.append("")
    lines.append("api: sent to the API and re-checked locally; local: checked by auditor only.")
    return "\n".join(lines)


@main.command()
@_project_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the JSON plan to a file.")
@click.option("--at", help="Reference time T (RFC 3339; default now).")
@click.option("--account-id", envvar="CLOUDFLARE_ACCOUNT_ID", help="Account id shown in paths.")
@click.option("--rule", "rule_ids", multiple=True, help="Only this rule id; repeatable.")
@click.option("--tag", "tags", multiple=True, help="Only rules with this tag; repeatable.")
@_guard
def plan(paths: tuple[Path, ...], config_path: Path | None, cli_vars: tuple[str, ...],
         var_files: tuple[Path, ...], debug: bool, as_json: bool, output: Path | None, at: str | None,
         account_id: str | None, rule_ids: tuple[str, ...], tags: tuple[str, ...]) -> int:
    """Show each rule's compiled fetch and what runs locally; no network."""
    project = _load(paths, config_path, cli_vars, var_files)
    if project.diagnostics:
        _report_problems(project.diagnostics)
        return ExitCode.UNDECIDED
    compiled = _compile(project, _select(project, rule_ids, tags), at, account_id or project.config.account_id)
    document = json.dumps(compiled.to_json(), indent=2) + "\n"
    if output:
        output.write_text(document, encoding="utf-8")
    if as_json:
        click.echo(document, nl=False)
    elif not output:
        click.echo(_plan_text(compiled))
    return ExitCode.OK


def _parse_reports(specs: tuple[str, ...], results_path: Path | None) -> list[tuple[str, Path | None]]:
    from auditor.report import FORMATS

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


def _use_color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def _write_reports(document: dict[str, Any], reports: list[tuple[str, Path | None]], quiet: bool,
                   redact: bool) -> None:
    from auditor.report import render

    for fmt, path in reports:
        text = render(document, fmt, color=path is None and _use_color(), redact=redact)
        if path is None:
            if not (quiet and fmt == "text"):
                click.echo(text, nl=not text.endswith("\n"))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")


@main.command()
@_project_options
@click.option("--data", type=click.Path(path_type=Path),
              help="Read exported logs from a directory or file instead of the API.")
@click.option("--source", type=click.Choice(["access_requests", "scim_updates"]),
              help="Which log a single --data file holds.")
@click.option("--at", help="Reference time T (RFC 3339; default now).")
@click.option("--account-id", envvar="CLOUDFLARE_ACCOUNT_ID", help="Cloudflare account id.")
@click.option("--rule", "rule_ids", multiple=True, help="Only this rule id; repeatable.")
@click.option("--tag", "tags", multiple=True, help="Only rules with this tag; repeatable.")
@click.option("--fail-on", type=click.Choice(SEVERITIES), default="info", show_default=True,
              help="Lowest severity whose failure fails the gate (exit 1).")
@click.option("--report", "reports", multiple=True, metavar="FORMAT[=PATH]",
              help="Render a report (text, markdown, html, junit, sarif, csv, json); repeatable.")
@click.option("--results", "results_path", type=click.Path(path_type=Path),
              help="Write the results JSON here (same as --report json=PATH).")
@click.option("--redact", is_flag=True, help="Mask emails and IP addresses in every report.")
@click.option("--quiet", is_flag=True, help="No text report on stdout.")
@_guard
def run(paths: tuple[Path, ...], config_path: Path | None, cli_vars: tuple[str, ...],
        var_files: tuple[Path, ...], debug: bool, data: Path | None, source: str | None, at: str | None,
        account_id: str | None, rule_ids: tuple[str, ...], tags: tuple[str, ...], fail_on: str,
        reports: tuple[str, ...], results_path: Path | None, redact: bool, quiet: bool) -> int:
    """Fetch, evaluate, report; exit 0 pass, 1 fail, 2 undecided."""
    from auditor.runner import RunOptions, run_files

    report_specs = _parse_reports(reports, results_path)
    if source and not data:
        _fail("--source only applies with --data FILE")
    project = _load(paths, config_path, cli_vars, var_files)
    if project.diagnostics:
        _report_problems(project.diagnostics)
        return ExitCode.UNDECIDED
    selected = _select(project, rule_ids, tags)
    compiled = _compile(project, selected, at, account_id or project.config.account_id)
    options = RunOptions(fail_on=fail_on, rules_sha256=project.rules_sha256, config_sha256=project.config_sha256)
    if data is None:
        _fail("the live API source is not available yet: pass --data DIR with exported logs")
    result = run_files(compiled, data, source, options)
    document = result.to_json()
    _write_reports(document, report_specs, quiet, redact)
    return result.exit_code


@main.command()
@click.option("--data", required=True, type=click.Path(path_type=Path),
              help="Directory (access_requests.*, scim_updates.*) or file of records to serve.")
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
@click.option("--result-info/--no-result-info", default=False, show_default=True,
              help="Add result_info to access_requests answers too.")
@_guard
def emulate(data: Path, host: str, port: int, allow_remote: bool, account_id: str | None, token: str | None,
            email: str | None, api_key: str | None, latency: float, rate_limit_first: int, retry_after: int,
            fail_pages: tuple[str, ...], fail_status: int, malformed_first: int, cap_per_page: int | None,
            result_info: bool) -> int:
    """Serve both Cloudflare log endpoints locally from files, until Ctrl-C."""
    from auditor.emulator import Faults, parse_fail_pages, serve
    from auditor.sources.files import DataError

    try:
        faults = Faults(latency=latency, rate_limit_first=rate_limit_first, retry_after=retry_after,
                        fail_pages=parse_fail_pages(fail_pages), fail_status=fail_status,
                        malformed_first=malformed_first, cap_per_page=cap_per_page,
                        result_info_access=result_info)
        serve(data, host=host, port=port, account_id=account_id, token=token, email=email, api_key=api_key,
              faults=faults, allow_remote=allow_remote, echo=lambda line: click.echo(line))
    except DataError as exc:
        click.echo(str(exc), err=True)
        return ExitCode.UNDECIDED
    except ValueError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    return ExitCode.OK
