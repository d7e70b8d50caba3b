"""`auditor validate`: check rule files, config, variables and waivers; no network."""

from __future__ import annotations

import json
from pathlib import Path

import click

from auditor.cli.common import guard, load, report_problems
from auditor.cli.options import project_options
from auditor.decide import gate
from auditor.load.validate import Project


def _json(project: Project) -> str:
    document = {
        "ok": not project.diagnostics,
        "rules": [r.id for r in project.rules],
        "files": [str(p) for p in project.rule_files],
        "waivers": len(project.waivers),
        "problems": [d.to_json() for d in project.diagnostics],
        "warnings": [d.to_json() for d in project.warnings],
    }
    return json.dumps(document, indent=2)


@click.command()
@project_options
@click.option("--json", "as_json", is_flag=True,
              help="Print the outcome as JSON on stdout: ok, rules, files, waivers and every problem.")
@guard
def validate(paths: tuple[Path, ...], config_path: Path | None, cli_vars: tuple[str, ...],
             var_files: tuple[Path, ...], waivers_path: Path | None, debug: bool, as_json: bool) -> int:
    """Check rule files, config, variables and waivers; no network."""
    project = load(paths, config_path, cli_vars, var_files, waivers_path)
    if as_json:
        click.echo(_json(project))
        return gate.for_problems(project.diagnostics)
    if project.diagnostics:
        report_problems(project.diagnostics)
        n = len(project.diagnostics)
        click.echo(f"{n} problem{'s' if n != 1 else ''} found", err=True)
    else:
        files = len(project.rule_files)
        waivers = "" if project.waivers_sha256 is None else (
            f", {len(project.waivers)} waiver{'s' if len(project.waivers) != 1 else ''}")
        rules = len(project.rules)
        click.echo(f"ok: {rules} rule{'s' if rules != 1 else ''} in {files} file{'s' if files != 1 else ''}{waivers}")
    return gate.for_problems(project.diagnostics)
