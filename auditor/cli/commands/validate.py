"""`auditor validate`: check rule files, config, variables and waivers; no network."""

from __future__ import annotations

from pathlib import Path

import click

from auditor.cli.common import guard, load, report_problems
from auditor.cli.options import project_options
from auditor.decide import gate


@click.command()
@project_options
@guard
def validate(paths: tuple[Path, ...], config_path: Path | None, cli_vars: tuple[str, ...],
             var_files: tuple[Path, ...], waivers_path: Path | None, debug: bool) -> int:
    """Check rule files, config, variables and waivers; no network."""
    project = load(paths, config_path, cli_vars, var_files, waivers_path)
    if project.diagnostics:
        report_problems(project.diagnostics)
        n = len(project.diagnostics)
        click.echo(f"{n} problem{'s' if n != 1 else ''} found", err=True)
    else:
        files = len(project.rule_files)
        waivers = "" if project.waivers_sha256 is None else (
            f", {len(project.waivers)} waiver{'s' if len(project.waivers) != 1 else ''}")
        click.echo(f"ok: {len(project.rules)} rules in {files} file{'s' if files != 1 else ''}{waivers}")
    return gate.for_problems(project.diagnostics)
