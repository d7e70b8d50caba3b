"""`auditor init [DIR]`: scaffold a policy repository; never overwrites a file."""

from __future__ import annotations

from pathlib import Path

import click

from auditor.cli.common import fail, guard
from auditor.cli.options import debug_option
from auditor.core.exitcodes import ExitCode


@click.command()
@click.argument("directory", metavar="[DIR]", default=".", type=click.Path(path_type=Path))
@debug_option
@guard
def init(directory: Path, debug: bool) -> int:
    """Scaffold a policy repo in DIR (default: here): config, rules, waivers, CI; never overwrites a file."""
    from auditor.cli.scaffold import ScaffoldError, scaffold

    try:
        written = scaffold(directory)
    except ScaffoldError as exc:
        fail(str(exc))
    for path in written:
        click.echo(f"created {path}")
    where = "" if directory == Path(".") else f"cd {directory} && "
    click.echo(f"next: {where}auditor validate && auditor test && auditor run --data <exported logs> "
               "(or set CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID)")
    return ExitCode.OK
