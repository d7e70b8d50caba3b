"""`auditor plan`: show each rule's compiled fetch and what runs locally; no network."""

from __future__ import annotations

import json
from pathlib import Path

import click

from auditor.cli import selection
from auditor.cli.common import emit, guard, load_valid
from auditor.cli.options import engine_options, project_options, selection_options
from auditor.core.exitcodes import ExitCode
from auditor.core.selection import Selection


@click.command()
@project_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Save the plan (JSON with digests of its inputs) for run --plan.")
@engine_options("Show each rule's SQL as this engine would run it over --data (auto, python: the fetch plan).",
                shown=("trino",), runs=False)
@click.option("--data", "data_args", multiple=True, metavar="PATH | LOG=PATH",
              help="Plan a run over exported logs (as run --data; the files are not read): nothing is pushed "
                   "down, every condition is checked locally.")
@selection_options
@guard
def plan(paths: tuple[Path, ...], config_path: Path | None, cli_vars: tuple[str, ...],
         var_files: tuple[Path, ...], waivers_path: Path | None, debug: bool, as_json: bool, output: Path | None,
         engine: str | None, data_args: tuple[str, ...],
         at: str | None, period_text: str | None, tz: str | None, step: str | None, account_id: str | None,
         chosen: Selection) -> int:
    """Show each rule's compiled fetch and what runs locally; no network."""
    from auditor.compile import savedplan
    from auditor.report.plantext import plan_text, profile_text, resting_pushdowns

    period = selection.period(period_text, tz, step, at)
    project = load_valid(paths, config_path, cli_vars, var_files, waivers_path)
    engine = engine or project.config.engine
    over_files = bool(data_args) or engine not in ("auto", "python")  # the SQL engines read --data
    profile = None
    if not over_files:
        project, profile = selection.with_api_profile(project, account_id)
    compiled = selection.compile_rules(project, selection.select(project, chosen), at,
                                       selection.account(account_id or project.config.account_id), period,
                                       selection.target(project, profile, over_files))
    if period is not None and not over_files:
        from auditor.decide.period import retention_warning

        warning = retention_warning(compiled, project.config.retention_days)
        if warning:
            click.echo(f"warning: over the API, {warning}", err=True)
    from auditor.core.timeutil import now_us
    from auditor.decide.coverage import beyond_the_api

    beyond = [] if over_files else beyond_the_api(compiled, now_us(), project.config.retention_days,
                                                  profile.served_from() if profile is not None else None)
    saved = savedplan.document(compiled, project, paths,
                               None if over_files else selection.api_request(project, compiled.account_id))
    # The rules `plan` marks with `!`: over the API, decided only where more data could not change them.
    saved["beyond_the_api"] = [{"rule": rule_id, "why": why} for rule_id, why in beyond]
    if profile is not None:  # what rests on `auditor doctor`'s findings (not read back by run --plan)
        saved["api_profile"] = {"account_id": profile.account_id, "measured_at": profile.measured_at,
                                "pushdowns": resting_pushdowns(compiled)}
    document = json.dumps(saved, indent=2) + "\n"
    if output:
        emit(document, output)
        click.echo(f"saved the plan to {output}; run it with: auditor run --plan {output}", err=True)
    if as_json:
        click.echo(document, nl=False)
    elif engine not in ("auto", "python"):
        from auditor.evaluate.sql.explain import plan_sql

        click.echo(plan_sql(compiled, engine), nl=False)
    elif not output:
        click.echo(plan_text(compiled))
        if profile is not None:
            click.echo(profile_text(compiled, profile))
        if beyond:
            click.echo("\nBeyond what the API serves (retention_days, now): over the API these rules are decided "
                       "only where more data could not change them, else error")
            click.echo("\n".join(f"  ! {rule_id}: {why}" for rule_id, why in beyond))
    return ExitCode.OK
