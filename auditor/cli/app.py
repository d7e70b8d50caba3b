"""The `auditor` command group and `main(argv) -> int`, the console script's entry point."""

from __future__ import annotations

import click

from auditor import __version__
from auditor.cli.commands.doctor import doctor
from auditor.cli.commands.emulate import emulate
from auditor.cli.commands.init import init
from auditor.cli.commands.plan import plan
from auditor.cli.commands.report import report
from auditor.cli.commands.run import run
from auditor.cli.commands.sync import sync
from auditor.cli.commands.test import test_rules
from auditor.cli.commands.validate import validate


@click.group(name="auditor", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="auditor")
def cli() -> None:
    """auditor: declarative audit checks for Cloudflare Zero Trust Access logs.

    validate the rule files, plan what will be asked of the API, run it, gate on the exit code
    (0 pass, 1 a rule failed, 2 could not decide).
    """


@cli.result_callback()
def _exit_with(code: int, **_: object) -> None:
    # Every command returns its exit code; this is the one place that turns it into the process's.
    click.get_current_context().exit(int(code))


for _command in (validate, plan, run, sync, report, test_rules, init, doctor, emulate):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> int:
    """Run `auditor` with argv (default: sys.argv[1:]) and return the exit code instead of exiting."""
    try:
        return int(cli.main(args=argv, prog_name="auditor", standalone_mode=False) or 0)
    except click.ClickException as exc:  # usage errors: click's message and exit 2
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("error: interrupted", err=True)
        return 2
