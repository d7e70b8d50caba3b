"""`auditor run`: fetch (API or --data files), evaluate, report; exit 0 pass, 1 fail, 2 undecided."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import click

from auditor.cli import selection
from auditor.cli.common import api_settings, fail, guard, load_valid, use_color, warn
from auditor.cli.options import api_options, engine_options, no_color_option, project_options, selection_options
from auditor.cli.outputs import parse_reports, parse_templates, write_reports
from auditor.cli.progress import Display, FilesProgress, wanted
from auditor.compile.plan import Plan
from auditor.core.model import Config
from auditor.core.selection import Selection
from auditor.core.status import Severity


def _run_api(plan: Plan, config: Config, options: Any, api_base: str | None, concurrency: int | None,
             display: Display, retries: int | None, measured_from: dict[str, int] | None) -> Any:
    """`run` over the live API: settings checked (one-line error) before the first request."""
    from auditor.cli.progress import ApiProgress
    from auditor.run.runner import run as run_plan
    from auditor.sources.cloudflare.client import ApiClient
    from auditor.sources.cloudflare.envelope import CredentialsRejected
    from auditor.sources.cloudflare.source import CloudflareSource

    settings = api_settings(config, api_base, plan.account_id, concurrency, retries)
    # Without a live line only waits the user must know about are said: rate limits (auditor.cli.progress).
    try:
        with ApiClient(settings, progress=ApiProgress(display, len(plan.fetches))) as client:
            return run_plan(plan, CloudflareSource(client, config.retention_days, measured_from), options)
    except CredentialsRejected as exc:
        fail(str(exc))


def _data_covers(values: tuple[str, ...], with_data: bool) -> dict[str, Any] | None:
    """`run --data-covers`: the stated coverage per log (None when not given)."""
    if not values:
        return None
    if not with_data:
        fail("--data-covers only applies with --data (over the API, coverage follows retention_days)")
    from auditor.core.coverage import CoverageError, parse_data_covers
    from auditor.core.fields import SOURCES

    try:
        return parse_data_covers(values, SOURCES)
    except CoverageError as exc:
        fail(str(exc))


@click.command()
@project_options
@click.option("--data", "data_args", multiple=True, metavar="PATH | LOG=PATH",
              help="Read exported logs instead of the API: a directory (plain files, Logpush folders) or file, or a "
                   "Logpush folder in object storage (s3://, r2://, gs://BUCKET/PREFIX); LOG=PATH names one log's "
                   "file or Logpush folder (repeatable).")
@click.option("--source", type=click.Choice(["access_requests", "scim_updates"]),
              help="Which log a single --data file holds.")
@engine_options("What evaluates the rules over --data: the streaming Python pass, DuckDB (faster on large "
                "exports), or Spark (the optional extra); auto: DuckDB for a Parquet log lake and exports of 64 MiB "
                "of JSON or more, else Python.")
@click.option("--data-covers", "data_covers", multiple=True, metavar="[SOURCE=]START/END",
              help="The time span the --data files hold completely (RFC 3339), for every log or one; repeatable. "
                   "Default: from each log's first to its last record (inferred).")
@selection_options
@click.option("--fail-on", type=click.Choice([s.value for s in Severity], case_sensitive=False),
              default=Severity.INFO.value, show_default=True,
              help="Lowest severity whose failure fails the gate (exit 1).")
@click.option("--report", "reports", multiple=True, metavar="FORMAT[=PATH]",
              help="Render a report (text, markdown, html, junit, sarif, csv, compliance, json); repeatable.")
@click.option("--results", "results_path", type=click.Path(path_type=Path),
              help="Write the results JSON here (same as --report json=PATH).")
@click.option("--template", "templates", multiple=True, metavar="FILE.j2[=PATH]",
              help="Render your own Jinja template (sandboxed) with the results; repeatable.")
@click.option("--redact", is_flag=True, help="Mask emails and IP addresses in every report.")
@click.option("-q", "--quiet", is_flag=True, help="No text report on stdout (warnings still go to stderr).")
@no_color_option
@api_options
@click.option("--plan", "plan_path", type=click.Path(path_type=Path),
              help="Run exactly this saved plan (from plan -o); refused (exit 2) when its inputs changed.")
@click.option("--baseline", "baseline_path", type=click.Path(path_type=Path),
              help="An earlier run's results JSON: mark each result new, still or fixed.")
@click.option("--fail-on-new", is_flag=True, help="With --baseline: exit 1 only for failures marked new.")
@guard
def run(paths: tuple[Path, ...], config_path: Path | None, cli_vars: tuple[str, ...],
        var_files: tuple[Path, ...], waivers_path: Path | None, debug: bool, data_args: tuple[str, ...],
        source: str | None, data_covers: tuple[str, ...], engine: str | None, spark_master: str, at: str | None,
        period_text: str | None, tz: str | None, step: str | None,
        account_id: str | None, chosen: Selection, fail_on: str,
        reports: tuple[str, ...], results_path: Path | None, templates: tuple[str, ...], redact: bool,
        quiet: bool, no_color: bool, api_base: str | None,
        concurrency: int | None, per_page: int | None, no_progress: bool, max_wait: int | None,
        retries: int | None,
        plan_path: Path | None, baseline_path: Path | None, fail_on_new: bool) -> int:
    """Fetch, evaluate, report; exit 0 pass, 1 fail, 2 undecided."""
    from auditor.report.outputs import clear
    from auditor.run.runner import RunOptions
    from auditor.run.runner import run as run_plan
    from auditor.sources.datasource import DataSource
    from auditor.sources.locate import parse_data_args

    report_specs = parse_reports(reports, results_path)
    template_specs = parse_templates(templates, report_specs, quiet)
    try:
        data, named = parse_data_args(data_args)
    except ValueError as exc:
        fail(str(exc))
    # Earlier outputs at these paths go now: a run that stops before writing leaves none to mistake for its own.
    clear(path for _, path in [*report_specs, *template_specs] if path is not None)
    if source and not data:
        fail("--source only applies with --data FILE")
    covers = _data_covers(data_covers, bool(data_args))
    if (data is not None or named) and retries is not None:
        fail("--retries only applies over the API, not with --data")
    saved = selection.saved_plan(plan_path, at=at, chosen=chosen, per_page=per_page,
                                 period_text=period_text)
    period = selection.period(period_text, tz, step, at)
    if saved is not None and not paths:
        paths = tuple(Path(p) for p in saved["inputs"]["paths"])
    baseline = selection.baseline(baseline_path, fail_on_new)
    project = load_valid(paths, config_path, cli_vars, var_files, waivers_path)
    over_files = data is not None or bool(named)
    profile = None
    if not over_files:  # over the API: what `auditor doctor` proved on this account
        project, profile = selection.with_api_profile(project, account_id)
    target = selection.target(project, profile, over_files)
    measured_from = profile.served_from() if profile is not None else None
    selected = selection.select(project, chosen)
    if per_page is not None:  # the API client's page size (config per_page)
        project = dataclasses.replace(project, config=dataclasses.replace(project.config, per_page=per_page))
    if max_wait is not None:
        project = dataclasses.replace(project, config=dataclasses.replace(project.config, max_retry_wait=max_wait))
    account_id = selection.account(account_id or project.config.account_id)
    if saved is not None and plan_path is not None:
        compiled = selection.compile_saved(saved, project, account_id, plan_path, target)
    else:
        compiled = selection.compile_rules(project, selected, at, account_id, period, target)
    options = RunOptions(fail_on=Severity(fail_on.lower()), rules_sha256=project.rules_sha256,
                         config_sha256=project.config_sha256,
                         waivers=project.waivers, waivers_sha256=project.waivers_sha256, baseline=baseline,
                         fail_on_new=fail_on_new, exact_plan=saved is not None)
    said: set[str] = set()  # warnings already on stderr
    if engine is not None and engine not in ("auto", "python") and data is None and not named:
        fail(f"--engine {engine} reads --data; the API is read by the Python engine")
    if data is None and not named:
        from auditor.core.timeutil import now_us
        from auditor.decide.coverage import beyond_the_api

        beyond = tuple(f"{rule_id}: {why}: decided only where more data could not change it, else error"
                       for rule_id, why in beyond_the_api(compiled, now_us(), project.config.retention_days,
                                                          measured_from))
        for line in beyond:  # before any request; kept in the results, not said again at the end
            warn(line)
        options = dataclasses.replace(options, warnings=beyond)
        said = set(beyond)
        with Display(sys.stderr, wanted(sys.stderr, no_progress=no_progress, quiet=quiet)) as display:
            result = _run_api(compiled, project.config, options, api_base, concurrency, display, retries,
                              measured_from)
    else:
        from auditor.run.choose import choose_engine

        files = DataSource(data, source, named, compiled, covers)
        configured = project.config.engine  # auditor.yaml's engine is for --data: the API is streamed in Python
        engine = choose_engine(None if engine == "auto" else engine, None if configured == "auto" else configured,
                               files)
        with Display(sys.stderr, wanted(sys.stderr, no_progress=no_progress, quiet=quiet)) as display:
            if display.live:
                files.watch = watch = FilesProgress(display, *files.inventory())
                if engine != "python":
                    watch.engine({"duckdb": "DuckDB", "spark": "Spark"}[engine])
            if engine != "python":
                from auditor.run.spark import EngineUnavailable
                from auditor.run.sql import run_sql

                try:
                    result = run_sql(compiled, files, options, engine, spark_master)
                except EngineUnavailable as exc:
                    fail(str(exc))
            else:
                result = run_plan(compiled, files, options)
    document = result.to_json()
    from auditor.report.redact import redact_text

    for warning in document["warnings"]:
        if warning not in said:
            warn(redact_text(warning) if redact else warning)
    write_reports(document, report_specs, template_specs, quiet=quiet, redact=redact, color=use_color(no_color))
    return result.exit_code
